// Firetower console: the maintenance work-order queue (维保工单). Late orders first, each with
// its SLA (respond by, repair by, which is late), who responded, and the order it repeats (a
// link to it); an order's detail with its event log and the steps the role may take (the
// company responds and reports repairs; a supervisor or operator closes with a decision).
// Loaded after console.js; shares its state and helpers (h, $, api, T, L, can, fmtTime).
"use strict";

(function () {
  const P = window.FiretowerLoop;  // loop.js: the steps, deadlines in words
  const REFRESH_MS = 30000;
  const wo = { selected: null, built: false, timer: null, sites: new Map(),
    filters: { state: "", open: true, late: false } };
  window.firetowerOrders = wo;

  const late = P.orderLate;
  const who = P.actor;
  const relative = (iso) => P.relative(T, iso);

  function sla(o) {
    const respond = o.responded_at
      ? h("span", { class: o.response_late ? "bad" : "ok", dataset: { sla: "respond" } },
        `${T("wo.responded")} ${fmtTime(o.responded_at)}${o.response_late ? ` (${T("wo.response_late")})` : ""}`)
      : h("span", { class: o.response_late ? "bad" : "", dataset: { sla: "respond" } },
        `${T("wo.respond_by")}: ${relative(o.respond_by)}`);
    const repair = o.state === "closed"
      ? h("span", { class: o.repair_late ? "bad" : "ok", dataset: { sla: "repair" } },
        o.repair_late ? T("wo.repair_late") : T("hzb.on_time"))
      : h("span", { class: o.repair_late ? "bad" : "", dataset: { sla: "repair" } },
        `${T("wo.repair_by")}: ${relative(o.repair_by)}`);
    return [respond, h("br"), repair];
  }

  function build() {
    const f = wo.filters;
    $("view-workorders").replaceChildren(h("div", { class: "hz-layout" },
      h("section", { class: "hz-card hz-main" },
        h("div", { class: "hz-head" }, h("h3", {}, `${T("hzb.work_orders")} 维保工单`),
          h("div", { class: "hz-filters" },
            h("select", { id: "wo-f-state", onchange: (ev) => { f.state = ev.target.value; load(); } },
              h("option", { value: "" }, `${T("hzb.state")}: ${T("hzb.any")}`),
              ["open", "responded", "repaired", "closed"].map((s) => h("option", { value: s }, L("wo.state", s)))),
            h("label", { class: "hz-check" }, h("input", { type: "checkbox", id: "wo-f-late",
              onchange: (ev) => { f.late = ev.target.checked; load(); } }), T("hzb.late_only")),
            h("label", { class: "hz-check" }, h("input", { type: "checkbox", id: "wo-f-open", checked: true,
              onchange: (ev) => { f.open = ev.target.checked; load(); } }), T("hzb.open_only")))),
        h("table", { class: "hz-table", id: "wo-table" })),
      h("aside", { class: "detail hz-detail", id: "wo-detail" },
        h("p", { class: "empty" }, T("hzb.select_order")))));
    wo.built = true;
  }

  async function load() {
    const f = wo.filters;
    const q = new URLSearchParams({ limit: "1000" });
    if (f.state) q.set("state", f.state);
    else if (f.open) q.set("open", "true");
    if (f.late) q.set("late", "true");
    const res = await api(`/work-orders?${q}`);
    const rows = [...res.data].sort((a, b) => (late(b) - late(a))
      || ((a.state === "closed") - (b.state === "closed"))
      || (new Date(a.repair_by) - new Date(b.repair_by)) || a.id - b.id);
    const head = h("tr", {}, ["#", T("hz.title"), T("ui.site"), T("wo.company"), T("hzb.state"),
      T("hzb.sla"), T("hzb.responded_by"), T("hzb.repeat")].map((c) => h("th", {}, c)));
    $("wo-table").replaceChildren(h("thead", {}, head), h("tbody", {}, rows.length ? rows.map((o) =>
      h("tr", { class: `wo-row${late(o) ? " is-overdue" : ""}${wo.selected === o.id ? " selected" : ""}`,
        dataset: { orderId: o.id, state: o.state, late: String(late(o)) }, onclick: () => select(o.id) },
      h("td", {}, o.id),
      h("td", {}, o.title, o.device_id ? h("div", { class: "muted" }, o.device_id) : null),
      h("td", {}, (wo.sites.get(o.site_id) || {}).name || o.site_id || ""),
      h("td", {}, o.company_name || h("span", { class: "bad" }, T("hzb.unassigned"))),
      h("td", { dataset: { field: "state" } }, L("wo.state", o.state)),
      h("td", { class: "sla" }, sla(o)),
      h("td", { dataset: { field: "responded_by" } }, who(o.responded_by)),
      h("td", {}, o.repeat_of ? h("button", { class: "link", dataset: { repeatOf: o.repeat_of },
        onclick: (ev) => { ev.stopPropagation(); select(o.repeat_of); } }, `#${o.repeat_of}`) : "")))
      : h("tr", {}, h("td", { colspan: 8, class: "empty" }, T("ph.no_orders")))));
  }

  function select(id) {
    wo.selected = id;
    for (const el of document.querySelectorAll("#wo-table [data-order-id]")) {
      el.classList.toggle("selected", Number(el.dataset.orderId) === id);
    }
    detail(id).catch((err) => $("wo-detail").replaceChildren(h("p", { class: "error" }, err.message)));
  }

  async function detail(id) {
    const o = await api(`/work-orders/${id}`);
    const steps = P.mySteps(o);
    const err = h("p", { class: "error", role: "alert", id: "wo-error" });
    const note = h("textarea", { id: "wo-note", rows: 2, maxlength: 4000, placeholder: T("ui.reason") });
    const take = async (t, btn) => {
      err.textContent = "";
      if (P.needs(o, t).note && !note.value.trim()) {
        note.classList.add("need"); note.focus(); err.textContent = T("ui.reason_required"); return;
      }
      btn.disabled = true;
      try {
        await api(`/work-orders/${id}/steps`, { method: "POST", body: { trigger: t, note: note.value.trim() } });
        await load();
        await detail(id);
      } catch (e) { err.textContent = e.message; btn.disabled = false; }
    };
    P.fill($("wo-detail"),
      h("h2", { id: "wo-title", dataset: { orderId: o.id, state: o.state } }, `#${o.id} ${o.title}`),
      h("dl", { class: "kv" }, [
        [T("hzb.state"), L("wo.state", o.state), "state"],
        [T("wo.class"), L("class", o.alarm_class)],
        [T("ui.site"), (wo.sites.get(o.site_id) || {}).name || o.site_id || ""],
        [T("ui.device"), o.device_id || ""],
        [T("wo.company"), o.company_name || T("hzb.unassigned")],
        [T("wo.respond_by"), fmtTime(o.respond_by)],
        [T("wo.repair_by"), fmtTime(o.repair_by)],
        [T("wo.responded"), o.responded_at ? `${fmtTime(o.responded_at)} · ${who(o.responded_by)}` : "", "responded"],
        [T("wo.event.repair"), o.repaired_at ? `${fmtTime(o.repaired_at)} · ${who(o.repaired_by)}` : ""],
        [T("ui.close"), o.closed_at ? `${fmtTime(o.closed_at)} · ${who(o.closed_by)} ${o.close_reason}` : ""],
      ].filter((r) => r[1]).map(([k, v, field]) => [h("dt", {}, k), h("dd", { dataset: field ? { field } : {} }, v)])),
      h("p", { class: "muted" }, sla(o)),
      o.repeat_of ? h("p", {}, `${T("hzb.repeat")} `, h("button", { class: "link",
        dataset: { repeatOf: o.repeat_of }, onclick: () => select(o.repeat_of) }, `#${o.repeat_of}`)) : null,
      h("p", { class: "muted" }, T("wo.closes_itself")),
      steps.length ? h("div", { class: "actions", id: "wo-steps" }, note,
        steps.map((t) => h("button", { class: t === "respond" ? "primary" : "", dataset: { woStep: t },
          onclick: (ev) => take(t, ev.currentTarget) }, L("wo.trigger", t)))) : null,
      err,
      h("h3", {}, T("ui.timeline")),
      h("ul", { class: "timeline", id: "wo-events" }, o.events.map((e) =>
        h("li", { dataset: { kind: e.kind } }, h("span", { class: "when" }, fmtTime(e.at)),
          L("wo.event", e.kind), h("span", { class: "muted" }, ` · ${who(e.actor)}`),
          e.note ? h("div", { class: "muted" }, e.note) : null))));
  }

  window.showWorkOrders = async () => {
    if (!wo.built) build();
    try {
      const sites = await api("/sites").catch(() => ({ data: [] }));
      wo.sites = new Map(sites.data.map((s) => [s.id, s]));
      await load();
      if (wo.selected) await detail(wo.selected);
    } catch (err) { console.warn("work orders:", err.message); }
    wo.timer = P.every(wo.timer, "view-workorders", REFRESH_MS, load);
  };

  $("lang").addEventListener("change", () => {
    if (!wo.built) return;
    wo.built = false;
    if (!$("view-workorders").hidden) window.showWorkOrders();
  });
})();
