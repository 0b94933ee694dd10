// Firetower operator console: login, live alarm board (SSE over fetch, so the bearer token
// goes in a header, never in a URL), fire pop-up with sound, alarm detail with timeline and
// actions, site view with the floor plan, device health and curves. No build step.
"use strict";

const API = "/api/v1";
const CLASS_ORDER = { fire: 1, supervisory: 2, fault: 3, offline: 4, early_warning: 5 };
const CLASS_LABEL = { fire: "Fire", supervisory: "Supervisory", fault: "Fault",
  offline: "Offline", early_warning: "Early warning" };
const VERDICTS = [["true_fire", "True fire"], ["false_alarm", "False alarm"],
  ["test", "Test"], ["nuisance", "Nuisance"]];
const RECONNECT_MS = 1000;
// The stream sends a keep-alive every X-Keepalive-Seconds when idle; this many of them missed
// (plus a margin) and the connection is called stale: red, and re-opened.
const STALE_KEEPALIVES = 2, STALE_MARGIN_MS = 3000;
// A token is renewed once less than this share of its lifetime is left.
const RENEW_AT = 0.5;

const state = {
  token: sessionStorage.getItem("firetower.token"),
  me: null,
  alarms: new Map(),       // id -> alarm (unfinished only)
  selected: null,          // alarm id shown in the detail panel
  lastEventId: null,       // resume token of the live stream
  streamGen: 0,            // bumped to stop the running stream loop
  streamCtl: null,         // AbortController of the current stream connection
  conn: "down",            // live | stale | down
  lastByte: 0,             // when the stream last sent anything (ms epoch)
  keepaliveS: 15,
  renewing: null,          // the running token renewal (one at a time)
  reauth: null,            // {promise, resolve} while the sign-in dialog is up over the board
  fireOrder: [],           // fire alarm ids in the order they came
  muted: false,
  snoozed: false,          // pop-up hidden by "Open" until the next new fire or reconnect
  audio: null,
  beepTimer: null,
  sites: [], devices: [],
};
// Exposed for tests and latency measurement: when each alarm first became visible (ms epoch),
// beeps actually played (audio running), token renewals.
window.firetower = { seenAt: {}, events: 0, beeps: 0, renewals: 0,
  audioState: () => (state.audio ? state.audio.state : "none") };

// -- small DOM helper (text only: never innerHTML with data) ---------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString() : "";
const can = (perm) => !!state.me && state.me.permissions.includes(perm);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// -- tokens: renewed while the console is open; an expiry never loses the board ------------
function claims(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b64));
  } catch (_) { return {}; }
}

function setToken(token) {
  state.token = token;
  sessionStorage.setItem("firetower.token", token);
}

// Renew when less than RENEW_AT of the token's lifetime is left (checked every few seconds,
// so a throttled background tab or a sleeping laptop catches up on its next tick).
function renewDue() {
  const c = claims(state.token || "");
  if (!c.exp || !c.iat) return false;
  return Date.now() / 1000 > c.exp - (c.exp - c.iat) * RENEW_AT;
}

// One renewal at a time; resolves true with a new token, false if the old one was refused.
function renew() {
  if (!state.renewing) {
    state.renewing = (async () => {
      try {
        const r = await fetch(`${API}/auth/refresh`, { method: "POST",
          headers: { Authorization: `Bearer ${state.token}` } });
        if (!r.ok) return false;
        setToken((await r.json()).access_token);
        window.firetower.renewals += 1;
        return true;
      } catch (_) { return false; } finally { state.renewing = null; }
    })();
  }
  return state.renewing;
}

// A renewal, or (token already expired or revoked) the sign-in dialog over the board: the
// board, the stream and the action in progress wait for it, then go on.
async function renewOrSignIn() {
  if (await renew()) return;
  if (!state.reauth) {
    let resolve;
    const promise = new Promise((res) => { resolve = res; });
    state.reauth = { promise, resolve };
    $("login").classList.add("reauth");
    $("login-user").value = state.me ? state.me.name : "";
    $("login-error").textContent = "Session expired: sign in again to continue.";
    $("login").hidden = false;
    $("login-password").focus();
  }
  await state.reauth.promise;
}

setInterval(() => {
  if (state.token && state.me && !state.reauth && renewDue()) renew();
}, 5000);

