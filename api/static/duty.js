// Firetower: the duty page (duty.html): pick a roster; who is on duty now; the shifts of the
// week (a planner adds and removes them); the duty log with a note box; the hand-over form with
// the open alarms it will hand over, and past hand-overs. The first part, FiretowerPage, is the
// sign-in, token renewal and API helper that watch.js shares (the same token as the console:
// sessionStorage "firetower.token"). Plain script, text only into the DOM, no inline script.
"use strict";

(function () {
  const API = "/api/v1";
  const RENEW_AT = 0.5;  // renew once less than half of a token's lifetime is left
  const st = { token: sessionStorage.getItem("firetower.token"), me: null, renewing: null,
    lang: localStorage.getItem("firetower.lang")
      || ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en"),
    words: { en: {}, zh: {} }, onStart: null };

  const $ = (id) => document.getElementById(id);
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
  const T = (key) => st.words[st.lang][key] || st.words.en[key] || key;
  const can = (perm) => !!st.me && st.me.permissions.includes(perm);
  const fmtTime = (iso) => iso ? new Date(iso).toLocaleString(st.lang === "zh" ? "zh-CN" : undefined,
    { dateStyle: "short", timeStyle: "short" }) : "";

  function claims(token) {
    try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch (_) {
      return {};
    }
  }
  function setToken(token) { st.token = token; sessionStorage.setItem("firetower.token", token); }
  async function renew() {
    if (!st.renewing) {
      st.renewing = (async () => {
        try {
          const r = await fetch(`${API}/auth/refresh`, { method: "POST", headers: { Authorization: `Bearer ${st.token}` } });
          if (!r.ok) return false;
          setToken((await r.json()).access_token);
          return true;
        } catch (_) { return false; } finally { st.renewing = null; }
      })();
    }
    return st.renewing;
  }
  setInterval(() => {
    const c = claims(st.token || "");
    if (st.me && c.exp && c.iat && Date.now() / 1000 > c.exp - (c.exp - c.iat) * RENEW_AT) renew();
  }, 5000);

  class ApiError extends Error { constructor(message, status) { super(message); this.status = status; } }

  async function api(path, { method = "GET", body } = {}, retried = false) {
    const headers = { Authorization: `Bearer ${st.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && !retried && await renew()) return api(path, { method, body }, true);
    if (r.status === 401) { signIn(T("session_expired")); throw new ApiError(T("session_expired"), 401); }
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).detail || msg; } catch (_) { /* not JSON */ }
      throw new ApiError(msg || `HTTP ${r.status}`, r.status);
    }
    return r.status === 204 ? null : r.json();
  }

  function signIn(message) {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }
  function applyLang() {
    document.documentElement.lang = st.lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = T(el.dataset.t);
    for (const el of document.querySelectorAll("[data-t-placeholder]")) el.placeholder = T(el.dataset.tPlaceholder);
    $("lang").value = st.lang;
  }
  async function start() {
    try { st.me = await api("/auth/me"); } catch (_) { signIn(""); return; }
    $("whoami").textContent = `${st.me.name} (${st.me.role})`;
    for (const el of document.querySelectorAll("[data-perm]")) el.hidden = !can(el.dataset.perm);
    $("login").hidden = true;
    $("app").hidden = false;
    if (st.onStart) await st.onStart();
  }

  // The page's words (en, zh) and what to do once signed in.
  function boot(words, onStart) {
    st.words = { en: { ...COMMON.en, ...words.en }, zh: { ...COMMON.zh, ...words.zh } };
    st.onStart = onStart;
    applyLang();
    $("lang").addEventListener("change", () => {
      st.lang = $("lang").value;
      localStorage.setItem("firetower.lang", st.lang);
      applyLang();
      if (st.me && st.onStart) st.onStart();
    });
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = new URLSearchParams({ username: $("login-user").value, password: $("login-password").value });
      const r = await fetch(`${API}/auth/token`, { method: "POST", body: form }).catch(() => null);
      if (!r || !r.ok) {
        $("login-error").textContent = r ? ((await r.json().catch(() => ({}))).detail || "Sign-in failed") : "offline";
        return;
      }
      setToken((await r.json()).access_token);
      $("login-password").value = "";
      await start();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem("firetower.token");
      st.token = null; st.me = null;
      signIn("");
    });
    if (st.token) start(); else signIn("");
  }

  const COMMON = {
    en: { user: "User", password: "Password", sign_in: "Sign in", sign_out: "Sign out",
      console: "Console", duty: "Duty", watch: "Watch", notify: "Notifications", session_expired: "Your session expired: sign in again.",
      operator: "Operator", leader: "Shift leader", officer: "Officer on call", nobody: "nobody",
      until: "until", remove: "Remove", add: "Add", none: "None." },
    zh: { user: "用户", password: "密码", sign_in: "登录", sign_out: "退出", console: "控制台", duty: "值班", notify: "通知",
      watch: "重点时段", session_expired: "登录已过期，请重新登录。", operator: "值班员", leader: "值班长",
      officer: "带班领导", nobody: "无人", until: "至", remove: "删除", add: "添加", none: "无。" },
  };

  window.FiretowerPage = { h, $, T, api, can, fmtTime, boot, me: () => st.me, fill: window.FiretowerLoop.fill };
})();

// -- the duty page ------------------------------------------------------------------------------
(function () {
  if (document.body.dataset.page !== "duty") return;
  const { h, $, T, api, can, fmtTime, boot, me, fill } = window.FiretowerPage;
  const POSITIONS = ["operator", "leader", "officer"];
  const REFRESH_MS = 30000;
  const WORDS = {
    en: { duty_title: "Duty rosters", on_duty_now: "On duty now", week: "Shifts of the week", log: "Duty log",
      add_note: "Add note", handover: "Hand over the shift", handover_lists: "These open alarms are handed over:",
      to_user: "To", hand_over: "Hand over", handovers: "Hand-overs", no_rosters: "No roster you can see.",
      sites: "sites", site: "site", user_id: "User id", position: "Position", starts: "Starts", ends: "Ends",
      handed: "handed over to", alarms_listed: "open alarms", alarm_listed: "open alarm", handover_pill: "Hand-over",
      no_alarms: "No open alarms.", pick_user: "Nobody on this week's shifts to hand over to.", uncovered: "Uncovered",
      log_placeholder: "A note for the duty log", handover_placeholder: "What the next shift should know" },
    zh: { duty_title: "值班表", on_duty_now: "当前值班", week: "本周班次", log: "值班记录", add_note: "添加记录",
      handover: "交接班", handover_lists: "以下未处理警情将移交：", to_user: "接班人", hand_over: "交班",
      handovers: "交接记录", no_rosters: "没有可查看的值班表。", sites: "个场所", site: "个场所", user_id: "用户编号",
      position: "岗位", starts: "开始", ends: "结束", handed: "移交给", alarms_listed: "条未处理警情",
      alarm_listed: "条未处理警情", handover_pill: "交接班", no_alarms: "没有未处理警情。",
      pick_user: "本周班次中没有可交接的人员。", uncovered: "空岗", log_placeholder: "值班记录内容",
      handover_placeholder: "交接事项" },
  };
  const page = { rosters: [], roster: null, timer: null, names: new Map() };
  const say = (text) => { $("msg").textContent = text || ""; };

  async function loadRosters() {
    page.rosters = (await api("/duty/rosters")).data;
    const sel = $("roster-select");
    const keep = page.roster || Number(new URLSearchParams(location.search).get("roster")) || null;
    sel.replaceChildren(...page.rosters.map((r) => h("option", { value: r.id },
      `${r.name} · ${r.jurisdiction_name || r.unit_name || ""}`)));
    page.roster = page.rosters.some((r) => r.id === keep) ? keep : (page.rosters[0] || {}).id || null;
    if (page.roster) sel.value = String(page.roster);
    say(page.rosters.length ? "" : T("no_rosters"));
  }

  async function renderNow(rid) {
    const now = await api(`/duty/rosters/${rid}/now`);
    fill($("now"), h("dl", { class: "kv", id: "now-list" }, POSITIONS.map((p) => [
      h("dt", {}, T(p)),
      h("dd", { dataset: { position: p }, class: now.positions[p].length ? "" : "bad" },
        now.positions[p].length ? now.positions[p].map((x) => `${x.name} (${T("until")} ${fmtTime(x.until)})`).join(", ")
          : T("nobody"))])));
  }

  async function renderWeek(rid) {
    const start = new Date(); start.setHours(0, 0, 0, 0);
    const end = new Date(start.getTime() + 7 * 86400000);
    const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
    const shifts = (await api(`/duty/rosters/${rid}/shifts?${q}`)).data;
    page.names = new Map(shifts.map((s) => [s.user_id, s.user_name]));  // this roster's people
    const planner = can("duty:plan");
    fill($("week"), h("thead", {}, h("tr", {}, [T("position"), T("user"), T("starts"), T("ends"), ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, shifts.length ? shifts.map((s) => h("tr", { dataset: { shiftId: s.id } },
        h("td", {}, T(s.position)), h("td", {}, s.user_name), h("td", {}, fmtTime(s.starts_at)),
        h("td", {}, fmtTime(s.ends_at)),
        h("td", {}, planner ? h("button", { class: "link", onclick: () => removeShift(rid, s.id) }, T("remove")) : "")))
        : h("tr", {}, h("td", { colspan: 5, class: "empty" }, T("none")))));
    const form = $("shift-form");
    form.hidden = !planner;
    if (planner && !form.childElementCount) {
      // labelled with data-t (data-t-placeholder): the language switch relabels it in place
      const label = (key, field) => h("label", {}, h("span", { "data-t": key }, T(key)), " ", field);
      form.append(
        label("user", h("select", { id: "shift-user", required: true })),
        label("position", h("select", { id: "shift-position" },
          POSITIONS.map((p) => h("option", { value: p, "data-t": p }, T(p))))),
        label("starts", h("input", { id: "shift-start", type: "datetime-local", required: true })),
        label("ends", h("input", { id: "shift-end", type: "datetime-local", required: true })),
        h("button", { type: "submit", class: "primary", "data-t": "add" }, T("add")));
    }
    if (planner) {  // the people this roster may have on shift, by name
      const people = (await api(`/duty/rosters/${rid}/candidates`)).data;
      const sel = $("shift-user");
      const keep = sel.value;
      fill(sel, ...people.map((u) => h("option", { value: u.user_id }, `${u.name} (${u.role})`)));
      if (keep && people.some((u) => String(u.user_id) === keep)) sel.value = keep;
    }
  }

  async function removeShift(rid, sid) {
    try { await api(`/duty/rosters/${rid}/shifts/${sid}`, { method: "DELETE" }); await render(); } catch (e) {
      say(e.message);
    }
  }

  async function renderLog(rid) {
    const log = (await api(`/duty/rosters/${rid}/log?limit=100`)).data;
    $("log-form").hidden = !can("duty:log");
    fill($("log"), log.map((e) => h("li", { dataset: { kind: e.kind } },
      h("span", { class: "when" }, fmtTime(e.at)), h("strong", {}, e.actor.replace(/^user:/, "")), " ",
      e.kind === "handover" ? h("span", { class: "hz-pill" }, T("handover_pill")) : null, " ", e.text)));
  }

  async function renderHandover(rid) {
    const open = (await api(`/duty/rosters/${rid}/open-alarms`)).data;
    fill($("handover-alarms"), open.length ? open.map((a) => h("li", { dataset: { alarmId: a.id, class: a.class } },
      h("span", { class: `badge cls-${a.class}` }, a.class), ` #${a.id} ${a.site_name || a.site_id} · ${a.state} · ${fmtTime(a.raised_at)}`))
      : h("li", { class: "muted" }, T("no_alarms")));
    const form = $("handover-form");
    form.hidden = !can("duty:log");
    const others = [...page.names].filter(([id]) => id !== me().id);
    $("handover-to").replaceChildren(...others.map(([id, name]) => h("option", { value: id }, name)));
    if (!others.length && can("duty:log")) $("handover-to").append(h("option", { value: "" }, T("pick_user")));
    const past = (await api(`/duty/rosters/${rid}/handovers?limit=20`)).data;
    fill($("handovers"), past.map((x) => h("li", { dataset: { handoverId: x.id } },
      h("span", { class: "when" }, fmtTime(x.at)),
      `${x.from_user_name} ${T("handed")} ${x.to_user_name}: ${x.open_alarms.length} `
        + T(x.open_alarms.length === 1 ? "alarm_listed" : "alarms_listed"),
      x.note ? h("div", { class: "muted" }, x.note) : null)));
  }

  async function render() {
    const rid = page.roster;
    const r = page.rosters.find((x) => x.id === rid);
    $("roster-info").textContent = r ? `${r.sites} ${T(r.sites === 1 ? "site" : "sites")}` : "";
    if (!rid) return;
    try {
      await renderNow(rid);
      await renderWeek(rid);
      await renderLog(rid);
      await renderHandover(rid);
    } catch (e) { say(e.message); }
  }

  $("roster-select").addEventListener("change", (ev) => { page.roster = Number(ev.target.value); render(); });
  $("log-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/duty/rosters/${page.roster}/log`, { method: "POST", body: { text: $("log-text").value } });
      $("log-text").value = "";
      say("");
      await renderLog(page.roster);
    } catch (e) { say(e.message); }
  });
  $("shift-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const iso = (id) => new Date($(id).value).toISOString();
    try {
      await api(`/duty/rosters/${page.roster}/shifts`, { method: "POST", body: {
        user_id: Number($("shift-user").value), position: $("shift-position").value,
        starts_at: iso("shift-start"), ends_at: iso("shift-end") } });
      say("");
      await render();
    } catch (e) { say(e.message); }
  });
  $("handover-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/duty/rosters/${page.roster}/handovers`, { method: "POST", body: {
        to_user_id: Number($("handover-to").value), note: $("handover-note").value } });
      $("handover-note").value = "";
      say("");
      await render();
    } catch (e) { say(e.message); }
  });

  boot(WORDS, async () => {
    try { await loadRosters(); } catch (e) { say(e.message); return; }
    await render();
    clearInterval(page.timer);
    page.timer = setInterval(() => { if (me() && !document.hidden) render(); }, REFRESH_MS);
  });
})();
