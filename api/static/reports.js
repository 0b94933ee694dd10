// Firetower console: triage of the public's reports (举报) in a tab of its own. The list (those
// waiting for triage first, newest first, duplicates counted), a report's detail with its
// photos (fetched with the token, shown through object URLs), the reporter's contact (only the
// detail has it, only for `report:triage`), its history, and the steps: merge into another
// report, dismiss with a reason, convert to a hazard, the reward. Steps are offered only with
// `report:triage`; the API refuses the rest anyway (docs/hazards-files-and-reports.md).
// Loaded after console.js; shares its state and helpers (h, $, state, T, L, can, fmtTime,
// renewOrSignIn).
"use strict";

(function () {
  const P = window.FiretowerLoop;  // loop.js: fill, every, actor
  const REFRESH_MS = 30000;
  const CATEGORIES = ["blocked_exit", "fire_lane", "fire_equipment", "electrical",
    "ebike_charging", "flammables", "other"];
  const STATUSES = ["received", "merged", "dismissed", "converted"];
  // The reward's steps (hazards/reports.py REWARD_STEPS); eligible and granted need a report
  // that became a hazard.
  const REWARD_NEXT = { none: ["eligible", "refused"], eligible: ["granted", "refused", "none"],
    refused: ["eligible"], granted: [] };
  const rp = { built: false, timer: null, selected: null, sites: new Map(),
    nodes: new Map(), photoUrls: new Map(), filters: { status: "", category: "", open: false } };
  window.firetowerReports = rp;  // for tests

  const siteName = (id) => (rp.sites.get(id) || {}).name || id || "";
  const nodeName = (id) => { const n = rp.nodes.get(id); return n ? `${n.name} (${L("level", n.level)})` : ""; };
  const catText = (c) => L("rp.cat", c);

  // Like console.js api(), but a refusal reads FastAPI's list of field errors too.
  async function call(path, { method = "GET", body, raw = false } = {}, retried = false) {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && !retried) {
      await renewOrSignIn();
      return call(path, { method, body, raw }, true);
    }
    if (!r.ok) {
      let msg = r.statusText || `HTTP ${r.status}`;
      try {
        const d = (await r.json()).detail;
        msg = typeof d === "string" ? d : Array.isArray(d)
          ? d.map((x) => `${(x.loc || []).filter((p) => p !== "body").join(".")}: ${x.msg}`).join("; ") : msg;
      } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    if (raw) return r;
    return r.status === 204 ? null : r.json();
  }

  // Metres between two reports, when both have a place.
  function metres(a, b) {
    if (a.latitude === null || b.latitude === null) return null;
    const rad = Math.PI / 180;
    const dp = (b.latitude - a.latitude) * rad, dl = (b.longitude - a.longitude) * rad;
    const x = Math.sin(dp / 2) ** 2
      + Math.cos(a.latitude * rad) * Math.cos(b.latitude * rad) * Math.sin(dl / 2) ** 2;
    return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(x)));
  }

  function pills(x) {
    return [
      h("span", { class: `hz-pill rp-${x.status}`, dataset: { field: "status" } }, L("rp.status", x.status)),
      x.duplicates ? h("span", { class: "hz-pill listed", dataset: { field: "duplicates" } },
        T("rpt.dup_n", { n: x.duplicates })) : null,
      x.reward_status !== "none" ? h("span", { class: "hz-pill", dataset: { field: "reward" } },
        `${T("rp.reward")}: ${L("rp.reward", x.reward_status)}`) : null,
    ];
  }

  // -- the frame, built once -----------------------------------------------------------------
  function build() {
    const f = rp.filters;
    const sel = (id, key, values, labelOf, title) => h("select", { id, onchange: (ev) => {
      f[key] = ev.target.value; load().catch(show); } },
    h("option", { value: "" }, `${title}: ${T("hzb.any")}`),
    values.map((v) => h("option", { value: v, selected: f[key] === v }, labelOf(v))));
    $("view-reports").replaceChildren(h("div", { class: "hz-layout" },
      h("section", { class: "hz-card hz-main" },
        h("div", { class: "hz-head" }, h("h3", {}, `${T("rpt.public_reports")} 举报`),
          h("div", { class: "hz-filters" },
            sel("rp-f-status", "status", STATUSES, (v) => L("rp.status", v), T("rp.status")),
            sel("rp-f-category", "category", CATEGORIES, catText, T("rp.category_short")),
            h("label", { class: "hz-check" }, h("input", { type: "checkbox", id: "rp-f-open",
              checked: f.open, onchange: (ev) => { f.open = ev.target.checked; load().catch(show); } }),
            T("rpt.to_triage")))),
        h("p", { class: "error", id: "rp-list-error", role: "alert" }),
        h("table", { class: "hz-table", id: "rp-table" })),
      h("aside", { class: "detail hz-detail", id: "rp-detail" },
        h("p", { class: "empty" }, T("rpt.select")))));
    rp.built = true;
  }
  const show = (err) => { $("rp-list-error").textContent = err.message; };

  // -- the list: waiting for triage first, then newest first ---------------------------------
  async function load() {
    const f = rp.filters;
    const q = new URLSearchParams({ limit: "500" });
    if (f.open) q.set("status", "received");
    else if (f.status) q.set("status", f.status);
    if (f.category) q.set("category", f.category);
    const res = await call(`/reports?${q}`);
    const rows = [...res.data].sort((a, b) =>
      ((b.status === "received") - (a.status === "received")) || b.id - a.id);
    $("rp-list-error").textContent = "";
    const head = h("tr", {}, ["#", T("rpt.received"), T("rp.category_short"), T("rp.description"),
      T("ui.site"), T("rp.status"), T("rpt.duplicates")].map((c) => h("th", {}, c)));
    $("rp-table").replaceChildren(h("thead", {}, head), h("tbody", {}, rows.length
      ? rows.map((x) => h("tr", {
        class: `hz-row rp-row${rp.selected === x.id ? " selected" : ""}`,
        dataset: { reportId: x.id, status: x.status, duplicates: x.duplicates },
        onclick: () => select(x.id) },
      h("td", {}, x.id),
      h("td", {}, fmtTime(x.received_at)),
      h("td", {}, catText(x.category)),
      h("td", { class: "rp-desc" }, x.description.length > 80 ? `${x.description.slice(0, 80)}…` : x.description,
        x.photos.length ? h("span", { class: "muted" }, ` · ${T("rpt.photos")} ${x.photos.length}`) : null),
      h("td", {}, siteName(x.site_id) || (x.jurisdiction_id ? nodeName(x.jurisdiction_id) : "—")),
      h("td", { dataset: { field: "status" } }, L("rp.status", x.status),
        x.merged_into ? h("span", { class: "muted" }, ` → #${x.merged_into}`) : null),
      h("td", { dataset: { field: "duplicates" }, class: x.duplicates ? "warn" : "" }, x.duplicates)))
      : h("tr", {}, h("td", { colspan: 7, class: "empty", id: "rp-empty" }, T("rpt.none")))));
  }

  // -- one report ----------------------------------------------------------------------------
  function select(id) {
    rp.selected = id;
    for (const el of document.querySelectorAll("#rp-table tr[data-report-id]")) {
      el.classList.toggle("selected", Number(el.dataset.reportId) === id);
    }
    detail(id).catch((err) => {
      $("rp-detail").replaceChildren(h("p", { class: "error" }, err.message));
    });
  }

  function photos(ids) {
    if (!ids.length) return null;
    const box = h("div", { class: "hz-photos", id: "rp-photos" });
    for (const id of ids) {
      const img = h("img", { alt: T("rpt.photos"), dataset: { fileId: id } });
      const link = h("a", { target: "_blank", rel: "noopener" }, img);
      box.append(link);
      (async () => {
        try {
          let url = rp.photoUrls.get(id);
          if (!url) {
            url = URL.createObjectURL(await (await call(`/files/${encodeURIComponent(id)}`, { raw: true })).blob());
            rp.photoUrls.set(id, url);
          }
          img.src = url;
          link.href = url;
        } catch (_) { link.replaceWith(h("span", { class: "muted" }, `#${id}`)); }
      })();
    }
    return [h("h3", {}, T("rpt.photos")), box];
  }

  function contactText(x) {
    if (x.contact) return x.contact;
    return x.has_contact ? T("rpt.contact_hidden") : T("rpt.contact_none");
  }

  // The reports one may merge into: received, or already a hazard (the newest of each).
  async function mergeTargets() {
    const [a, b] = await Promise.all(["received", "converted"].map((s) =>
      call(`/reports?status=${s}&limit=500`)));
    return [...a.data, ...b.data];
  }

  async function detail(id) {
    const x = await call(`/reports/${id}`);
    const targets = x.status === "received" && can("report:triage") ? await mergeTargets() : [];
    const kvs = [
      [T("rp.code"), x.tracking_code, "code"],
      [T("rpt.received"), fmtTime(x.received_at)],
      [T("rpt.channel"), [L("rpt.channel", x.channel), x.external_ref].filter(Boolean).join(" · ")],
      [T("rp.address"), x.address, "address"],
      [T("rpt.location"), x.latitude !== null ? `${x.latitude.toFixed(5)}, ${x.longitude.toFixed(5)}` : "", "location"],
      [T("ui.site"), siteName(x.site_id), "site"],
      [T("ui.jurisdiction"), x.jurisdiction_id ? nodeName(x.jurisdiction_id) : (x.node_code || "")],
      [T("rpt.contact"), contactText(x), "contact"],
      [T("rpt.merged_into"), x.merged_into ? `#${x.merged_into}` : "", "merged-into"],
      [T("rpt.hazard"), x.hazard_id ? `#${x.hazard_id}` : "", "hazard"],
      [T("rpt.dismiss_reason"), x.dismiss_reason, "dismiss-reason"],
      [T("rp.reward"), x.reward_status !== "none" ? [L("rp.reward", x.reward_status),
        x.reward_amount !== null ? `¥${x.reward_amount}` : "", x.reward_note].filter(Boolean).join(" · ") : "", "reward"],
    ].filter((r) => r[1]);
    const err = h("p", { class: "error", id: "rp-error", role: "alert" });
    P.fill($("rp-detail"),
      h("h2", { id: "rp-title", dataset: { reportId: x.id, status: x.status } },
        `#${x.id} ${catText(x.category)}`),
      h("div", { class: "pills", id: "rp-pills" }, pills(x)),
      h("dl", { class: "kv" }, kvs.map(([k, v, field]) => [h("dt", {}, k),
        h("dd", { dataset: field ? { field } : {} }, v)])),
      h("p", { class: "rp-text", id: "rp-description" }, x.description),
      photos(x.photos),
      can("report:triage") ? actions(x, targets, err) : null,
      err,
      h("h3", {}, T("ui.timeline")),
      h("ul", { class: "timeline", id: "rp-events" }, (x.events || []).map((e) =>
        h("li", { dataset: { kind: e.kind } },
          h("span", { class: "when" }, fmtTime(e.at)),
          L("rpt.event", e.kind),
          e.details && e.details.into ? ` → #${e.details.into}` : "",
          e.details && e.details.hazard_id ? ` → ${T("rpt.hazard")} #${e.details.hazard_id}` : "",
          e.kind === "reward" && e.details ? ` ${L("rp.reward", e.details.from)} → ${L("rp.reward", e.details.to)}` : "",
          h("span", { class: "muted" }, ` · ${P.actor(e.actor)}`),
          e.note ? h("div", { class: "muted" }, e.note) : null))));
  }

  // The steps for a report (only with report:triage): on a received report, convert, merge
  // or dismiss; the reward's next statuses as its diagram allows them.
  function actions(x, targets, err) {
    const forms = [];
    const run = async (btn, fn) => {
      err.textContent = "";
      btn.disabled = true;
      try { await fn(); await refresh(); } catch (e) { err.textContent = e.message; btn.disabled = false; }
    };
    const need = (el, key) => { el.classList.add("need"); el.focus(); err.textContent = T(key); };
    if (x.status === "received") forms.push(convertForm(x, run, need), mergeForm(x, targets, run, need),
      dismissForm(x, run, need));
    const reward = rewardForm(x, run, need);
    if (reward) forms.push(reward);
    return forms.length ? h("div", { class: "rp-actions", id: "rp-actions" }, forms) : null;
  }

  function convertForm(x, run, need) {
    const title = h("input", { id: "rp-cv-title", maxlength: 200, placeholder: T("rpt.title_hint"),
      value: [catText(x.category), x.address].filter(Boolean).join(": ").slice(0, 200) });
    const severity = h("select", { id: "rp-cv-severity" },
      ["general", "major"].map((s) => h("option", { value: s }, L("hz.severity", s))));
    const site = h("select", { id: "rp-cv-site" }, h("option", { value: "" }, T("rpt.no_site")),
      [...rp.sites.values()].map((s) => h("option", { value: s.id, selected: s.id === x.site_id }, s.name)));
    const node = h("select", { id: "rp-cv-node" }, h("option", { value: "" }, T("rpt.no_node")),
      [...rp.nodes.values()].sort((a, b) => a.path.length - b.path.length || (a.code < b.code ? -1 : 1))
        .map((n) => h("option", { value: n.id, selected: n.id === x.jurisdiction_id },
          `${"  ".repeat(Math.max(0, n.path.length - 1))}${n.name} (${L("level", n.level)})`)));
    const deadline = h("input", { id: "rp-cv-deadline", type: "date" });
    const basis = h("input", { id: "rp-cv-basis", maxlength: 500, placeholder: T("hz.legal_basis") });
    const note = h("input", { id: "rp-cv-note", maxlength: 2000, placeholder: T("rpt.note_optional") });
    const go = h("button", { class: "primary", id: "rp-convert", type: "submit" }, T("rpt.convert"));
    const form = h("form", { class: "rp-form", id: "rp-convert-form" },
      h("h3", {}, T("rpt.convert")),
      h("label", {}, T("hz.title"), title),
      h("div", { class: "rp-pair" }, h("label", {}, T("hz.severity"), severity),
        h("label", {}, T("rpt.deadline_optional"), deadline)),
      h("label", {}, T("ui.site"), site),
      h("label", {}, T("ui.jurisdiction"), node),
      basis, note, go);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!title.value.trim()) { need(title, "rpt.need_title"); return; }
      if (!site.value && !node.value) { need(site, "rpt.need_place"); return; }
      const body = { title: title.value.trim(), severity: severity.value,
        legal_basis: basis.value.trim(), note: note.value.trim() };
      // what the report was matched to is the API's default; only a change is sent
      if (site.value && site.value !== x.site_id) body.site_id = site.value;
      if (node.value && Number(node.value) !== x.jurisdiction_id) body.jurisdiction_id = Number(node.value);
      if (deadline.value) body.deadline = new Date(`${deadline.value}T23:59:00`).toISOString();
      run(go, () => call(`/reports/${x.id}/convert`, { method: "POST", body }));
    });
    return form;
  }

  // Merge: into another open report, the same category first and the nearest first.
  function mergeForm(x, targets, run, need) {
    const others = targets.filter((r) => r.id !== x.id)
      .map((r) => ({ r, m: metres(x, r) }))
      .sort((a, b) => ((b.r.category === x.category) - (a.r.category === x.category))
        || ((a.m === null) - (b.m === null)) || (a.m || 0) - (b.m || 0) || b.r.id - a.r.id);
    const into = h("select", { id: "rp-mg-into" }, h("option", { value: "" }, T("rpt.merge_pick")),
      others.map(({ r, m }) => h("option", { value: r.id }, [`#${r.id}`, catText(r.category),
        L("rp.status", r.status), m !== null ? T("rpt.m", { n: Math.round(m) }) : null,
        r.description.slice(0, 40)].filter(Boolean).join(" · "))));
    const note = h("input", { id: "rp-mg-note", maxlength: 2000, placeholder: T("rpt.note_optional") });
    const go = h("button", { id: "rp-merge", type: "submit" }, T("rpt.merge"));
    const form = h("form", { class: "rp-form", id: "rp-merge-form" },
      h("h3", {}, T("rpt.merge")), h("label", {}, T("rpt.merge_into"), into), note, go);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!into.value) { need(into, "rpt.need_into"); return; }
      run(go, () => call(`/reports/${x.id}/merge`, { method: "POST",
        body: { into: Number(into.value), note: note.value.trim() } }));
    });
    return form;
  }

  function dismissForm(x, run, need) {
    const reason = h("textarea", { id: "rp-ds-reason", rows: 2, maxlength: 1000,
      placeholder: T("rpt.dismiss_reason_hint") });
    const go = h("button", { id: "rp-dismiss", type: "submit" }, T("rpt.dismiss"));
    const form = h("form", { class: "rp-form", id: "rp-dismiss-form" },
      h("h3", {}, T("rpt.dismiss")), reason, go);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!reason.value.trim()) { need(reason, "rpt.dismiss_reason_hint"); return; }
      run(go, () => call(`/reports/${x.id}/dismiss`, { method: "POST",
        body: { reason: reason.value.trim() } }));
    });
    return form;
  }

  function rewardForm(x, run, need) {
    const next = (REWARD_NEXT[x.reward_status] || []).filter((s) =>
      x.status === "converted" || !["eligible", "granted"].includes(s));
    if (!next.length) return null;
    const status = h("select", { id: "rp-rw-status" },
      next.map((s) => h("option", { value: s }, L("rp.reward", s))));
    const amount = h("input", { id: "rp-rw-amount", type: "number", min: "0.01", max: "1000000",
      step: "0.01", placeholder: T("rpt.amount") });
    const note = h("input", { id: "rp-rw-note", maxlength: 1000, placeholder: T("rpt.note_optional") });
    const showAmount = () => { amount.hidden = status.value !== "granted"; };
    status.addEventListener("change", showAmount);
    showAmount();
    const go = h("button", { id: "rp-reward", type: "submit" }, T("rpt.reward_set"));
    const form = h("form", { class: "rp-form", id: "rp-reward-form" },
      h("h3", {}, `${T("rp.reward")}: ${L("rp.reward", x.reward_status)}`),
      h("div", { class: "rp-pair" }, status, amount), note, go);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = { status: status.value, note: note.value.trim() };
      if (status.value === "granted") {
        if (!(Number(amount.value) > 0)) { need(amount, "rpt.need_amount"); return; }
        body.amount = Number(amount.value);
      }
      run(go, () => call(`/reports/${x.id}/reward`, { method: "PUT", body }));
    });
    return form;
  }

  async function refresh() {
    await load();
    if (rp.selected) await detail(rp.selected);
  }

  async function loadRefs() {
    const [nodes, sites] = await Promise.all([
      call("/jurisdictions?limit=10000").catch(() => ({ data: [] })),
      call("/sites").catch(() => ({ data: [] }))]);
    rp.nodes = new Map(nodes.data.map((n) => [n.id, n]));
    rp.sites = new Map(sites.data.map((s) => [s.id, s]));
  }

  window.showReports = async () => {
    if (!rp.built) build();
    try {
      await loadRefs();
      await refresh();
    } catch (err) { show(err); }
    // the list only: a redrawn detail would lose what is being typed into its forms
    rp.timer = P.every(rp.timer, "view-reports", REFRESH_MS, load);
  };

  // A language change redraws the frame in the new language (console.js switched it first).
  $("lang").addEventListener("change", () => {
    if (!rp.built) return;
    rp.built = false;
    if (!$("view-reports").hidden) window.showReports();
  });
})();