// -- API ------------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, { method = "GET", body, raw = false } = {}, retried = false) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(API + path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && !retried) {
    await renewOrSignIn();  // then the same request again, once
    return api(path, { method, body, raw }, true);
  }
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).detail || msg; } catch (_) { /* not JSON */ }
    throw new ApiError(msg);
  }
  if (raw) return r;
  return r.status === 204 ? null : r.json();
}

// -- login ----------------------------------------------------------------------------------
$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  unlockAudio();  // a user gesture: browsers allow sound from now on
  const form = new URLSearchParams({ username: $("login-user").value,
    password: $("login-password").value });
  const r = await fetch(`${API}/auth/token`, { method: "POST", body: form });
  if (!r.ok) {
    $("login-error").textContent = (await r.json().catch(() => ({}))).detail || "Sign-in failed";
    return;
  }
  setToken((await r.json()).access_token);
  $("login-password").value = "";
  if (state.reauth && state.me && String(claims(state.token).sub) === String(state.me.id)) {
    // The same operator again: the board, stream and pending action carry on.
    const { resolve } = state.reauth;
    state.reauth = null;
    $("login").classList.remove("reauth");
    $("login").hidden = true;
    resolve();
    return;
  }
  if (state.reauth) {  // someone else signed in: start afresh
    const { resolve } = state.reauth;
    state.reauth = null;
    $("login").classList.remove("reauth");
    resetSession();
    resolve();
  }
  await start();
});

$("logout").addEventListener("click", () => logout());

function stopStream() {
  state.streamGen += 1;
  if (state.streamCtl) state.streamCtl.abort();
  state.streamCtl = null;
}

function resetSession() {
  stopStream();
  state.alarms.clear();
  state.fireOrder = [];
  state.lastEventId = null;
  state.selected = null;
  $("detail").hidden = true;
}

function logout(message) {
  resetSession();
  state.token = null;
  state.me = null;
  sessionStorage.removeItem("firetower.token");
  $("app").hidden = true;
  $("login").classList.remove("reauth");
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  stopBeep();
  $("fire-popup").hidden = true;
}

async function start() {
  try {
    state.me = await api("/auth/me");
  } catch (_) { return; }
  $("whoami").textContent = `${state.me.name} (${state.me.role})`;
  $("login").hidden = true;
  $("app").hidden = false;
  connectStream();
  loadSites().catch(() => {});
}

// -- live stream (SSE read with fetch) ------------------------------------------------------
async function connectStream() {
  stopStream();
  const gen = state.streamGen;
  while (gen === state.streamGen && state.token) {
    const ctl = new AbortController();
    state.streamCtl = ctl;
    try {
      const headers = { Authorization: `Bearer ${state.token}` };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const r = await fetch(`${API}/alarms/stream`, { headers, signal: ctl.signal });
      if (r.status === 401) {
        await renewOrSignIn();
        continue;
      }
      if (!r.ok) throw new Error(`stream ${r.status}`);
      state.keepaliveS = Number(r.headers.get("X-Keepalive-Seconds")) || 15;
      state.lastByte = Date.now();
      setConn("live");
      streamOpened();
      await readSse(r.body, handleSse);
    } catch (err) {
      if (gen !== state.streamGen) return;
      if (!ctl.signal.aborted) console.warn("alarm stream lost:", err && err.message);
    }
    if (gen !== state.streamGen) return;
    if (state.conn === "live") setConn("down");
    await sleep(RECONNECT_MS);
  }
}

function staleAfterMs() { return STALE_KEEPALIVES * state.keepaliveS * 1000 + STALE_MARGIN_MS; }

// Nothing (no event, no keep-alive) for too long: the connection is dead or stuck. Say so in
// red and open a new one (it resumes from the last event id, nothing is lost).
setInterval(() => {
  if (state.conn === "live" && Date.now() - state.lastByte > staleAfterMs()) {
    setConn("stale");
    if (state.streamCtl) state.streamCtl.abort();
  }
}, 1000);

async function readSse(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { id: null, event: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    state.lastByte = Date.now();
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (ev.data.length) onEvent(ev.id, ev.event, JSON.parse(ev.data.join("\n")));
        ev = { id: ev.id, event: "message", data: [] };
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "id") ev.id = val;
        else if (field === "event") ev.event = val;
        else if (field === "data") ev.data.push(val);
      }
    }
  }
}

