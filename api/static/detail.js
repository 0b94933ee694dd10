// Firetower console: the alarm detail (what the operator acts on) and its actions. Loaded
// after console.js; shares its state and helpers.
"use strict";

// -- detail ---------------------------------------------------------------------------------
function kv(pairs) {
  return h("dl", { class: "kv" }, ...pairs
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v, field]) => [h("dt", {}, T(k)), h("dd", { dataset: { field } }, v)]));
}

function forwarding(a) {
  if (!a.forwarded_at) return h("span", { class: "not-forwarded" }, T("ui.not_forwarded"));
  return h("span", { class: "forwarded" },
    T("ui.forwarded", { time: fmtTime(a.forwarded_at), basis: L("basis", a.forward_basis) }),
    a.delivered_at ? ` · ${T("ui.delivered", { time: fmtTime(a.delivered_at) })}` : "");
}

function contactsList(site) {
  const contacts = (site && site.contacts) || [];
  if (!contacts.length) return h("p", { class: "empty" }, T("ui.none_recorded"));
  return h("ul", { class: "contacts" }, contacts.map((c) => h("li", {},
    h("strong", {}, c.name), c.role ? ` (${c.role})` : "", " ",
    c.phone ? h("a", { href: `tel:${c.phone.replace(/[^0-9+]/g, "")}`, class: "tel" }, c.phone) : null,
    c.email ? [" ", h("a", { href: `mailto:${c.email}` }, c.email)] : null)));
}

function firePlanParts(site) {
  const fp = (site && site.fire_plan) || {};
  const part = (key, items) => h("section", {}, h("h3", {}, T(key)),
    items && items.length ? h("ul", {}, items.map((i) => h("li", {}, i.name,
      i.floor_id ? ` [${i.floor_id}]` : "", i.description ? ` — ${i.description}` : "")))
      : h("p", { class: "empty" }, T("ui.none_recorded")));
  return [part("ui.entrances", fp.entrances), part("ui.water_sources", fp.water_sources),
    part("ui.hazards", fp.hazards),
    fp.notes ? h("section", {}, h("h3", {}, T("ui.notes")), h("p", {}, fp.notes)) : null];
}

