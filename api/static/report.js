// Firetower: the citizen's public report page (report.html, 举报), no account. A report
// (category, what was seen, where, the phone's position if the citizen adds it, photos from
// the camera, an optional contact kept private) goes to the public intake as a web form
// (POST /public/reports/form); the answer is a tracking code, and the status box asks
// GET /public/reports/{code} where the report stands. Only what that answer holds is shown.
// Plain script, text only into the DOM (never innerHTML with data).
"use strict";

(function () {
  const API = "/api/v1/public/reports";
  const B = window.FiretowerBoard;  // board.js: labels and the language choice
  const CATEGORIES = ["blocked_exit", "fire_lane", "fire_equipment", "electrical",
    "ebike_charging", "flammables", "other"];
  const KEEP = 10;                  // tracking codes remembered on this phone
  const st = { labels: { en: {}, zh: {} }, lang: "en", where: null, last: null };
  window.firetowerReport = { sent: 0, lookups: 0 };  // for tests

  // -- helpers ------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  const T = (key, vars) => { const v = B.t(st.labels, st.lang, key, vars); return v === null ? key : v; };
  const L = (prefix, value) => B.label(st.labels, st.lang, prefix, value);
  const locale = () => (st.lang === "zh" ? "zh-CN" : "en");  // the page's language
  const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(locale(),
    { dateStyle: "medium", timeStyle: "short" }) : "";
  // A code as people read it aloud: three groups of four (the API reads dashes fine).
  const spaced = (code) => String(code).replace(/(.{4})(?=.)/g, "$1-");

  function say(text, kind) {
    const el = $("msg");
    el.textContent = text || "";
    el.dataset.kind = kind || "error";
    el.hidden = !text;
    if (text) el.scrollIntoView({ block: "nearest" });
  }

  // What the API said, in words: its `detail` (a sentence, or FastAPI's list of field errors,
  // each named by its field's label); the fields it names are marked. A 429 says when to try
  // again, from Retry-After.
  const FIELDS = { category: "rp-category", description: "rp-description", address: "rp-address",
    contact: "rp-phone", photos: "rp-photos", latitude: "rp-locate", longitude: "rp-locate" };
  async function problem(r) {
    let detail = null;
    try { detail = (await r.json()).detail; } catch (_) { /* not JSON */ }
    if (r.status === 429) {
      const s = Math.max(1, Number(r.headers.get("Retry-After")) || 60);
      const at = new Date(Date.now() + s * 1000).toLocaleTimeString(locale(),
        { hour: "2-digit", minute: "2-digit", hour12: false });
      const wait = s >= 120 ? T("rp.minutes", { n: Math.ceil(s / 60) }) : T("rp.seconds", { n: s });
      return { text: T("rp.too_many", { wait, at }), retryAfter: s };
    }
    let text;
    if (Array.isArray(detail)) {
      text = detail.map((d) => {
        const field = (d.loc || []).filter((x) => typeof x === "string" && x !== "body").pop();
        if (FIELDS[field] && $(FIELDS[field])) $(FIELDS[field]).classList.add("need");
        const msg = String(d.msg || "").replace(/^Value error, /, "");
        return field ? `${T(`rp.field.${field}`)}: ${msg}` : msg;
      }).join("; ");
    } else {
      text = typeof detail === "string" ? detail : r.statusText || `HTTP ${r.status}`;
      const named = Object.keys(FIELDS).find((f) => text.startsWith(`${f}:`) || text.startsWith(`${f}.`));
      if (named) $(FIELDS[named]).classList.add("need");
      if (r.status === 413 || /photo|image/i.test(text)) $("rp-photos").classList.add("need");
    }
    const lead = r.status === 413 ? T("rp.too_large") : r.status === 422 ? T("rp.invalid")
      : T("rp.failed");
    return { text: `${lead} ${text}` };
  }

  // -- language -----------------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = st.lang === "zh" ? "zh-CN" : "en";
    document.title = `${T("rp.title")} — Firetower`;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = T(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = T(el.dataset.i18nPlaceholder);
    }
    $("lang").value = st.lang;
    const cat = $("rp-category");
    const kept = cat.value;
    cat.replaceChildren(h("option", { value: "" }, T("rp.choose")),
      ...CATEGORIES.map((c) => h("option", { value: c }, L("rp.cat", c))));
    cat.value = kept;
    showWhere();
    if (st.last) showStatus(st.last);
    showMine();
  }
  $("lang").addEventListener("change", () => {
    st.lang = $("lang").value;
    localStorage.setItem("firetower.lang", st.lang);
    applyLang();
  });

  // -- the position, only when the citizen adds it ------------------------------------------
  function showWhere(waiting) {
    const gps = $("rp-gps");
    const w = st.where;
    gps.dataset.state = waiting ? "wait" : w ? "ok" : gps.dataset.state === "denied" ? "denied" : "none";
    gps.textContent = waiting ? T("rp.gps_wait")
      : w ? T("rp.gps_ok", { lat: w.lat.toFixed(5), lon: w.lon.toFixed(5), acc: Math.round(w.acc || 0) })
        : gps.dataset.state === "denied" ? T("rp.gps_denied") : T("rp.gps_off");
    $("rp-unlocate").hidden = !w;
    $("rp-locate").textContent = w ? T("rp.relocate") : T("rp.locate");
  }
  $("rp-locate").addEventListener("click", () => {
    $("rp-locate").classList.remove("need");
    if (!navigator.geolocation) { $("rp-gps").dataset.state = "denied"; showWhere(); return; }
    showWhere(true);
    navigator.geolocation.getCurrentPosition((p) => {
      st.where = { lat: p.coords.latitude, lon: p.coords.longitude, acc: p.coords.accuracy };
      showWhere();
    }, () => {
      st.where = null;
      $("rp-gps").dataset.state = "denied";
      showWhere();
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });
  $("rp-unlocate").addEventListener("click", () => {
    st.where = null;
    $("rp-gps").dataset.state = "none";
    showWhere();
  });

  // -- photos: previews of what will be sent ------------------------------------------------
  $("rp-photos").addEventListener("change", () => {
    const input = $("rp-photos");
    input.classList.remove("need");
    for (const img of $("rp-preview").querySelectorAll("img")) URL.revokeObjectURL(img.src);
    $("rp-preview").replaceChildren(...[...input.files].map((f) =>
      h("img", { alt: f.name, src: URL.createObjectURL(f) })));
  });
  for (const id of ["rp-category", "rp-description", "rp-address", "rp-phone"]) {
    $(id).addEventListener("input", () => $(id).classList.remove("need"));
  }

  // -- sending ------------------------------------------------------------------------------
  $("report-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    say("");
    const category = $("rp-category");
    const description = $("rp-description");
    for (const el of [category, description]) {
      if (!el.value.trim()) {
        el.classList.add("need");
        el.focus();
        say(T(el === category ? "rp.need_category" : "rp.need_description"));
        return;
      }
    }
    const form = new FormData();
    form.append("category", category.value);
    form.append("description", description.value.trim());
    form.append("channel", "web");
    if ($("rp-address").value.trim()) form.append("address", $("rp-address").value.trim());
    if (st.where) {
      form.append("latitude", String(st.where.lat));
      form.append("longitude", String(st.where.lon));
    }
    const contact = [$("rp-name").value.trim(), $("rp-phone").value.trim()].filter(Boolean).join(" · ");
    if (contact) form.append("contact", contact);
    for (const f of $("rp-photos").files) form.append("photos", f, f.name || "photo.jpg");
    const go = $("rp-send");
    go.disabled = true;
    go.textContent = T("rp.sending");
    try {
      let r;
      try { r = await fetch(`${API}/form`, { method: "POST", body: form }); } catch (_) {
        say(T("rp.offline"));
        return;
      }
      if (!r.ok) {
        const p = await problem(r);
        say(p.text);
        if (p.retryAfter) holdButton(go, p.retryAfter);
        return;
      }
      const receipt = await r.json();
      window.firetowerReport.sent += 1;
      remember(receipt.tracking_code);
      showReceipt(receipt.tracking_code);
    } finally {
      if (!go.dataset.held) { go.disabled = false; go.textContent = T("rp.send"); }
    }
  });

  // After a 429 the button waits out Retry-After (a retry before then is refused anyway).
  function holdButton(btn, seconds) {
    btn.dataset.held = "1";
    btn.disabled = true;
    btn.textContent = T("rp.wait");
    setTimeout(() => {
      delete btn.dataset.held;
      btn.disabled = false;
      btn.textContent = T(btn.id === "rp-send" ? "rp.send" : "rp.check_button");
    }, seconds * 1000);
  }

  function showReceipt(code) {
    $("filing").hidden = true;
    $("rp-receipt").hidden = false;
    $("rp-code").textContent = spaced(code);
    $("rp-code").dataset.code = code;
    $("rp-status-code").value = spaced(code);
    history.replaceState(null, "", `#track/${code}`);
    window.scrollTo(0, 0);
    check(code);
  }
  $("rp-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("rp-code").dataset.code);
      say(T("rp.copied"), "ok");
    } catch (_) { say(T("rp.copy_failed")); }
  });
  $("rp-another").addEventListener("click", () => {
    $("report-form").reset();
    $("rp-preview").replaceChildren();
    st.where = null;
    $("rp-gps").dataset.state = "none";
    showWhere();
    $("rp-receipt").hidden = true;
    $("filing").hidden = false;
    say("");
    window.scrollTo(0, 0);
  });

  // -- codes remembered on this phone (only the codes: nothing of the report) ----------------
  function mine() {
    try {
      const v = JSON.parse(localStorage.getItem("firetower.reports") || "[]");
      return Array.isArray(v) ? v.filter((c) => typeof c === "string") : [];
    } catch (_) { return []; }
  }
  function remember(code) {
    localStorage.setItem("firetower.reports",
      JSON.stringify([code, ...mine().filter((c) => c !== code)].slice(0, KEEP)));
    showMine();
  }
  function showMine() {
    const codes = mine();
    const box = $("rp-mine");
    box.hidden = !codes.length;
    box.replaceChildren(h("h3", {}, T("rp.mine")), h("ul", { class: "mine" }, codes.map((c) =>
      h("li", {}, h("button", { type: "button", class: "link code-link", dataset: { code: c },
        onclick: () => { $("rp-status-code").value = spaced(c); check(c); } }, spaced(c))))));
  }

  // -- the status box -----------------------------------------------------------------------
  // What the reporter is told: the answer's status (a merged report follows the report it
  // joined: `outcome`, `hazard_state`), the reward's status and the two times it gives.
  function headline(s) {
    const now = s.status === "merged" ? s.outcome : s.status;
    const text = T(`rp.now.${now === "merged" ? "received" : now}`);
    return s.status === "merged" ? `${T("rp.now.merged")} ${text}` : text;
  }
  function showStatus(s) {
    const box = $("rp-status");
    const rows = [
      [T("rp.code"), spaced(s.tracking_code), "code"],
      [T("rp.category_short"), L("rp.cat", s.category), "category"],
      [T("rp.status"), L("rp.status", s.status), "status"],
      s.status === "merged" ? [T("rp.outcome"), L("rp.status", s.outcome), "outcome"] : null,
      s.hazard_state ? [T("rp.hazard_state"), L("hz.state", s.hazard_state), "hazard-state"] : null,
      s.reward_status !== "none" ? [T("rp.reward"), L("rp.reward", s.reward_status), "reward"] : null,
    ].filter(Boolean);
    const steps = [[T("rp.step.received"), s.received_at, "received"]];
    if (s.updated_at && s.updated_at !== s.received_at) {
      steps.push([L("rp.status", s.status === "merged" ? s.outcome : s.status), s.updated_at, "updated"]);
    }
    box.dataset.status = s.status;
    box.dataset.outcome = s.outcome;
    box.dataset.hazardState = s.hazard_state || "";
    box.dataset.reward = s.reward_status;
    box.replaceChildren(
      h("p", { class: `headline now-${s.status === "merged" ? s.outcome : s.status}`, id: "rp-headline" },
        headline(s)),
      h("dl", { class: "kv" }, rows.map(([k, v, field]) => [h("dt", {}, k), h("dd", { dataset: { field } }, v)])),
      h("ol", { class: "log", id: "rp-history" }, steps.map(([what, at, kind]) =>
        h("li", { dataset: { kind } }, h("span", { class: "when" }, fmtTime(at)), h("strong", {}, what)))),
      h("p", { class: "muted" }, T("rp.status_note")));
    box.hidden = false;
  }

  async function check(raw) {
    const code = String(raw || "").trim();
    const box = $("rp-status");
    $("rp-status-code").classList.remove("need");
    if (!code) { $("rp-status-code").classList.add("need"); $("rp-status-code").focus(); return; }
    let r;
    try { r = await fetch(`${API}/${encodeURIComponent(code)}`); } catch (_) {
      say(T("rp.offline"));
      return;
    }
    window.firetowerReport.lookups += 1;
    if (r.status === 404) {
      st.last = null;
      box.hidden = false;
      box.dataset.status = "unknown";
      box.replaceChildren(h("p", { class: "error", id: "rp-unknown" }, T("rp.unknown")));
      return;
    }
    if (!r.ok) {
      const p = await problem(r);
      say(p.text);
      if (p.retryAfter) holdButton($("rp-check"), p.retryAfter);
      return;
    }
    st.last = await r.json();
    showStatus(st.last);
  }
  $("rp-status-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    say("");
    check($("rp-status-code").value);
  });

  // -- boot: #track/<code> opens that report's status -----------------------------------------
  (async () => {
    st.lang = B.pickLang(localStorage.getItem("firetower.lang"), navigator.languages);
    try { st.labels = await (await fetch("labels.json")).json(); } catch (_) { /* English keys */ }
    applyLang();
    const m = /^#track\/([A-Za-z0-9 -]{1,40})$/.exec(decodeURIComponent(location.hash));
    if (m) { $("rp-status-code").value = m[1]; check(m[1]); }
  })();
})();