// A rendering failure must not make the stream replay: the resume id advances regardless.
function handleSse(id, kind, data) {
  try {
    applySse(kind, data);
  } catch (err) {
    console.error("console failed on a stream event:", err);
  } finally {
    if (id) state.lastEventId = id;
  }
}

function applySse(kind, data) {
  if (kind === "snapshot") {
    state.alarms.clear();
    for (const a of data.alarms) { state.alarms.set(a.id, a); markSeen(a.id); }
    renderBoard();
    updateFires();
  } else if (kind === "alarm") {
    window.firetower.events += 1;
    const a = data.alarm;
    const e = data.event;
    if (a) {
      const isNew = !state.alarms.has(a.id);
      if (a.state === "closed") state.alarms.delete(a.id);
      else state.alarms.set(a.id, a);
      renderBoard();
      if (isNew && a.state !== "closed") markSeen(a.id);
      if (a.class === "fire" && e.kind === "raise" && a.mode === "normal") {
        state.snoozed = false;  // every new fire brings the pop-up (and the sound) back
        state.muted = false;
      }
      updateFires();
      if (state.selected === a.id) showDetail(a.id);
    }
  }
}

// An alarm as an action answered it (the stream brings the same change a moment later).
function applyAlarm(a) {
  if (!a || !state.alarms.has(a.id)) return;
  if (a.state === "closed") state.alarms.delete(a.id);
  else state.alarms.set(a.id, a);
  renderBoard();
  updateFires();
}

// A (re)opened stream: every fire still active pops up and sounds again.
function streamOpened() {
  state.snoozed = false;
  updateFires();
}

function markSeen(alarmId) {
  if (!(alarmId in window.firetower.seenAt)) window.firetower.seenAt[alarmId] = Date.now();
}

function setConn(conn) {
  state.conn = conn;
  const el = $("live");
  el.textContent = { live: "live", stale: "stale: no data", down: "reconnecting" }[conn];
  el.dataset.state = conn;
  el.classList.toggle("on", conn === "live");
  el.title = conn === "live" ? "live stream connected"
    : `no data from the live stream for over ${Math.round(staleAfterMs() / 1000)} s`;
}

// -- board ----------------------------------------------------------------------------------
function sortedAlarms() {
  return [...state.alarms.values()].sort((a, b) =>
    (CLASS_ORDER[a.class] - CLASS_ORDER[b.class]) ||
    (b.raised_at < a.raised_at ? -1 : b.raised_at > a.raised_at ? 1 : b.id - a.id));
}

function renderBoard() {
  const list = sortedAlarms();
  $("board").replaceChildren(...list.map((a) => h("li", {
    class: `alarm${state.selected === a.id ? " selected" : ""}`,
    dataset: { alarmId: a.id, class: a.class, state: a.state },
    onclick: () => { state.selected = a.id; renderBoard(); showDetail(a.id); },
  },
  h("span", { class: `bar cls-${a.class}` }),
  h("span", { class: "title" }, h("span", { class: `badge cls-${a.class}` }, CLASS_LABEL[a.class]),
    a.device_id, a.mode !== "normal" ? ` [${a.mode.toUpperCase()}]` : ""),
  h("span", { class: "state" }, a.state.replace("_", " ")),
  h("span", { class: "meta" }, [a.site_name || a.site_id, a.location, a.type,
    fmtTime(a.raised_at), a.count > 1 ? `${a.count}×` : null, a.assignee ? `→ ${a.assignee}` : null]
    .filter(Boolean).join(" · ")))));
  $("board-empty").hidden = list.length > 0;
  $("board-count").textContent = String(list.filter((a) => a.state === "active").length);
}