async function showDetail(alarmId) {
  const panel = $("detail");
  let a;
  try { a = await api(`/alarms/${alarmId}`); } catch (err) { return; }
  if (state.selected !== alarmId) return;
  const handle = can("alarm:handle");
  const reasonOk = () => ($("action-reason") ? $("action-reason").value.trim() !== "" : false);
  const post = async (path, body) => {
    try {
      applyAlarm(await api(`/alarms/${a.id}/${path}`, { method: "POST", body }));
      // the reason that went with it is spent; one typed meanwhile (for the next step: the
      // live stream may show the new state before this answer arrives) is kept
      const box = $("action-reason");
      if (box && box.value.trim() === (body.reason || "")) {
        delete state.drafts["action-reason"];
        box.value = "";
      }
    } catch (err) { alert(err.message); }
    showDetail(a.id);
  };
  const needReason = [];  // buttons enabled only with a reason
  const reasonBox = h("input", { id: "action-reason", maxlength: 1000,
    placeholder: T("ui.reason"), oninput: () => {
      for (const b of needReason) b.disabled = !reasonOk();
    } });
  const verdictSel = h("select", { id: "verdict-select", "aria-label": T("ui.verdict") },
    VERDICTS.map((v) => h("option", { value: v }, L("verdict", v))));
  const btn = (label, action, onclick, cls, required) => {
    const b = h("button", { class: cls, dataset: { action }, disabled: !!required,
      onclick: (ev) => { ev.target.disabled = true; onclick(); } }, label);
    if (required) needReason.push(b);
    return b;
  };
  const comment = h("input", { id: "comment-text", placeholder: T("ui.comment"), maxlength: 2000 });
  const site = a.site;
  // A panel point is "<zone>/<point>" already; a detector has its zone only.
  const zonePoint = a.point || (a.zone !== null && a.zone !== undefined ? String(a.zone) : null);
  const evidence = B.evidenceLines(state.labels, state.lang, a.evidence);
  const canVerdict = ["active", "acknowledged", "cleared_unack", "cleared"].includes(a.state);
  const canClose = a.state === "cleared" && a.class !== "fire";
  const same = panel.dataset.alarmId === String(a.id);
  keepInputs(panel, () => panel.replaceChildren(...[
    h("h2", {}, h("span", { class: `badge cls-${a.class}` }, L("class", a.class)), L("rule", a.type)),
    h("p", { class: "rule-id" }, `${a.device_id} · ${a.type}`),
    kv([["ui.state", L("state", a.state), "state"], ["ui.verdict", L("verdict", a.verdict), "verdict"],
      ["ui.site", a.site_name || a.site_id, "site"], ["ui.address", site && site.address, "address"],
      ["ui.floor", a.floor ? a.floor.name : a.floor_id, "floor"], ["ui.zone_point", zonePoint, "zone"],
      ["ui.location", a.location, "location"],
      ["ui.device", a.device_kind ? `${a.device_id} (${L("kind", a.device_kind)})` : a.device_id, "device"],
      ["ui.mode", a.mode !== "normal" ? L("mode", a.mode) : null, "mode"],
      ["ui.raised", fmtTime(a.raised_at), "raised"], ["ui.occurrences", a.count > 1 ? a.count : null, "count"],
      ["ui.acknowledged", a.acknowledged_by ? `${actorText(a.acknowledged_by)}, ${fmtTime(a.acknowledged_at)}` : null, "acknowledged"],
      ["ui.assignee", a.assignee, "assignee"],
      ["ui.forwarding", a.class === "fire" ? forwarding(a) : null, "forwarding"]]),
    evidence.length ? [h("h3", {}, T("ui.evidence")),
      h("dl", { class: "kv evidence", id: "evidence" }, evidence.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))] : null,
    handle && (a.state === "active" || a.state === "cleared_unack" || canVerdict || canClose)
      ? h("div", { class: "actions" }, reasonBox,
        (a.state === "active" || a.state === "cleared_unack")
          ? btn(T("ui.acknowledge"), "Acknowledge", () => post("acknowledge", { reason: reasonBox.value.trim() }), "primary") : null,
        canVerdict ? [verdictSel, btn(T("ui.give_verdict"), "Verdict",
          () => post("verdict", { verdict: verdictSel.value, reason: reasonBox.value.trim() }), null, true)] : null,
        canClose ? btn(T("ui.close"), "Close", () => post("close", { reason: reasonBox.value.trim() }), null, true) : null)
      : null,
    a.floor && a.floor.plan_url ? [h("h3", {}, T("ui.floor_plan")),
      planView(a.floor, a.x !== null && a.y !== null ? [{ id: a.device_id, x: a.x, y: a.y,
        location: a.location, status: "alarm" }] : [], "detail-plan")] : null,
    h("h3", {}, T("ui.contacts")), contactsList(site),
    h("h3", {}, T("ui.fire_plan")), h("div", { class: "fire-plan compact" }, firePlanParts(site)),
    can("alarm:comment") ? h("div", { class: "row" }, comment,
      h("button", { onclick: async () => {
        if (!comment.value.trim()) return;
        try {
          await api(`/alarms/${a.id}/comments`, { method: "POST", body: { text: comment.value } });
          delete state.drafts["comment-text"];
          comment.value = "";
        } catch (err) { alert(err.message); }
        showDetail(a.id);
      } }, T("ui.comment"))) : null,
    handle ? h("div", { class: "row" },
      h("input", { id: "assign-to", placeholder: T("ui.assign_to") }),
      h("button", { onclick: async () => {
        const who = $("assign-to").value.trim() || null;
        try { await api(`/alarms/${a.id}/assign`, { method: "POST", body: { assignee: who } }); }
        catch (err) { alert(err.message); }
        showDetail(a.id);
      } }, T("ui.assign"))) : null,
    can("notify:read") ? [h("h3", {}, T("ui.notifications")),
      h("div", { id: "notifications", class: "notifications" }, "…")] : null,
    h("h3", {}, T("ui.timeline")),
    h("ol", { class: "timeline", id: "timeline" }, a.events.map((e) => h("li", {
      dataset: { kind: e.kind } },
    h("span", { class: "when" }, fmtTime(e.at)),
    h("strong", {}, L("event", e.kind)), e.to_state && e.to_state !== e.from_state ? ` → ${L("state", e.to_state)}` : "",
    ` · ${actorText(e.actor)}`,
    e.details && e.details.verdict ? ` · ${L("verdict", e.details.verdict)}` : "",
    e.reason ? ` · ${e.reason}` : "")))
  ].flat(2).filter(Boolean)), same);
  for (const b of needReason) b.disabled = !reasonOk();
  panel.dataset.alarmId = a.id;
  panel.hidden = false;
  placePopup();
  if (can("notify:read")) showNotifications(a.id);
}

// Who was told about the alarm, by which channel, how each message went, and its escalation.
async function showNotifications(alarmId) {
  let msgs;
  try { msgs = await api(`/notify/messages?alarm_id=${alarmId}&limit=200`); } catch (err) { return; }
  const esc = msgs.escalation;
  const box = $("notifications");
  if (!box || state.selected !== alarmId) return;
  const items = msgs.items;
  box.replaceChildren(...[
    esc ? h("p", { class: "escalation", dataset: { stopped: esc.stopped_at ? "yes" : "no" } },
      `${T("ui.escalation")}: `, esc.stopped_at
        ? T("ui.escalation_stopped", { reason: esc.stopped_reason || "" })
        : T("ui.escalation_next", { step: esc.next_step + 1, at: fmtTime(esc.next_at) })) : null,
    items.length ? h("ul", { class: "messages" }, items.map((m) => h("li", {
      dataset: { status: m.status, channel: m.channel } },
    h("span", { class: "when" }, fmtTime(m.sent_at || m.created_at)),
    h("strong", {}, m.name || m.recipient), ` · ${m.channel} ${m.shown}`,
    m.step ? ` · ${T("ui.escalation")} ${m.step}` : "",
    ` · ${m.status}`, m.attempts > 1 ? ` (${m.attempts})` : "",
    m.last_error && m.status !== "sent" ? h("span", { class: "error" }, ` · ${m.last_error}`) : null)))
      : h("p", { class: "muted" }, T("ui.no_notifications"))].filter(Boolean));
}
