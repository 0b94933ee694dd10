// Firetower: the notifications page (notify.html): the message log (who was told what, by which
// channel, each attempt; dead letters first to look at), the policies, escalation chains and
// contacts, and forms to add a policy and a contact (notify:manage). Addresses are only ever
// shown redacted. Sign-in and the API helper: FiretowerPage (duty.js). docs/notifications.md.
"use strict";

(function () {
  const { h, $, T, api, can, fmtTime, boot, me } = window.FiretowerPage;
  const REFRESH_MS = 10000;
  const CLASSES = ["fire", "supervisory", "fault", "offline", "early_warning"];
  const RECIPIENTS = ["unit_responsible", "unit_manager", "grid_member", "maintenance_company",
    "township_station", "unit_duty", "duty_operator", "duty_leader", "duty_officer"];
  const CONTACT_KINDS = ["unit_responsible", "unit_manager", "grid_member", "maintenance_company",
    "township_station", "user"];
  const CHANNELS = ["email", "sms", "voice", "dingtalk", "wecom", "feishu", "apprise"];
  const WORDS = {
    en: { notify_title: "Notifications", notify: "Notifications", messages: "Messages", status: "Status",
      all: "all", policies: "Policies", chains: "Escalation chains", contacts: "Contacts",
      new_policy: "Add a policy", new_contact: "Add a contact", name: "Name", classes: "Alarm classes",
      recipients: "Recipients", channels: "Channels (none ticked: all)", quiet: "Quiet hours (not for fire)",
      window: "Group faults and offline per site for (s)", add: "Add", attempts: "Attempts",
      whose: "Whose", ref: "Their id", channel: "Channel", address: "Address", secret: "Signing secret",
      step: "escalation", alarm: "alarm", prompt: "prompt", disable: "Disable", enable: "Enable",
      none: "None.", after: "after" },
    zh: { notify_title: "通知", notify: "通知", messages: "消息", status: "状态", all: "全部",
      policies: "通知策略", chains: "升级链", contacts: "联系人", new_policy: "新增策略", new_contact: "新增联系人",
      name: "名称", classes: "报警类别", recipients: "通知对象", channels: "渠道（不选即全部）",
      quiet: "免打扰时段（火警除外）", window: "故障、离线按场所合并（秒）", add: "添加", attempts: "尝试",
      whose: "所属", ref: "编号", channel: "渠道", address: "地址", secret: "签名密钥", step: "升级",
      alarm: "报警", prompt: "提示", disable: "停用", enable: "启用", none: "无。", after: "之后" },
  };
  const page = { built: false, timer: null };
  const say = (text) => { $("msg").textContent = text || ""; };

  function messageItem(m) {
    return h("li", { class: `hz-item msg-${m.status}`, dataset: { status: m.status, messageId: m.id } },
      h("button", { class: "link title", onclick: () => showMessage(m.id) }, m.subject),
      h("span", { class: "meta" }, `${fmtTime(m.sent_at || m.created_at)} · ${m.name || m.recipient} · ${m.channel} ${m.shown}`),
      h("span", { class: "meta" }, m.alarm_id ? `${T("alarm")} #${m.alarm_id}` : `${T("prompt")} #${m.prompt_id}`,
        m.step ? ` · ${T("step")} ${m.step}` : "", ` · ${m.status}`,
        m.attempts > 1 ? ` · ${T("attempts")} ${m.attempts}` : ""),
      m.last_error && m.status !== "sent" ? h("span", { class: "meta error" }, m.last_error) : null);
  }

  async function showMessage(id) {
    const m = await api(`/notify/messages/${id}`);
    $("message-detail").replaceChildren(
      h("h2", {}, m.subject),
      h("pre", { class: "message-body" }, m.body),
      h("h3", {}, T("attempts")),
      h("ol", {}, m.attempt_log.map((a) => h("li", {}, `${fmtTime(a.at)} · ${a.outcome} · ${Math.round(a.duration_ms)} ms`,
        a.error ? ` · ${a.error}` : ""))));
  }

  const list = (id, items, render) => $(id).replaceChildren(
    ...(items.length ? items.map(render) : [h("li", { class: "muted" }, T("none"))]));

  function policyItem(p) {
    return h("li", { class: "hz-item", dataset: { policyId: p.id } },
      h("span", { class: "title" }, p.name, p.enabled ? "" : " (off)"),
      h("span", { class: "meta" }, `${p.classes.join(", ")} → ${p.recipients.join(", ")}`),
      h("span", { class: "meta" }, [p.channels ? p.channels.join(", ") : null,
        p.quiet_start ? `${T("quiet")} ${p.quiet_start}–${p.quiet_end}` : null,
        p.group_window_s ? `${T("window")} ${p.group_window_s}` : null].filter(Boolean).join(" · ")));
  }

  function chainItem(c) {
    return h("li", { class: "hz-item", dataset: { chainId: c.id } },
      h("span", { class: "title" }, `${c.name} (${c.class})`),
      h("span", { class: "meta" }, c.steps.map((s) => `${T("after")} ${s.after_s} s → ${s.recipients.join(", ")}`).join(" · "),
        ` · ↻ ${c.repeat_s} s`));
  }

  function contactItem(c) {
    return h("li", { class: "hz-item", dataset: { contactId: c.id } },
      h("span", { class: "title" }, `${c.name || c.recipient} · ${c.channel}`),
      h("span", { class: "meta" }, `${c.recipient} #${c.ref_id} · ${c.shown}${c.signed ? " · signed" : ""}`),
      can("notify:manage") ? h("button", { onclick: async () => {
        try { await api(`/notify/contacts/${c.id}`, { method: "PATCH", body: { enabled: !c.enabled } }); await render(); }
        catch (e) { say(e.message); }
      } }, c.enabled ? T("disable") : T("enable")) : null);
  }

  const checks = (name, values) => h("fieldset", { class: "checks" }, h("legend", {}, T(name)),
    values.map((v) => h("label", {}, h("input", { type: "checkbox", name, value: v }), ` ${v}`)));
  const ticked = (form, name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);

  function buildForms() {
    if (page.built || !can("notify:manage")) return;
    page.built = true;
    const pf = $("policy-form");
    pf.replaceChildren(
      h("label", {}, T("name"), h("input", { id: "pol-name", required: true, maxlength: 200 })),
      checks("classes", CLASSES), checks("recipients", RECIPIENTS), checks("channels", CHANNELS),
      h("label", {}, T("quiet"), h("input", { id: "pol-quiet-start", type: "time" }), h("input", { id: "pol-quiet-end", type: "time" })),
      h("label", {}, T("window"), h("input", { id: "pol-window", type: "number", min: 0, max: 3600, value: 0 })),
      h("button", { type: "submit" }, T("add")));
    pf.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const chans = ticked(pf, "channels");
      const body = { name: $("pol-name").value, classes: ticked(pf, "classes"), recipients: ticked(pf, "recipients"),
        group_window_s: Number($("pol-window").value || 0) };
      if (chans.length) body.channels = chans;
      if ($("pol-quiet-start").value) { body.quiet_start = $("pol-quiet-start").value; body.quiet_end = $("pol-quiet-end").value; }
      try { await api("/notify/policies", { method: "POST", body }); say(""); pf.reset(); await render(); }
      catch (e) { say(e.message); }
    });
    const cf = $("contact-form");
    cf.replaceChildren(
      h("label", {}, T("whose"), h("select", { id: "ct-kind" }, CONTACT_KINDS.map((k) => h("option", { value: k }, k)))),
      h("label", {}, T("ref"), h("input", { id: "ct-ref", type: "number", min: 1, required: true })),
      h("label", {}, T("name"), h("input", { id: "ct-name", maxlength: 100 })),
      h("label", {}, T("channel"), h("select", { id: "ct-channel" }, CHANNELS.map((c) => h("option", { value: c }, c)))),
      h("label", {}, T("address"), h("input", { id: "ct-address", required: true, maxlength: 2000, autocomplete: "off" })),
      h("label", {}, T("secret"), h("input", { id: "ct-secret", maxlength: 200, autocomplete: "off" })),
      h("button", { type: "submit" }, T("add")));
    cf.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { recipient: $("ct-kind").value, ref_id: Number($("ct-ref").value), name: $("ct-name").value,
        channel: $("ct-channel").value, address: $("ct-address").value };
      if ($("ct-secret").value) body.secret = $("ct-secret").value;
      try { await api("/notify/contacts", { method: "POST", body }); say(""); cf.reset(); await render(); }
      catch (e) { say(e.message); }
    });
  }

  async function render() {
    const status = $("status-filter").value;
    const [msgs, pols, chains, contacts] = await Promise.all([
      api(`/notify/messages?limit=100${status ? `&status=${status}` : ""}`),
      api("/notify/policies"), api("/notify/chains"), api("/notify/contacts")]);
    list("messages", msgs.items, messageItem);
    list("policies", pols.items, policyItem);
    list("chains", chains.items, chainItem);
    list("contacts", contacts.items, contactItem);
    buildForms();
  }

  $("status-filter").addEventListener("change", () => render().catch((e) => say(e.message)));
  boot(WORDS, async () => {
    if (!can("notify:read")) { say("notify:read"); return; }
    await render().catch((e) => say(e.message));
    clearInterval(page.timer);
    page.timer = setInterval(() => { if (me() && !document.hidden) render().catch(() => {}); }, REFRESH_MS);
  });
})();