// -- detail ---------------------------------------------------------------------------------
async function showDetail(alarmId) {
  const panel = $("detail");
  let a;
  try { a = await api(`/alarms/${alarmId}`); } catch (err) { return; }
  if (state.selected !== alarmId) return;
  const act = (label, path, body, cls) => h("button", { class: cls, dataset: { action: label },
    onclick: async (ev) => {
      ev.target.disabled = true;
      try { await api(`/alarms/${a.id}/${path}`, { method: "POST", body }); }
      catch (err) { alert(err.message); }
      showDetail(a.id);
    } }, label);
  const handle = can("alarm:handle");
  const verdictSel = h("select", { id: "verdict-select", "aria-label": "Verdict" },
    VERDICTS.map(([v, l]) => h("option", { value: v }, l)));
  const comment = h("input", { id: "comment-text", placeholder: "Comment", maxlength: 2000 });
  panel.replaceChildren(
    h("h2", {}, h("span", { class: `badge cls-${a.class}` }, CLASS_LABEL[a.class]), a.device_id),
    h("dl", { class: "kv" },
      ...[["State", a.state], ["Verdict", a.verdict], ["Site", a.site_name || a.site_id],
        ["Location", a.location], ["Floor", a.floor_id], ["Rule", a.type],
        ["Confidence", a.confidence != null ? `${Math.round(a.confidence * 100)} %` : null],
        ["Mode", a.mode], ["Raised", fmtTime(a.raised_at)], ["Occurrences", a.count],
        ["Acknowledged", a.acknowledged_by ? `${a.acknowledged_by}, ${fmtTime(a.acknowledged_at)}` : null],
        ["Assignee", a.assignee]]
        .filter(([, v]) => v !== null && v !== undefined && v !== "")
        .map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k.toLowerCase() } }, v)])),
    handle ? h("div", { class: "actions" },
      (a.state === "active" || a.state === "cleared_unack")
        ? act("Acknowledge", "acknowledge", {}, "primary") : null,
      ["active", "acknowledged", "cleared_unack", "cleared"].includes(a.state)
        ? [verdictSel, h("button", { dataset: { action: "Verdict" }, onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api(`/alarms/${a.id}/verdict`, { method: "POST",
              body: { verdict: verdictSel.value } });
          } catch (err) { alert(err.message); }
          showDetail(a.id);
        } }, "Give verdict")] : null,
      a.state === "cleared" && a.class !== "fire" ? act("Close", "close", {}) : null) : null,
    can("alarm:comment") ? h("div", { class: "row" }, comment,
      h("button", { onclick: async () => {
        if (!comment.value.trim()) return;
        try {
          await api(`/alarms/${a.id}/comments`, { method: "POST", body: { text: comment.value } });
        } catch (err) { alert(err.message); }
        showDetail(a.id);
      } }, "Comment")) : null,
    handle ? h("div", { class: "row" },
      h("input", { id: "assign-to", placeholder: "Assign to user" }),
      h("button", { onclick: async () => {
        const who = $("assign-to").value.trim() || null;
        try { await api(`/alarms/${a.id}/assign`, { method: "POST", body: { assignee: who } }); }
        catch (err) { alert(err.message); }
        showDetail(a.id);
      } }, "Assign")) : null,
    h("h3", {}, "Timeline"),
    h("ol", { class: "timeline", id: "timeline" }, a.events.map((e) => h("li", {
      dataset: { kind: e.kind } },
    h("span", { class: "when" }, fmtTime(e.at)),
    h("strong", {}, e.kind), e.to_state && e.to_state !== e.from_state ? ` → ${e.to_state}` : "",
    ` · ${e.actor}`, e.reason ? ` · ${e.reason}` : "",
    e.details && e.details.verdict ? ` · ${e.details.verdict}` : "")))
  );
  panel.dataset.alarmId = a.id;
  panel.hidden = false;
}

// -- fire pop-up and sound ------------------------------------------------------------------
// Every active, unacknowledged fire in normal mode pops up and sounds until acknowledged:
// those of the snapshot (sign-in, reload, another workstation), new ones, and again after a
// reconnect. Browsers start sound only after a user gesture: until then the pop-up says so,
// and the first click or key anywhere starts it.
function unlockAudio() {
  try {
    state.audio = state.audio || new (window.AudioContext || window.webkitAudioContext)();
    if (state.audio.state === "suspended") state.audio.resume().then(updateSoundHint);
  } catch (_) { state.audio = null; }
  updateSoundHint();
}
document.addEventListener("pointerdown", unlockAudio, true);
document.addEventListener("keydown", unlockAudio, true);

function updateSoundHint() {
  const blocked = !state.audio || state.audio.state !== "running";
  $("fire-sound").hidden = !blocked || $("fire-popup").hidden;
}

function beep() {
  const ctx = state.audio;
  updateSoundHint();
  if (!ctx || state.muted || ctx.state !== "running") return;
  window.firetower.beeps += 1;
  const t = ctx.currentTime;
  for (const [i, f] of [880, 660].entries()) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, t + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.25, t + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.3 + 0.28);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t + i * 0.3);
    osc.stop(t + i * 0.3 + 0.3);
  }
}

