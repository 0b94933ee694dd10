// Firetower field pages for a phone (phone.html): the grid member's hazards, new hazards and
// patrols, the unit's "my hazards" (receipt, submit) and the maintenance company's work-order
// queue. Same sign-in and token renewal as the desktop console (console.js); plain script, no
// build step, text only into the DOM (never innerHTML with data). Routes are URL fragments:
//   #hazards  #hazard/<id>  #new  #orders  #order/<id>  #patrols  #checkin/<token>
"use strict";

(function () {
  const API = "/api/v1";
  const B = window.FiretowerBoard;  // board.js: labels and the language choice
  const P = window.FiretowerLoop;   // loop.js: the steps of hazards and work orders
  const RENEW_AT = 0.5;             // renew once less than half of a token's lifetime is left

  const st = {
    token: sessionStorage.getItem("firetower.token"),
    me: null, labels: { en: {}, zh: {} }, lang: "en",
    renewing: null, reauth: null,
    sites: null, nodes: null,
    photoUrls: new Map(),   // file id -> object URL
    route: "", overdueOnly: false,
  };
  window.firetowerPhone = { renewals: 0, uploads: 0 };

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
  const can = (perm) => !!st.me && st.me.permissions.includes(perm);
  const T = (key, vars, fallback) => {
    const v = B.t(st.labels, st.lang, key, vars);
    return v === null ? (fallback !== undefined ? fallback : key) : v;
  };
  const L = (prefix, value) => B.label(st.labels, st.lang, prefix, value);
  const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(st.lang === "zh" ? "zh-CN" : undefined,
    { dateStyle: "short", timeStyle: "short" }) : "";

  const relative = (iso) => P.relative(T, iso);

  function say(text, kind) {
    const el = $("msg");
    el.textContent = text || "";
    el.dataset.kind = kind || "error";
    el.hidden = !text;
  }

  // -- tokens (as in console.js: renewed while open; an expiry asks for the password again
  //    and then carries on with what was being done) -----------------------------------------
  function claims(token) {
    try {
      return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    } catch (_) { return {}; }
  }
  function setToken(token) {
    st.token = token;
    sessionStorage.setItem("firetower.token", token);
  }
  function renewDue() {
    const c = claims(st.token || "");
    return !!(c.exp && c.iat) && Date.now() / 1000 > c.exp - (c.exp - c.iat) * RENEW_AT;
  }
  function renew() {
    if (!st.renewing) {
      st.renewing = (async () => {
        try {
          const r = await fetch(`${API}/auth/refresh`, { method: "POST",
            headers: { Authorization: `Bearer ${st.token}` } });
          if (!r.ok) return false;
          setToken((await r.json()).access_token);
          window.firetowerPhone.renewals += 1;
          return true;
        } catch (_) { return false; } finally { st.renewing = null; }
      })();
    }
    return st.renewing;
  }
  async function renewOrSignIn() {
    if (await renew()) return;
    if (!st.reauth) {
      let resolve;
      const promise = new Promise((res) => { resolve = res; });
      st.reauth = { promise, resolve };
      $("login").classList.add("reauth");
      $("login-user").value = st.me ? st.me.name : "";
      $("login-error").textContent = T("ui.session_expired");
      $("login").hidden = false;
    }
    await st.reauth.promise;
  }
  setInterval(() => { if (st.token && st.me && !st.reauth && renewDue()) renew(); }, 5000);

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function call(path, { method = "GET", body, form, raw = false } = {}, retried = false) {
    const headers = { Authorization: `Bearer ${st.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, { method, headers,
      body: form !== undefined ? form : body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && !retried) {
      await renewOrSignIn();
      return call(path, { method, body, form, raw }, true);
    }
    if (!r.ok) {
      let msg = r.statusText;
      try {
        const d = (await r.json()).detail;
        msg = typeof d === "string" ? d : Array.isArray(d) ? d.map((x) => x.msg).join("; ") : msg;
      } catch (_) { /* not JSON */ }
      throw new ApiError(msg || `HTTP ${r.status}`, r.status);
    }
    if (raw) return r;
    return r.status === 204 ? null : r.json();
  }

  // A photo from the camera or the gallery, stored by POST /files; its id.
  async function upload(file, siteId) {
    const form = new FormData();
    form.append("file", file, file.name || "photo.jpg");
    if (siteId) form.append("site_id", siteId);
    const res = await call("/files", { method: "POST", form });
    window.firetowerPhone.uploads += 1;
    return String(res.id);
  }
  async function uploadAll(input, siteId) {
    const ids = [];
    for (const f of (input && input.files) || []) ids.push(await upload(f, siteId));
    return ids;
  }

  // Thumbnails: the files route wants the bearer token, so images come as blobs.
  function photoStrip(ids, label) {
    if (!ids || !ids.length) return null;
    const box = h("div", { class: "photos" });
    for (const id of ids) {
      const img = h("img", { alt: label, dataset: { fileId: id }, loading: "lazy" });
      box.append(h("a", { class: "photo", dataset: { fileId: id } }, img));
      (async () => {
        try {
          let url = st.photoUrls.get(id);
          if (!url) {
            const r = await call(`/files/${encodeURIComponent(id)}`, { raw: true });
            url = URL.createObjectURL(await r.blob());
            st.photoUrls.set(id, url);
          }
          img.src = url;
          img.parentElement.href = url;
          img.parentElement.target = "_blank";
        } catch (_) { img.replaceWith(h("span", { class: "muted" }, `#${id}`)); }
      })();
    }
    return h("section", { class: "block" }, h("h3", {}, label), box);
  }

  async function sites() {
    if (!st.sites) {
      try { st.sites = new Map((await call("/sites")).data.map((s) => [s.id, s])); } catch (_) {
        st.sites = new Map();
      }
    }
    return st.sites;
  }
  async function nodes() {
    if (!st.nodes) {
      try {
        st.nodes = new Map((await call("/jurisdictions?limit=10000")).data.map((n) => [n.id, n]));
      } catch (_) { st.nodes = new Map(); }
    }
    return st.nodes;
  }
  const siteName = (id) => (id && st.sites && st.sites.get(id) ? st.sites.get(id).name : id || "");
  function ownerText(hz) {
    const n = st.nodes && st.nodes.get(hz.owner_id);
    const level = n ? L("level", n.level) : "";
    return [hz.owner_name, level ? `(${level})` : ""].filter(Boolean).join(" ");
  }

  // -- sign-in ------------------------------------------------------------------------------
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    const form = new URLSearchParams({ username: $("login-user").value,
      password: $("login-password").value });
    let r;
    try { r = await fetch(`${API}/auth/token`, { method: "POST", body: form }); } catch (_) {
      $("login-error").textContent = T("ph.offline", null, "No connection");
      return;
    }
    if (!r.ok) {
      $("login-error").textContent = (await r.json().catch(() => ({}))).detail || "Sign-in failed";
      return;
    }
    setToken((await r.json()).access_token);
    $("login-password").value = "";
    if (st.reauth) {
      const same = st.me && String(claims(st.token).sub) === String(st.me.id);
      const { resolve } = st.reauth;
      st.reauth = null;
      $("login").classList.remove("reauth");
      $("login").hidden = true;
      if (same) { resolve(); return; }
      st.sites = st.nodes = null;
      resolve();
    }
    await start();
  });
  $("logout").addEventListener("click", () => {
    st.token = null; st.me = null; st.sites = st.nodes = null;
    sessionStorage.removeItem("firetower.token");
    $("app").hidden = true;
    $("login").hidden = false;
  });

  async function start() {
    try { st.me = await call("/auth/me"); } catch (_) { return; }
    $("whoami").textContent = `${st.me.name} · ${T(`role.${st.me.role}`, null, st.me.role)}`;
    $("login").hidden = true;
    $("app").hidden = false;
    await Promise.all([sites(), nodes()]);
    renderTabs();
    route();
  }

  // -- language -----------------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = st.lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = T(el.dataset.i18n);
    $("lang").value = st.lang;
    if (st.me) { renderTabs(); route(); }
  }
  $("lang").addEventListener("change", () => {
    st.lang = $("lang").value;
    localStorage.setItem("firetower.lang", st.lang);
    applyLang();
  });

  // -- sections per party -------------------------------------------------------------------
  function sections() {
    const out = [];
    const installer = st.me.role === "installer";
    if (can("hazard:read") && !installer) out.push(["hazards", T("ph.my_hazards")]);
    if (can("hazard:report")) out.push(["new", T("ph.new_hazard")]);
    if (can("workorder:handle") || (can("workorder:read") && ["supervisor", "operator", "admin"]
      .includes(st.me.role))) out.push(["orders", T("ph.work_orders")]);
    if (can("patrol:checkin")) out.push(["patrols", T("ph.patrols")]);
    return out;
  }
  function renderTabs() {
    const cur = (location.hash.slice(1).split("/")[0]) || home();
    const map = { hazard: "hazards", order: "orders", checkin: "patrols" };
    const active = map[cur] || cur;
    $("tabs").replaceChildren(...sections().map(([k, label]) =>
      h("a", { href: `#${k}`, class: `tab${k === active ? " active" : ""}`, dataset: { tab: k } },
        label)));
  }
  function home() {
    const s = sections();
    return s.length ? s[0][0] : "hazards";
  }

  window.addEventListener("hashchange", () => { if (st.me) { renderTabs(); route(); } });

  async function route() {
    say("");
    const [name, arg] = (location.hash.slice(1) || home()).split("/");
    st.route = name;
    const main = $("main");
    main.dataset.view = name;
    try {
      if (name === "hazards") await hazardList(main);
      else if (name === "hazard") await hazardDetail(main, Number(arg));
      else if (name === "new") await newHazard(main);
      else if (name === "orders") await orderList(main);
      else if (name === "order") await orderDetail(main, Number(arg));
      else if (name === "patrols") await patrolList(main);
      else if (name === "checkin") await checkinForm(main, decodeURIComponent(arg || ""));
      else { location.hash = `#${home()}`; }
    } catch (err) {
      main.replaceChildren(h("p", { class: "empty" }, T("ph.failed", null, "Could not load")));
      say(err.message);
    }
    window.scrollTo(0, 0);
  }

  // -- hazards: the list ----------------------------------------------------------------------
  function hazardBadges(hz) {
    return [
      h("span", { class: `pill st-${hz.state}`, dataset: { field: "state" } }, L("hz.state", hz.state)),
      hz.overdue ? h("span", { class: "pill overdue" }, T("hz.overdue")) : null,
      hz.severity === "major" ? h("span", { class: "pill major" }, L("hz.severity", "major")) : null,
      hz.listed ? h("span", { class: "pill listed" }, T("hz.listed")) : null,
    ];
  }
  const myTurn = (hz) => P.mySteps(hz).length > 0;

  async function hazardList(main) {
    const q = new URLSearchParams({ open: "true", limit: "500" });
    if (st.overdueOnly) q.set("overdue", "true");
    const res = await call(`/hazards?${q}`);
    const list = h("ul", { id: "hazard-list", class: "cards" });
    for (const hz of res.data) {  // most urgent first, as the API orders them
      list.append(h("li", { class: `card hz${hz.overdue ? " is-overdue" : ""}`,
        dataset: { hazardId: hz.id, state: hz.state, overdue: String(hz.overdue) } },
      h("a", { href: `#hazard/${hz.id}` },
        h("span", { class: "title" }, hz.title),
        h("span", { class: "pills" }, hazardBadges(hz),
          myTurn(hz) ? h("span", { class: "pill todo" }, T("ph.your_turn")) : null),
        h("span", { class: "meta" }, [siteName(hz.site_id) || hz.owner_name,
          P.due(T, hz) ? `${T("hz.deadline")}: ${P.due(T, hz)}` : null]
          .filter(Boolean).join(" · ")))));
    }
    const overdue = res.data.filter((x) => x.overdue).length;
    main.replaceChildren(
      h("div", { class: "head" },
        h("h2", {}, T("ph.my_hazards")),
        h("span", { class: "muted", id: "hazard-count" },
          T("ph.open_overdue", { n: res.count, m: overdue }))),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "overdue-only",
        checked: st.overdueOnly, onchange: (ev) => { st.overdueOnly = ev.target.checked; route(); } }),
      T("ph.overdue_only")),
      res.data.length ? list : h("p", { class: "empty", id: "hazard-empty" }, T("ph.no_hazards")));
  }

  // -- hazards: one, with its steps -----------------------------------------------------------
  function kv(rows) {
    return h("dl", { class: "kv" }, rows.filter((r) => r && r[1] !== "" && r[1] !== null
      && r[1] !== undefined).map(([k, v, field]) =>
      [h("dt", {}, k), h("dd", { dataset: field ? { field } : {} }, v)]));
  }

  function eventLog(events, prefix) {  // prefix: "hz" or "wo" (labels of the kinds)
    return h("section", { class: "block" }, h("h3", {}, T("ph.history")),
      h("ol", { class: "log", id: "event-log" }, events.map((e) =>
        h("li", { dataset: { kind: e.kind } },
          h("span", { class: "when" }, fmtTime(e.at)),
          h("strong", {}, L(`${prefix}.event`, e.kind)),
          h("span", { class: "who" }, ` · ${P.actor(e.actor)}`),
          e.note ? h("p", { class: "note" }, e.note) : null))));
  }

  // The form of one step: a note (required for some), photos from the camera ("required" for
  // a rectification, "optional" for a repair report), and the button that sends it.
  function stepForm({ trigger, label, needsNote, photo, siteId, send }) {
    const note = h("textarea", { id: "step-note", rows: 3, maxlength: 4000,
      placeholder: needsNote ? T("ph.note_required") : T("ph.note_optional") });
    const file = photo ? h("input", { id: "step-photo", type: "file", accept: "image/*",
      capture: "environment", multiple: true }) : null;
    const preview = h("div", { class: "photos", id: "step-preview" });
    if (file) {
      file.addEventListener("change", () => {
        preview.replaceChildren(...[...file.files].map((f) =>
          h("img", { alt: f.name, src: URL.createObjectURL(f) })));
      });
    }
    const go = h("button", { class: "primary big", id: "step-send", type: "submit" }, label);
    const form = h("form", { class: "step-form", dataset: { trigger } },
      h("h3", {}, label),
      h("label", {}, T("ph.note"), note),
      file ? h("label", { class: "camera" }, h("span", {}, T("ph.photo")), file) : null,
      preview,
      h("div", { class: "row" }, go,
        h("button", { type: "button", class: "big", onclick: () => form.remove() }, T("ph.cancel"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (needsNote && !note.value.trim()) {
        note.classList.add("need");
        note.focus();
        say(T("ph.note_required"));
        return;
      }
      if (photo === "required" && !file.files.length) {
        file.parentElement.classList.add("need");
        say(T("ph.photo_required"));
        return;
      }
      go.disabled = true;
      go.textContent = T("ph.sending");
      try {
        const files = await uploadAll(file, siteId);
        await send(note.value.trim(), files);
        say("");
      } catch (err) {
        say(err.message);
        go.disabled = false;
        go.textContent = label;
      }
    });
    return form;
  }

  // The buttons of the steps the user may take on a hazard or an order, each opening its form
  // in `area`; after the step, `reload` draws the record again.
  function stepButtons(kind, record, area, reload) {
    const k = P.KINDS[kind];
    const steps = P.mySteps(record);
    const open = (t) => {
      area.replaceChildren(stepForm({ trigger: t, label: L(`${k.prefix}.trigger`, t),
        needsNote: P.needs(record, t).note, photo: P.needs(record, t).photo, siteId: record.site_id,
        send: async (note, files) => {
          await call(`/${k.path}/${record.id}/steps`, { method: "POST",
            body: { trigger: t, note, files } });
          say(T("ph.done", { step: L(`${k.prefix}.trigger`, t) }), "ok");
          await reload();
        } }));
      $("step-note").focus();
    };
    return steps.length ? h("div", { class: "actions", id: "steps" }, steps.map((t) =>
      h("button", { class: `big step${["submit", "verify", "respond"].includes(t) ? " primary" : ""}`,
        dataset: { trigger: t }, onclick: () => open(t) }, L(`${k.prefix}.trigger`, t))))
      : h("p", { class: "muted", id: "no-steps" }, T("ph.nothing_to_do"));
  }

  async function hazardDetail(main, id) {
    const hz = await call(`/hazards/${id}`);
    const area = h("div", { id: "step-area" });
    main.replaceChildren(
      h("a", { href: "#hazards", class: "back" }, `‹ ${T("ph.my_hazards")}`),
      h("article", { class: `hazard${hz.overdue ? " is-overdue" : ""}`, id: "hazard",
        dataset: { hazardId: hz.id, state: hz.state, overdue: String(hz.overdue) } },
      h("h2", {}, hz.title),
      h("div", { class: "pills" }, hazardBadges(hz)),
      hz.overdue ? h("p", { class: "overdue-line" }, `${T("hz.overdue")}: ${relative(hz.deadline)}`) : null,
      kv([
        [T("ui.site"), siteName(hz.site_id)],
        [T("hz.deadline"), hz.deadline ? `${fmtTime(hz.deadline)}${P.due(T, hz) ? ` (${P.due(T, hz)})` : ""}`
          : "", "deadline"],
        [T("hz.owner"), ownerText(hz), "owner"],
        [T("hz.escalations"), hz.escalations ? String(hz.escalations) : "", "escalations"],
        [T("hz.source"), L("hz.source", hz.source)],
        [T("hz.category"), hz.category ? L("hz.category", hz.category) : ""],
        [T("hz.legal_basis"), hz.legal_basis],
        [T("ui.responsible"), [hz.responsible_name, hz.responsible_phone].filter(Boolean).join(" · ")],
        [T("hz.found"), `${fmtTime(hz.found_at)} · ${P.actor(hz.found_by)}`],
      ]),
      hz.description ? h("p", { class: "desc" }, hz.description) : null,
      photoStrip(hz.files_before, T("hz.photos_before")),
      photoStrip(hz.files_after, T("hz.photos_after")),
      stepButtons("hazard", hz, area, () => hazardDetail(main, id)),
      area,
      eventLog(hz.events, "hz")));
  }

  // -- hazards: record one -------------------------------------------------------------------
  async function newHazard(main) {
    const siteMap = await sites();
    const scopeNode = st.me.scope_kind === "jurisdiction" ? st.me.scope_id : null;
    const nodeName = scopeNode && st.nodes && st.nodes.get(scopeNode)
      ? st.nodes.get(scopeNode).name : "";
    const site = h("select", { id: "new-site" },
      scopeNode ? h("option", { value: "" }, `${T("ph.no_site")}${nodeName ? ` (${nodeName})` : ""}`) : null,
      [...siteMap.values()].map((s) => h("option", { value: s.id }, s.name)));
    const title = h("input", { id: "new-title", required: true, maxlength: 200,
      placeholder: T("ph.title_hint") });
    const desc = h("textarea", { id: "new-description", rows: 3, maxlength: 4000 });
    const severity = h("select", { id: "new-severity" },
      ["general", "major"].map((s) => h("option", { value: s }, L("hz.severity", s))));
    const category = h("select", { id: "new-category" }, ["", "evacuation", "fire_lane",
      "fire_equipment", "electrical", "ebike", "fire_load", "management", "other"].map((c) =>
      h("option", { value: c }, c ? L("hz.category", c) : "—")));
    const deadline = h("input", { id: "new-deadline", type: "date" });
    const photo = h("input", { id: "new-photo", type: "file", accept: "image/*",
      capture: "environment", multiple: true });
    const go = h("button", { class: "primary big", id: "new-send", type: "submit" }, T("ph.record"));
    const form = h("form", { class: "new-form" },
      h("h2", {}, T("ph.new_hazard")),
      h("label", {}, T("hz.title"), title),
      h("label", {}, T("ui.site"), site),
      h("label", {}, T("hz.severity"), severity),
      h("label", {}, T("hz.category"), category),
      h("label", {}, T("hz.description"), desc),
      h("label", {}, `${T("hz.deadline")} (${T("ph.optional")})`, deadline),
      h("label", { class: "camera" }, h("span", {}, T("ph.photo")), photo),
      go);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!title.value.trim()) { title.classList.add("need"); title.focus(); return; }
      go.disabled = true;
      try {
        const body = { title: title.value.trim(), description: desc.value.trim(),
          severity: severity.value, category: category.value, source: "manual" };
        if (site.value) body.site_id = site.value; else if (scopeNode) body.jurisdiction_id = scopeNode;
        if (deadline.value) {  // the end of that day, on the phone's clock, with its offset
          const d = new Date(`${deadline.value}T23:59:00`);
          body.deadline = d.toISOString();
        }
        body.files = await uploadAll(photo, site.value || null);
        const hz = await call("/hazards", { method: "POST", body });
        location.hash = `#hazard/${hz.id}`;
      } catch (err) { say(err.message); go.disabled = false; }
    });
    main.replaceChildren(form);
  }

  // -- work orders (the maintenance company's queue) -------------------------------------------
  const late = P.orderLate;
  function orderPills(o) {
    return [
      h("span", { class: `pill wo-${o.state}`, dataset: { field: "state" } }, L("wo.state", o.state)),
      o.response_late && !o.responded_at ? h("span", { class: "pill overdue" }, T("wo.response_late")) : null,
      o.repair_late && o.state !== "closed" ? h("span", { class: "pill overdue" }, T("wo.repair_late")) : null,
      o.repeat_of ? h("span", { class: "pill listed" }, T("wo.repeat_of", { id: o.repeat_of })) : null,
    ];
  }
  async function orderList(main) {
    const res = await call("/work-orders?open=true&limit=500");
    const rows = [...res.data].sort((a, b) => (late(b) - late(a))
      || (new Date(a.repair_by) - new Date(b.repair_by)) || (a.id - b.id));
    const list = h("ul", { id: "order-list", class: "cards" }, rows.map((o) =>
      h("li", { class: `card wo${late(o) ? " is-overdue" : ""}`,
        dataset: { orderId: o.id, state: o.state, late: String(late(o)) } },
      h("a", { href: `#order/${o.id}` },
        h("span", { class: "title" }, o.title),
        h("span", { class: "pills" }, orderPills(o)),
        h("span", { class: "meta" }, [siteName(o.site_id), o.device_id,
          o.responded_at ? `${T("wo.repair_by")}: ${relative(o.repair_by)}`
            : `${T("wo.respond_by")}: ${relative(o.respond_by)}`].filter(Boolean).join(" · "))))));
    main.replaceChildren(h("div", { class: "head" }, h("h2", {}, T("ph.work_orders")),
      h("span", { class: "muted" }, T("ph.open_late", { n: res.count, m: rows.filter(late).length }))),
    rows.length ? list : h("p", { class: "empty", id: "order-empty" }, T("ph.no_orders")));
  }
  async function orderDetail(main, id) {
    const o = await call(`/work-orders/${id}`);
    const area = h("div", { id: "step-area" });
    main.replaceChildren(
      h("a", { href: "#orders", class: "back" }, `‹ ${T("ph.work_orders")}`),
      h("article", { class: `order${late(o) ? " is-overdue" : ""}`, id: "order",
        dataset: { orderId: o.id, state: o.state } },
      h("h2", {}, o.title),
      h("div", { class: "pills" }, orderPills(o)),
      kv([
        [T("ui.site"), siteName(o.site_id)],
        [T("ui.device"), o.device_id || ""],
        [T("wo.class"), L("class", o.alarm_class)],
        [T("wo.respond_by"), `${fmtTime(o.respond_by)} (${relative(o.respond_by)})`],
        [T("wo.repair_by"), `${fmtTime(o.repair_by)} (${relative(o.repair_by)})`],
        [T("wo.responded"), o.responded_at ? `${fmtTime(o.responded_at)} · ${P.actor(o.responded_by)}` : ""],
        [T("wo.company"), o.company_name || ""],
      ]),
      h("p", { class: "muted" }, T("wo.closes_itself")),
      photoStrip(o.files, T("hz.photos_after")),
      stepButtons("order", o, area, () => orderDetail(main, id)),
      area,
      eventLog(o.events, "wo")));
  }

  // -- patrols (巡查): what is due now, what was missed, and the check-in a QR code opens -------
  // The patrol routes may be missing on an older centre: a 404 from /patrols/due says so.
  async function patrolPlans() {
    try { return (await call("/patrol-plans?limit=1000")).data; } catch (_) { return []; }
  }

  async function patrolList(main) {
    let due, missed;
    try {
      [due, missed] = await Promise.all([call("/patrols/due"), call("/patrols/missed")]);
    } catch (err) {
      if (err.status !== 404) throw err;
      main.replaceChildren(h("h2", {}, T("ph.patrols")),
        h("p", { class: "empty", id: "patrol-empty" }, T("ph.no_patrol_api")));
      return;
    }
    const plans = new Map((await patrolPlans()).map((p) => [p.id, p]));
    const cpName = (planId, cpId) => {
      const cp = ((plans.get(planId) || {}).checkpoints || []).find((c) => c.id === cpId);
      return cp ? cp.name : `#${cpId}`;
    };
    const code = h("input", { id: "checkin-code", placeholder: T("ph.code"), autocapitalize: "none",
      maxlength: 128 });
    const dueItems = due.flatMap((p) => p.checkpoints.map((c) =>
      h("li", { class: "card patrol", dataset: { plan: p.plan_id, checkpoint: c.checkpoint_id,
        missed: "false" } },
      h("div", { class: "inner" },
        h("span", { class: "title" }, c.name),
        h("span", { class: "pills" }, h("span", { class: "pill todo" }, T("ph.due_today"))),
        h("span", { class: "meta" }, [p.plan_name, c.site_name, c.location,
          `${T("hz.deadline")}: ${relative(p.period_end)}`].filter(Boolean).join(" · "))))));
    const missedItems = missed.data.slice().reverse().map((m) =>
      h("li", { class: "card patrol is-overdue", dataset: { plan: m.plan_id,
        checkpoint: m.checkpoint_id, missed: "true" } },
      h("div", { class: "inner" },
        h("span", { class: "title" }, cpName(m.plan_id, m.checkpoint_id)),
        h("span", { class: "pills" }, h("span", { class: "pill overdue" }, T("ph.missed"))),
        h("span", { class: "meta" }, [(plans.get(m.plan_id) || {}).name, siteName(m.site_id),
          `${fmtTime(m.period_start)} – ${fmtTime(m.period_end)}`].filter(Boolean).join(" · ")))));
    P.fill(main,
      h("h2", {}, T("ph.patrols")),
      h("form", { class: "row code-row", onsubmit: (ev) => {
        ev.preventDefault();
        if (code.value.trim()) location.hash = `#checkin/${encodeURIComponent(code.value.trim())}`;
      } }, code, h("button", { type: "submit" }, T("ph.check_in"))),
      h("h3", {}, T("ph.due_today")),
      dueItems.length ? h("ul", { id: "patrol-due", class: "cards" }, dueItems)
        : h("p", { class: "empty", id: "patrol-empty" }, T("ph.no_patrols")),
      missedItems.length ? [h("h3", {}, T("ph.missed")),
        h("ul", { id: "patrol-missed", class: "cards" }, missedItems)] : null);
  }

  function position() {
    return new Promise((resolve) => {
      if (!navigator.geolocation) { resolve(null); return; }
      navigator.geolocation.getCurrentPosition(
        (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude,
          accuracy_m: p.coords.accuracy }),
        () => resolve(null), { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
    });
  }

  // The check-in a checkpoint's QR code opens (#checkin/<token>). The token is kept by the
  // centre as a hash only, so the page cannot tell which checkpoint it names before the visit
  // is sent: the checklist is the plan's (the one plan, or the one chosen).
  async function checkinForm(main, token) {
    const plans = (await patrolPlans()).filter((p) => p.active);
    const gps = h("p", { class: "muted", id: "checkin-gps" }, T("ph.gps_wait"));
    let where = null;
    position().then((p) => {
      where = p;
      gps.textContent = p ? T("ph.gps_ok", { acc: Math.round(p.accuracy_m || 0) }) : T("ph.gps_none");
      gps.dataset.state = p ? "ok" : "none";
    });
    const list = h("ul", { class: "checklist", id: "checklist" });
    let items = [];
    const showChecklist = (plan) => {
      items = ((plan && plan.checklist) || []).map((it) => {
        const ok = h("input", { type: "radio", name: `item-${it.id}`, value: "ok", checked: true });
        const bad = h("input", { type: "radio", name: `item-${it.id}`, value: "fail" });
        const note = h("input", { placeholder: T("ph.note_optional"), maxlength: 1000 });
        return { it, bad, note, el: h("li", { class: "check-item", dataset: { item: it.id } },
          h("span", {}, it.text),
          h("span", { class: "row" }, h("label", { class: "check" }, ok, T("ph.ok")),
            h("label", { class: "check" }, bad, T("ph.fail"))), note) };
      });
      list.replaceChildren(...items.map((x) => x.el));
    };
    const planSel = plans.length > 1 ? h("select", { id: "checkin-plan",
      onchange: (ev) => showChecklist(plans.find((p) => String(p.id) === ev.target.value)) },
    plans.map((p) => h("option", { value: p.id }, p.name))) : null;
    showChecklist(plans[0]);
    const note = h("textarea", { id: "checkin-note", rows: 2, maxlength: 2000,
      placeholder: T("ph.note_optional") });
    const photo = h("input", { id: "checkin-photo", type: "file", accept: "image/*",
      capture: "environment", multiple: true });
    const go = h("button", { class: "primary big", id: "checkin-send", type: "submit" }, T("ph.check_in"));
    const clientRef = `phone:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 10)}`;
    const form = h("form", { class: "new-form", id: "checkin" },
      h("h2", {}, T("ph.check_in")),
      gps,
      planSel ? h("label", {}, T("ph.plan"), planSel) : null,
      list,
      h("label", {}, T("ph.note"), note),
      h("label", { class: "camera" }, h("span", {}, T("ph.photo")), photo),
      go);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      go.disabled = true;
      try {
        const photos = await uploadAll(photo, null);
        const body = { token, photos, note: note.value.trim(), client_ref: clientRef,
          results: items.map((x) => ({ item_id: x.it.id, passed: !x.bad.checked,
            note: x.note.value.trim() })) };
        if (where) Object.assign(body, where);
        const out = await call("/patrol-checkins", { method: "POST", body });
        main.replaceChildren(h("div", { class: "done", id: "checkin-done",
          dataset: { checkin: out.id, flags: out.flags.join(",") } },
        h("h2", {}, T("ph.checked_in")),
        kv([[T("ui.site"), siteName(out.site_id)], [T("ph.when"), fmtTime(out.at)],
          [T("ph.flags"), out.flags.map((f) => T(`ph.flag.${f}`, null, f)).join(", ")]]),
        out.hazard_ids.length ? h("ul", { class: "cards", id: "checkin-hazards" },
          out.hazard_ids.map((id) => h("li", { class: "card" },
            h("a", { href: `#hazard/${id}` }, h("span", { class: "title" }, `${T("ph.new_hazard")} #${id}`)))))
          : null,
        h("a", { href: "#patrols", class: "back" }, `‹ ${T("ph.patrols")}`)));
        window.scrollTo(0, 0);
      } catch (err) { say(err.message); go.disabled = false; }
    });
    main.replaceChildren(form);
  }

  // -- boot ---------------------------------------------------------------------------------
  (async () => {
    st.lang = B.pickLang(localStorage.getItem("firetower.lang"), navigator.languages);
    try { st.labels = await (await fetch("labels.json")).json(); } catch (_) { /* English keys */ }
    applyLang();
    if (st.token) start();
  })();
})();
