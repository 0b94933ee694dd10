// Firetower: the heightened-watch board (watch.html): the active windows with their sites, open
// alarms by class, offline devices and prompts (read progress); the upcoming ones; cancelling
// and opening a window and sending a work prompt (supervisors); a prompt's receipts, and the
// reader's own confirmation. Sign-in and the API helper: FiretowerPage (duty.js).
"use strict";

(function () {
  const { h, $, T, api, can, fmtTime, boot, me, fill } = window.FiretowerPage;
  const REFRESH_MS = 15000;
  const SETTINGS = ["heartbeat_s", "verification_s", "prealarm_ratio", "escalation_factor"];
  const WORDS = {
    en: { watch_title: "Heightened watch", active: "Active windows", upcoming: "Upcoming windows",
      prompts: "Work prompts", new_window: "Open a watch window", new_prompt: "Send a work prompt",
      name: "Name", reason: "Reason", starts: "Starts", ends: "Ends", jurisdiction: "Jurisdiction",
      sites: "sites", site: "site", open_alarms: "open alarms", offline: "offline devices", cancel: "Cancel window",
      open: "Open", send: "Send", title: "Title", body: "Text", read: "read", confirm: "I have read it",
      receipts: "Receipts", unread: "not read", watch_link: "Watch window", none: "None.",
      heartbeat_s: "Heartbeat (s)", verification_s: "Verification (s)", prealarm_ratio: "Pre-alarm ratio",
      escalation_factor: "Escalation factor", unit_responsible: "Unit", grid_member: "Grid member",
      confirmed: "You have confirmed reading it." },
    zh: { watch_title: "重点时段安保", active: "进行中", upcoming: "即将开始", prompts: "工作提示",
      new_window: "开启重点时段", new_prompt: "发送工作提示", name: "名称", reason: "事由", starts: "开始",
      ends: "结束", jurisdiction: "辖区", sites: "个场所", site: "个场所", open_alarms: "条未处理警情", offline: "台设备离线",
      cancel: "取消", open: "开启", send: "发送", title: "标题", body: "内容", read: "已读", confirm: "确认已读",
      receipts: "回执", unread: "未读", watch_link: "重点时段", none: "无。", heartbeat_s: "心跳（秒）",
      verification_s: "复核（秒）", prealarm_ratio: "预警比例", escalation_factor: "升级系数",
      unit_responsible: "单位", grid_member: "网格员", confirmed: "您已确认阅读。" },
  };
  const page = { nodes: [], windows: [], timer: null, prompt: null, built: false, confirmed: new Set() };
  const say = (text) => { $("msg").textContent = text || ""; };
  const progress = (p) => `${p.receipts_read}/${p.receipts_total} ${T("read")}`;
  // A datetime-local field's value (the browser's local time, to the minute).
  const localValue = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);

  // The nodes a manager may open windows on and send prompts to: every node (unscoped), its
  // own subtree (attached to a node), none otherwise; the API refuses the others (404). The
  // list is root first, so the caller's own node comes first and is the default.
  function usable(nodes) {
    const u = me();
    if (u.site_ids === null || u.site_ids === undefined) return nodes;
    if (u.scope_kind !== "jurisdiction") return [];
    return nodes.filter((n) => n.id === u.scope_id || (n.path || []).some((s) => s.id === u.scope_id));
  }

  function windowItem(w, stats) {
    const settings = Object.entries(w.settings).map(([k, v]) => `${T(k)} ${v}`).join(" · ");
    return h("li", { class: `hz-item watch-window ${w.state}`, dataset: { windowId: w.id, state: w.state } },
      h("span", { class: "title" }, w.name),
      h("span", { class: "meta" }, `${fmtTime(w.starts_at)} – ${fmtTime(w.ends_at)} · ${w.jurisdiction_name || (w.site_ids || []).join(", ")}`),
      w.reason ? h("span", { class: "meta" }, w.reason) : null,
      h("span", { class: "meta" }, settings),
      stats ? h("div", { class: "watch-stats" },
        h("span", { dataset: { field: "sites" } }, `${stats.sites} ${T(stats.sites === 1 ? "site" : "sites")}`),
        h("span", { dataset: { field: "alarms" }, class: stats.open_alarms ? "bad" : "" },
          `${stats.open_alarms} ${T("open_alarms")}`,
          Object.entries(stats.alarms_by_class).map(([c, n]) => h("span", { class: `badge cls-${c}` }, `${c} ${n}`))),
        h("span", { dataset: { field: "offline" }, class: stats.offline_devices ? "warn" : "" },
          `${stats.offline_devices} ${T("offline")}`)) : null,
      stats && stats.prompts.length ? h("ul", { class: "duty-alarms" }, stats.prompts.map((p) =>
        h("li", {}, h("button", { class: "link", onclick: () => showPrompt(p.id) }, p.title), ` · ${progress(p)}`))) : null,
      can("watch:manage") ? h("button", { dataset: { cancel: w.id }, onclick: () => cancel(w.id) }, T("cancel")) : null);
  }

  async function cancel(id) {
    try { await api(`/watch/windows/${id}/cancel`, { method: "POST" }); say(""); await render(); } catch (e) {
      say(e.message);
    }
  }

  // A prompt's text and receipts in the side panel (kept there through the refreshes).
  async function showPrompt(id) {
    page.prompt = id;
    let p;
    try { p = await api(`/watch/prompts/${id}`); } catch (e) {
      if (e.status === 404) { page.prompt = null; fill($("prompt-detail")); }
      say(e.message);
      return;
    }
    const mine = can("prompt:receipt") && ["grid_member", "site_manager"].includes(me().role);
    const confirmed = page.confirmed.has(p.id);
    fill($("prompt-detail"), h("h2", { dataset: { promptId: p.id } }, p.title),
      h("p", {}, p.body),
      h("p", { class: "muted" }, `${p.jurisdiction_name || ""} · ${p.created_by} · ${fmtTime(p.created_at)} · ${progress(p)}`),
      mine && confirmed ? h("p", { class: "ok", id: "confirmed" }, T("confirmed")) : null,
      mine && !confirmed ? h("button", { class: "primary", id: "confirm-read", onclick: async () => {
        try {
          await api(`/watch/prompts/${id}/read`, { method: "POST" });
          page.confirmed.add(id);
          say("");
        } catch (e) {
          if (e.status === 409) page.confirmed.add(id);  // confirmed before (another tab, a link)
          say(e.message);
        }
        await render();  // the lists' read progress with the prompt's
      } }, T("confirm")) : null,
      h("h3", {}, T("receipts")),
      h("table", { class: "hz-table" }, h("tbody", {}, p.receipts.map((r) => h("tr", { dataset: { receiptId: r.id } },
        h("td", {}, T(r.recipient)), h("td", {}, r.name),
        h("td", { class: r.read_at ? "ok" : "muted" }, r.read_at ? `${fmtTime(r.read_at)} (${r.read_via})` : T("unread")))))));
  }

  function buildForms() {
    const nodes = usable(page.nodes).map((n) => h("option", { value: n.id }, `${n.name} (${n.level})`));
    const now = new Date();
    fill($("window-form"),
      h("input", { id: "w-name", required: true, maxlength: 200, placeholder: T("name") }),
      h("input", { id: "w-reason", maxlength: 2000, placeholder: T("reason") }),
      h("label", {}, T("starts"), h("input", { id: "w-start", type: "datetime-local", required: true,
        value: localValue(now) })),
      h("label", {}, T("ends"), h("input", { id: "w-end", type: "datetime-local", required: true,
        value: localValue(new Date(now.getTime() + 86400000)) })),
      h("label", {}, T("jurisdiction"), h("select", { id: "w-node" }, nodes.map((o) => o.cloneNode(true)))),
      SETTINGS.map((k) => h("label", {}, T(k), h("input", { id: `w-${k}`, type: "number", step: "any", min: 0 }))),
      h("button", { type: "submit", class: "primary" }, T("open")));
    fill($("prompt-form"),
      h("input", { id: "p-title", required: true, maxlength: 200, placeholder: T("title") }),
      h("textarea", { id: "p-body", rows: 3, required: true, maxlength: 4000, placeholder: T("body") }),
      h("label", {}, T("jurisdiction"), h("select", { id: "p-node" }, nodes)),
      h("label", {}, T("watch_link"), h("select", { id: "p-watch" }, h("option", { value: "" }, "—"),
        page.windows.map((w) => h("option", { value: w.id }, w.name)))),
      h("button", { type: "submit", class: "primary" }, T("send")));
    page.built = true;
  }

  async function render() {
    try {
      const board = await api("/watch/board");
      page.windows = [...board.data.map((x) => x.window), ...board.upcoming];
      fill($("active"), board.data.length ? board.data.map((x) => windowItem(x.window, x)) : h("li", { class: "muted" }, T("none")));
      fill($("upcoming"), board.upcoming.length ? board.upcoming.map((w) => windowItem(w, null)) : h("li", { class: "muted" }, T("none")));
      const prompts = (await api("/watch/prompts?limit=50")).data;
      fill($("prompts"), prompts.length ? prompts.map((p) => h("li", { class: "hz-item", dataset: { promptId: p.id },
        tabindex: 0, role: "button", onclick: () => showPrompt(p.id),
        onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showPrompt(p.id); } } },
      h("span", { class: "title" }, p.title),
      h("span", { class: "meta" }, `${fmtTime(p.created_at)} · ${p.jurisdiction_name || ""} · ${progress(p)}`)))
        : h("li", { class: "muted" }, T("none")));
      if (can("watch:manage") && !page.built) buildForms();
      if (page.prompt) await showPrompt(page.prompt);
    } catch (e) { say(e.message); }
  }

  $("window-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const settings = {};
    for (const k of SETTINGS) if ($(`w-${k}`).value !== "") settings[k] = Number($(`w-${k}`).value);
    try {
      await api("/watch/windows", { method: "POST", body: { name: $("w-name").value, reason: $("w-reason").value,
        starts_at: new Date($("w-start").value).toISOString(), ends_at: new Date($("w-end").value).toISOString(),
        jurisdiction_id: Number($("w-node").value), settings } });
      say("");
      page.built = false;
      await render();
    } catch (e) { say(e.message); }
  });
  $("prompt-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const watch = $("p-watch").value;
    try {
      const p = await api("/watch/prompts", { method: "POST", body: { title: $("p-title").value,
        body: $("p-body").value, jurisdiction_id: Number($("p-node").value),
        ...(watch ? { watch_id: Number(watch) } : {}) } });
      say("");
      page.built = false;
      page.prompt = p.id;
      await render();
    } catch (e) { say(e.message); }
  });

  boot(WORDS, async () => {
    if (can("watch:manage")) {
      try { page.nodes = (await api("/jurisdictions?limit=10000")).data; } catch (_) { page.nodes = []; }
    }
    page.built = false;
    await render();
    clearInterval(page.timer);
    page.timer = setInterval(() => { if (me() && !document.hidden) render(); }, REFRESH_MS);
  });
})();