function stopBeep() { clearInterval(state.beepTimer); state.beepTimer = null; }

function pendingFires() {
  const active = [...state.alarms.values()].filter((a) =>
    a.class === "fire" && a.state === "active" && a.mode === "normal");
  for (const a of active) if (!state.fireOrder.includes(a.id)) state.fireOrder.push(a.id);
  const ids = new Set(active.map((a) => a.id));
  state.fireOrder = state.fireOrder.filter((id) => ids.has(id));
  return state.fireOrder.map((id) => state.alarms.get(id));
}

function updateFires() {
  const fires = pendingFires();
  const a = fires[0];
  if (!a || state.snoozed) {
    $("fire-popup").hidden = true;
    stopBeep();
    return;
  }
  const more = fires.length - 1;
  $("fire-more").textContent = more > 0 ? `${more} more fire${more > 1 ? "s" : ""} waiting` : "";
  $("fire-what").textContent = `${a.device_id} — ${a.type}`;
  $("fire-where").textContent = [a.site_name || a.site_id, a.location, a.floor_id]
    .filter(Boolean).join(" · ");
  $("fire-popup").dataset.alarmId = a.id;
  $("fire-ack").hidden = !can("alarm:handle");
  $("fire-popup").hidden = false;
  if (!state.beepTimer) { beep(); state.beepTimer = setInterval(beep, 1500); }
  updateSoundHint();
}

$("fire-ack").addEventListener("click", async () => {
  const id = Number($("fire-popup").dataset.alarmId);
  try { applyAlarm(await api(`/alarms/${id}/acknowledge`, { method: "POST", body: {} })); }
  catch (err) { alert(err.message); }
});
$("fire-open").addEventListener("click", () => {
  // The operator takes it from the board: hide the pop-up (and the sound) until a new fire.
  const id = Number($("fire-popup").dataset.alarmId);
  state.snoozed = true;
  updateFires();
  switchView("board");
  state.selected = id;
  renderBoard();
  showDetail(id);
});
$("fire-mute").addEventListener("click", () => { state.muted = true; });

// -- views ----------------------------------------------------------------------------------
function switchView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  $("view-board").hidden = name !== "board";
  $("view-sites").hidden = name !== "sites";
  if (name === "sites") renderSite().catch(() => {});
}
for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => switchView(b.dataset.view));

// -- sites ----------------------------------------------------------------------------------
async function loadSites() {
  state.sites = (await api("/sites")).data;
  $("site-select").replaceChildren(...state.sites.map((s) => h("option", { value: s.id }, s.name)));
}
$("site-select").addEventListener("change", () => renderSite(true));
$("floor-select").addEventListener("change", () => renderSite(false));

async function renderSite(siteChanged = true) {
  const site = state.sites.find((s) => s.id === $("site-select").value);
  if (!site) return;
  if (siteChanged || !$("floor-select").options.length) {
    $("floor-select").replaceChildren(h("option", { value: "" }, "All floors"),
      ...site.floors.map((f) => h("option", { value: f.id }, f.name)));
    if (site.floors.length) $("floor-select").value = site.floors[0].id;
  }
  const floorId = $("floor-select").value;
  const [devices, health] = await Promise.all([
    api(`/devices?site_id=${encodeURIComponent(site.id)}`), api(`/sites/${encodeURIComponent(site.id)}/health`)]);
  state.devices = devices.data;
  $("site-health").textContent = health.online_rate === null ? "no devices in service"
    : `online ${Math.round(health.online_rate * 1000) / 10} % (${health.online}/${health.in_service})` +
      (health.offline ? ` · ${health.offline} offline` : "");
  const onFloor = state.devices.filter((d) => !floorId || d.floor_id === floorId);
  const inAlarm = new Set([...state.alarms.values()].filter((a) => a.state !== "closed").map((a) => a.device_id));
  const health1 = (d) => d.online === null ? "never" : d.online ? "" : "offline";
  $("device-list").replaceChildren(...onFloor.map((d) => h("li", {
    dataset: { deviceId: d.id }, onclick: () => showCurves(d) },
  h("span", {}, h("span", { class: `dot ${health1(d)}` }), " ", d.id, " ",
    h("small", {}, d.location)), h("small", {}, d.lifecycle.replace("_", " ")))));
  const plan = $("plan");
  const floor = site.floors.find((f) => f.id === floorId);
  if (floor && floor.plan_url) {
    const r = await api(floor.plan_url.replace(API, ""), { raw: true });
    const url = URL.createObjectURL(await r.blob());
    plan.replaceChildren(h("img", { src: url, alt: `Plan of ${floor.name}` }),
      ...onFloor.filter((d) => d.x !== null && d.y !== null).map((d) => {
        const m = h("button", {
          class: `marker ${inAlarm.has(d.id) ? "alarm" : health1(d)}`, title: `${d.id} ${d.location}`,
          dataset: { deviceId: d.id }, onclick: () => showCurves(d) });
        m.style.left = `${d.x * 100}%`;  // CSSOM, allowed by the CSP (inline style attributes are not)
        m.style.top = `${d.y * 100}%`;
        return m;
      }));
  } else {
    plan.replaceChildren(h("p", { class: "empty" }, "No floor plan for this floor."));
  }
  renderFirePlan(site);
}

