// Firetower console: the supervisor's hazard board (隐患). The lists (清单) per jurisdiction,
// department or campaign with progress and ageing; the board of overdue and listed (挂牌督办)
// hazards with their owning level and escalations; the filtered list; a hazard's detail with
// its event log and the steps the user's role may take (verify, reject, close, a new deadline).
// Loaded after console.js; shares its state and helpers (h, $, api, T, L, can, fmtTime).
"use strict";

(function () {
  const P = window.FiretowerLoop;  // loop.js: the steps, deadlines in words
  const AGES = ["0-7d", "7-30d", "30-90d", "90d+"];
  const REFRESH_MS = 30000;

  const hz = { by: "jurisdiction", nodes: new Map(), sites: new Map(), selected: null,
    filters: { state: "", severity: "", owner_id: "", jurisdiction_id: "", campaign: "",
      overdue: false, listed: false, open: true },
    built: false, timer: null, photoUrls: new Map() };
  window.firetowerHazards = hz;  // for tests

  const days = (n) => T("hzb.days", { n: Math.round(n * 10) / 10 });
  const due = (x) => P.due(T, x);
  const level = (id) => { const n = hz.nodes.get(id); return n ? L("level", n.level) : ""; };
  const siteName = (id) => (hz.sites.get(id) || {}).name || id || "";

  function pills(x) {
    return [
      h("span", { class: `hz-pill st-${x.state}`, dataset: { field: "state" } }, L("hz.state", x.state)),
      x.overdue ? h("span", { class: "hz-pill overdue" }, T("hz.overdue")) : null,
      x.severity === "major" ? h("span", { class: "hz-pill major" }, L("hz.severity", "major")) : null,
      x.listed ? h("span", { class: "hz-pill listed" }, T("hz.listed")) : null,
      x.escalations ? h("span", { class: "hz-pill escalated", dataset: { field: "escalations" } },
        T("hzb.escalated", { n: x.escalations })) : null,
    ];
  }

  // -- the frame, built once -----------------------------------------------------------------
  function build() {
    const root = $("view-hazards");
    const f = hz.filters;
    const sel = (id, key, values, labelOf, title) => h("select", { id, onchange: (ev) => {
      f[key] = ev.target.value; loadTable(); } },
    h("option", { value: "" }, `${title}: ${T("hzb.any")}`),
    values.map((v) => h("option", { value: v }, labelOf(v))));
    const box = (id, key, label) => h("label", { class: "hz-check" }, h("input", { type: "checkbox",
      id, checked: f[key], onchange: (ev) => { f[key] = ev.target.checked; loadTable(); } }), label);
    root.replaceChildren(h("div", { class: "hz-layout" },
      h("div", { class: "hz-main" },
        h("section", { class: "hz-card" },
          h("div", { class: "hz-head" }, h("h3", {}, `${T("hzb.lists")} 清单`),
            h("label", {}, `${T("hzb.by")} `, h("select", { id: "hz-by", onchange: (ev) => {
              hz.by = ev.target.value; loadLists(); } },
            ["jurisdiction", "department", "campaign"].map((b) =>
              h("option", { value: b, selected: b === hz.by }, L("hzb.by", b)))))),
          h("table", { class: "hz-table", id: "hz-lists" })),
        h("section", { class: "hz-card" },
          h("h3", {}, `${T("hzb.board")} · 挂牌督办`),
          h("ul", { class: "hz-board", id: "hz-board" })),
        h("section", { class: "hz-card" },
          h("div", { class: "hz-head" }, h("h3", {}, T("hzb.all")),
            h("div", { class: "hz-filters", id: "hz-filters" },
              sel("hz-f-state", "state", ["found", "notified", "rectifying", "submitted", "verified",
                "closed"], (v) => L("hz.state", v), T("hzb.state")),
              sel("hz-f-severity", "severity", ["general", "major"], (v) => L("hz.severity", v),
                T("hz.severity")),
              h("select", { id: "hz-f-node", onchange: (ev) => { f.jurisdiction_id = ev.target.value; loadTable(); } }),
              h("input", { id: "hz-f-campaign", placeholder: L("hzb.by", "campaign"), maxlength: 100,
                onchange: (ev) => { f.campaign = ev.target.value.trim(); loadTable(); } }),
              box("hz-f-overdue", "overdue", T("hzb.overdue")),
              box("hz-f-listed", "listed", T("hzb.listed")),
              box("hz-f-open", "open", T("hzb.open_only")))),
          h("p", { class: "hz-owner-filter", id: "hz-owner-filter", hidden: true }),
          h("table", { class: "hz-table", id: "hz-table" }))),
      h("aside", { class: "detail hz-detail", id: "hz-detail" },
        h("p", { class: "empty" }, T("hzb.select")))));
    hz.built = true;
  }

  function fillNodes() {
    const s = $("hz-f-node");
    const kept = hz.filters.jurisdiction_id;
    const nodes = [...hz.nodes.values()].sort((a, b) => a.path.length - b.path.length
      || (a.code < b.code ? -1 : 1));
    s.replaceChildren(h("option", { value: "" }, `${T("ui.jurisdiction")}: ${T("hzb.any")}`),
      nodes.map((n) => h("option", { value: n.id }, `${"  ".repeat(Math.max(0, n.path.length - 1))}${n.name} (${L("level", n.level)})`)));
    s.value = kept;
  }

  // -- lists (清单) ---------------------------------------------------------------------------
  async function loadLists() {
    const res = await api(`/hazards/lists?by=${hz.by}`);
    const head = h("tr", {}, h("th", {}, L("hzb.by", hz.by)), h("th", {}, T("hzb.total")),
      h("th", {}, T("hzb.open")), h("th", {}, T("hzb.closed")), h("th", {}, T("hzb.overdue")),
      h("th", {}, T("hzb.listed")), h("th", {}, T("hzb.progress")),
      AGES.map((a) => h("th", { class: "age" }, a)));
    const rows = res.data.map((r) => {
      const pct = r.closure_rate === null ? 0 : Math.round(r.closure_rate * 100);
      const name = r.name || "—";
      const lvl = hz.by === "jurisdiction" && r.key ? level(Number(r.key)) : "";
      return h("tr", { class: `hz-list-row${r.overdue ? " has-overdue" : ""}`,
        dataset: { key: r.key, name: r.name, total: r.total, open: r.open, closed: r.closed,
          overdue: r.overdue, listed: r.listed },
        onclick: () => pickList(r) },
      h("td", { class: "name" }, name, lvl ? h("span", { class: "muted" }, ` ${lvl}`) : null),
      h("td", { dataset: { field: "total" } }, r.total),
      h("td", { dataset: { field: "open" } }, r.open),
      h("td", { dataset: { field: "closed" } }, r.closed),
      h("td", { dataset: { field: "overdue" }, class: r.overdue ? "bad" : "" }, r.overdue),
      h("td", { dataset: { field: "listed" }, class: r.listed ? "warn" : "" }, r.listed),
      h("td", { dataset: { field: "progress" } },
        h("span", { class: "hz-progress", title: `${r.closed}/${r.total}` },
          h("span", { class: "fill", dataset: { pct: String(pct) } })), ` ${pct} %`),
      AGES.map((a) => h("td", { class: `age${r.ageing[a] ? " some" : ""}`, dataset: { age: a } },
        r.ageing[a])));
    });
    $("hz-lists").replaceChildren(h("thead", {}, head),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 11, class: "empty" }, T("hzb.none")))));
    // widths from data attributes (no inline styles under the CSP): steps of 10 %
    for (const el of $("hz-lists").querySelectorAll(".fill")) {
      el.classList.add(`w${Math.round(Number(el.dataset.pct) / 10) * 10}`);
    }
  }

  // A list row narrows the hazards below to it (owning node or campaign).
  function pickList(r) {
    const f = hz.filters;
    f.owner_id = ""; f.campaign = "";
    if (hz.by === "jurisdiction" && r.key) f.owner_id = r.key;
    if (hz.by === "campaign") f.campaign = r.key;
    $("hz-f-campaign").value = f.campaign;
    loadTable();
  }

  // -- the overdue board: overdue and listed first, then escalated ---------------------------
  function urgency(x) {
    return (x.overdue && x.listed ? 0 : x.overdue ? 1 : x.listed ? 2 : 3);
  }
  async function loadBoard() {
    const res = await api("/hazards?open=true&limit=1000");
    const rows = res.data.filter((x) => x.overdue || x.listed || x.escalations > 0)
      .sort((a, b) => urgency(a) - urgency(b) || b.escalations - a.escalations
        || new Date(a.deadline) - new Date(b.deadline) || a.id - b.id);
    $("hz-board").replaceChildren(...(rows.length ? rows.map((x) =>
      h("li", { class: `hz-item${x.overdue ? " is-overdue" : ""}${hz.selected === x.id ? " selected" : ""}`,
        dataset: { hazardId: x.id, overdue: String(x.overdue), listed: String(x.listed),
          escalations: String(x.escalations) },
        onclick: () => select(x.id) },
      h("span", { class: "title" }, `#${x.id} ${x.title}`),
      h("span", { class: "pills" }, pills(x)),
      h("span", { class: "meta" }, [
        h("span", { dataset: { field: "owner" } }, `${T("hz.owner")}: ${x.owner_name || "—"}`),
        h("span", { dataset: { field: "level" } }, level(x.owner_id) ? ` (${level(x.owner_id)})` : ""),
        ` · ${siteName(x.site_id)}`,
        due(x) ? ` · ${T("hz.deadline")}: ${due(x)}` : "",
        ` · ${T("hzb.age")}: ${days(x.age_days)}`])))
      : [h("li", { class: "empty", id: "hz-board-empty" }, T("hzb.none"))]));
  }

  // -- the filtered list -----------------------------------------------------------------------
  async function loadTable() {
    const f = hz.filters;
    const q = new URLSearchParams({ limit: "1000" });
    for (const k of ["state", "severity", "owner_id", "jurisdiction_id", "campaign"]) {
      if (f[k]) q.set(k, f[k]);
    }
    if (f.overdue) q.set("overdue", "true");
    if (f.listed) q.set("listed", "true");
    if (f.open && !f.state) q.set("open", "true");
    const owner = $("hz-owner-filter");
    owner.hidden = !f.owner_id;
    owner.replaceChildren(...(f.owner_id ? [`${T("hz.owner")}: ${(hz.nodes.get(Number(f.owner_id)) || {}).name || f.owner_id} `,
      h("button", { class: "link", onclick: () => { f.owner_id = ""; loadTable(); } }, "×")] : []));
    const res = await api(`/hazards?${q}`);
    const head = h("tr", {}, ["#", T("hz.title"), T("ui.site"), T("hzb.state"), T("hz.owner"),
      T("hz.deadline"), T("hzb.age")].map((c) => h("th", {}, c)));
    $("hz-table").replaceChildren(h("thead", {}, head), h("tbody", {}, res.data.length
      ? res.data.map((x) => h("tr", {
        class: `hz-row${x.overdue ? " is-overdue" : ""}${hz.selected === x.id ? " selected" : ""}`,
        dataset: { hazardId: x.id, state: x.state }, onclick: () => select(x.id) },
      h("td", {}, x.id), h("td", {}, x.title, " ", pills(x).slice(1)),
      h("td", {}, siteName(x.site_id)),
      h("td", { dataset: { field: "state" } }, L("hz.state", x.state)),
      h("td", {}, x.owner_name || "", level(x.owner_id) ? h("span", { class: "muted" }, ` ${level(x.owner_id)}`) : null),
      h("td", {}, due(x) || (x.deadline ? fmtTime(x.deadline) : "")),
      h("td", {}, days(x.age_days))))
      : h("tr", {}, h("td", { colspan: 7, class: "empty" }, T("hzb.none")))));
  }

  // -- one hazard ----------------------------------------------------------------------------
  function select(id) {
    hz.selected = id;
    for (const el of document.querySelectorAll("#view-hazards [data-hazard-id]")) {
      el.classList.toggle("selected", Number(el.dataset.hazardId) === id);
    }
    showDetailOf(id).catch((err) => { $("hz-detail").replaceChildren(h("p", { class: "error" }, err.message)); });
  }

  function photos(ids, label) {
    if (!ids || !ids.length) return null;
    const box = h("div", { class: "hz-photos" });
    for (const id of ids) {
      const img = h("img", { alt: label, dataset: { fileId: id } });
      box.append(img);
      (async () => {
        try {
          let url = hz.photoUrls.get(id);
          if (!url) {
            url = URL.createObjectURL(await (await api(`/files/${encodeURIComponent(id)}`, { raw: true })).blob());
            hz.photoUrls.set(id, url);
          }
          img.src = url;
        } catch (_) { img.replaceWith(h("span", { class: "muted" }, `#${id}`)); }
      })();
    }
    return [h("h3", {}, label), box];
  }

  async function showDetailOf(id) {
    const x = await api(`/hazards/${id}`);
    const steps = P.mySteps(x);
    const err = h("p", { class: "error", id: "hz-error", role: "alert" });
    const note = h("textarea", { id: "hz-note", rows: 2, maxlength: 4000, placeholder: T("ui.reason_optional") });
    const file = steps.some((t) => P.needs(x, t).photo)
      ? h("input", { id: "hz-photo", type: "file", accept: "image/*", multiple: true }) : null;
    const take = async (t, btn) => {
      err.textContent = "";
      if (P.needs(x, t).note && !note.value.trim()) {
        note.classList.add("need"); note.focus(); err.textContent = T("ui.reason_required"); return;
      }
      btn.disabled = true;
      try {
        const files = [];
        if (P.needs(x, t).photo && file) {
          for (const f of file.files) {
            const form = new FormData();
            form.append("file", f, f.name);
            if (x.site_id) form.append("site_id", x.site_id);
            const r = await fetch(`${API}/files`, { method: "POST", body: form,
              headers: { Authorization: `Bearer ${state.token}` } });
            if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail || r.statusText);
            files.push(String((await r.json()).id));
          }
        }
        await api(`/hazards/${id}/steps`, { method: "POST", body: { trigger: t, note: note.value.trim(), files } });
        await refresh();
      } catch (e) { err.textContent = e.message; btn.disabled = false; }
    };
    const moveDeadline = can("hazard:supervise") && P.OWING.has(x.state)
      ? h("div", { class: "row", id: "hz-deadline-form" },
        h("input", { id: "hz-new-deadline", type: "date", "aria-label": T("hzb.new_deadline") }),
        h("button", { id: "hz-move-deadline", onclick: async (ev) => {
          const d = $("hz-new-deadline").value;
          if (!d || !note.value.trim()) { note.classList.add("need"); err.textContent = T("ui.reason_required"); return; }
          ev.target.disabled = true;
          try {
            await api(`/hazards/${id}/deadline`, { method: "PUT",
              body: { deadline: new Date(`${d}T23:59:00`).toISOString(), note: note.value.trim() } });
            await refresh();
          } catch (e) { err.textContent = e.message; ev.target.disabled = false; }
        } }, T("hzb.move_deadline"))) : null;
    const kvs = [
      [T("ui.site"), siteName(x.site_id)],
      [T("hz.owner"), `${x.owner_name || "—"}${level(x.owner_id) ? ` (${level(x.owner_id)})` : ""}`, "owner"],
      [T("hz.escalations"), String(x.escalations), "escalations"],
      [T("hz.listed"), x.listed ? `${T("hz.listed")} · ${(hz.nodes.get(x.listed_by_id) || {}).name || ""}` : "—", "listed"],
      [T("hz.deadline"), x.deadline ? `${fmtTime(x.deadline)}${due(x) ? ` (${due(x)})` : ""}` : "", "deadline"],
      [T("hz.severity"), L("hz.severity", x.severity)],
      [T("hz.source"), L("hz.source", x.source)],
      [T("hz.category"), x.category ? L("hz.category", x.category) : ""],
      [T("hz.legal_basis"), x.legal_basis],
      [T("ui.responsible"), [x.responsible_name, x.responsible_phone].filter(Boolean).join(" · ")],
      [T("hzb.age"), days(x.age_days)],
    ].filter((r) => r[1]);
    P.fill($("hz-detail"),
      h("h2", { id: "hz-title", dataset: { hazardId: x.id, state: x.state } }, `#${x.id} ${x.title}`),
      h("div", { class: "pills", id: "hz-pills" }, pills(x)),
      h("dl", { class: "kv" }, kvs.map(([k, v, field]) => [h("dt", {}, k),
        h("dd", { dataset: field ? { field } : {} }, v)])),
      x.description ? h("p", {}, x.description) : null,
      photos(x.files_before, T("hz.photos_before")),
      photos(x.files_after, T("hz.photos_after")),
      steps.length || moveDeadline ? h("div", { class: "actions", id: "hz-steps" }, note,
        file ? h("label", {}, `${T("ph.photo")} `, file) : null,
        steps.map((t) => h("button", { class: t === "verify" || t === "close" ? "primary" : "",
          dataset: { hzStep: t }, onclick: (ev) => take(t, ev.currentTarget) }, L("hz.trigger", t))),
        moveDeadline) : null,
      err,
      h("h3", {}, T("ui.timeline")),
      h("ul", { class: "timeline", id: "hz-events" }, x.events.map((e) =>
        h("li", { dataset: { kind: e.kind } },
          h("span", { class: "when" }, fmtTime(e.at)),
          L("hz.event", e.kind),
          h("span", { class: "muted" }, ` · ${P.actor(e.actor)}`),
          e.note ? h("div", { class: "muted" }, e.note) : null))));
  }

  async function refresh() {
    await Promise.all([loadLists(), loadBoard(), loadTable()]);
    if (hz.selected) await showDetailOf(hz.selected);
  }

  async function loadRefs() {
    const [nodes, sites] = await Promise.all([
      api("/jurisdictions?limit=10000").catch(() => ({ data: [] })),
      api("/sites").catch(() => ({ data: [] }))]);
    hz.nodes = new Map(nodes.data.map((n) => [n.id, n]));
    hz.sites = new Map(sites.data.map((s) => [s.id, s]));
  }

  window.showHazards = async () => {
    if (!hz.built) build();
    try {
      await loadRefs();
      fillNodes();
      await refresh();
    } catch (err) { console.warn("hazards:", err.message); }
    hz.timer = P.every(hz.timer, "view-hazards", REFRESH_MS, refresh);
  };

  // A language change redraws the frame in the new language (console.js switched it first).
  $("lang").addEventListener("change", () => {
    if (!hz.built) return;
    hz.built = false;
    if (!$("view-hazards").hidden) window.showHazards();
  });
})();