function renderFirePlan(site) {
  const fp = site.fire_plan || {};
  const part = (title, items) => h("section", {}, h("h3", {}, title),
    items && items.length ? h("ul", {}, items.map((i) => h("li", {}, i.name,
      i.description ? ` — ${i.description}` : ""))) : h("p", { class: "empty" }, "none recorded"));
  $("fire-plan").replaceChildren(
    part("Entrances", fp.entrances), part("Water sources", fp.water_sources),
    part("Hazards", fp.hazards),
    h("section", {}, h("h3", {}, "Contacts"), h("ul", {}, (site.contacts || []).map((c) =>
      h("li", {}, c.name, c.role ? ` (${c.role})` : "", c.phone ? ` ${c.phone}` : "")))));
}

const CURVES = {
  sprinkler_pressure: [["pressure_kpa", "Pressure, kPa (24 h)", 24, 600]],
  smoke_detector: [["obscuration_pct_per_m", "Smoke obscuration, %/m (7 days)", 168, 3600],
    ["temperature_c", "Temperature, °C (24 h)", 24, 600]],
  heat_detector: [["temperature_c", "Temperature, °C (24 h)", 24, 600]],
  alarm_panel: [["battery_v", "Battery, V (7 days)", 168, 3600]],
};

async function showCurves(d) {
  for (const li of $("device-list").children) li.classList.toggle("selected", li.dataset.deviceId === d.id);
  const box = $("curves");
  box.replaceChildren(h("p", {}, h("strong", {}, d.id), ` ${d.kind.replace("_", " ")} · ${d.location}`));
  for (const [metric, title, hours, bucket] of CURVES[d.kind] || []) {
    const start = new Date(Date.now() - hours * 3600e3).toISOString();
    const s = await api(`/devices/${encodeURIComponent(d.id)}/telemetry?metric=${metric}` +
      `&bucket_s=${bucket}&start=${encodeURIComponent(start)}`);
    box.append(h("h3", {}, title), chart(s.points, Date.parse(start), Date.now()));
  }
}

function chart(points, t0, t1) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 160, P = 28;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const vals = points.flatMap((p) => [p.min, p.max, p.avg]).filter((v) => v !== null);
  const text = (x, y, s, anchor = "start") => {
    const t = document.createElementNS(NS, "text");
    Object.entries({ x, y, fill: "#8c96a3", "font-size": 11, "text-anchor": anchor })
      .forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = s;
    svg.append(t);
  };
  if (!vals.length) { text(W / 2, H / 2, "no data", "middle"); return svg; }
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const x = (t) => P + (W - 2 * P) * (t - t0) / (t1 - t0);
  const y = (v) => H - P + (2 * P - H) * (v - lo) / (hi - lo);
  const line = (key, color) => {
    const pts = points.filter((p) => p[key] !== null)
      .map((p) => `${x(Date.parse(p.t)).toFixed(1)},${y(p[key]).toFixed(1)}`);
    if (!pts.length) return;
    const pl = document.createElementNS(NS, "polyline");
    Object.entries({ points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.6 })
      .forEach(([k, v]) => pl.setAttribute(k, v));
    svg.append(pl);
  };
  line("min", "#3a8ee6"); line("max", "#e5322d"); line("avg", "#e8ecf1");
  text(2, P - 6, hi.toFixed(1)); text(2, H - 6, lo.toFixed(1));
  return svg;
}

// -- boot -----------------------------------------------------------------------------------
if (state.token) start();
