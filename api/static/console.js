// Firetower operator console: sign-in and token renewal, the live alarm stream (SSE over
// fetch, so the bearer token goes in a header, never in a URL) with its connection state, the
// grouped board with bulk actions, the fire pop-up with sound, languages. The alarm detail is
// in detail.js, floor plans and the site view in sites.js, the pure board logic and labels in
// board.js. Plain scripts sharing one global scope, no build step.
"use strict";

const API = "/api/v1";
const B = window.FiretowerBoard;  // board.js: labels, evidence, grouping (pure)
const VERDICTS = ["true_fire", "false_alarm", "test", "nuisance"];
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
  streamEnd: null,         // why the server ended the stream ('end' event), until reconnected
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
  labels: { en: {}, zh: {} },
  lang: "en",
  expanded: new Set(),     // keys of the group rows shown open
  rowEls: new Map(),       // row key -> {el, sig}: rows are rebuilt only when they change
  drafts: {},              // typed text kept across re-renders (reasons), by input id
  planUrls: new Map(),     // plan_url -> {url, ratio}
  popupKey: null,          // the incident (or lone fire) the pop-up shows
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
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString() : "";
const can = (perm) => !!state.me && state.me.permissions.includes(perm);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// -- language: English / Chinese, from the browser, switchable, remembered ----------------------
const T = (key, vars) => { const v = B.t(state.labels, state.lang, key, vars); return v === null ? key : v; };
const L = (prefix, value) => B.label(state.labels, state.lang, prefix, value);
const actorText = (actor) => B.actorLabel(state.labels, state.lang, actor);

function applyLang() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = T(el.dataset.i18n);
  $("lang").value = state.lang;
  setConn(state.conn);
  state.rowEls.clear();
  if (state.me) { renderBoard(); updateFires(); if (state.selected) showDetail(state.selected); }
}

$("lang").addEventListener("change", () => {
  state.lang = $("lang").value;
  localStorage.setItem("firetower.lang", state.lang);
  applyLang();
});

// Kept across re-renders of the same thing: what the operator typed, and where the cursor was.
function keepInputs(root, render, same = true) {
  const focused = same && document.activeElement && root.contains(document.activeElement)
    ? document.activeElement.id : null;
  for (const el of root.querySelectorAll("input[id], textarea[id]")) {
    if (same) state.drafts[el.id] = el.value; else delete state.drafts[el.id];
  }
  render();
  for (const el of root.querySelectorAll("input[id], textarea[id]")) {
    if (state.drafts[el.id] !== undefined) {
      el.value = state.drafts[el.id];
      el.dispatchEvent(new Event("input"));
    }
  }
  if (focused && $(focused)) $(focused).focus();
}

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
    $("login-error").textContent = T("ui.session_expired");
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
  for (const b of document.querySelectorAll(".tab[data-perm]")) b.hidden = !can(b.dataset.perm);
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
      state.streamEnd = null;
      await readSse(r.body, handleSse);
    } catch (err) {
      if (gen !== state.streamGen) return;
      if (!ctl.signal.aborted) console.warn("alarm stream lost:", err && err.message);
    }
    if (gen !== state.streamGen) return;
    if (state.streamEnd) {
      // The server ended the session (its token expired, or the user changed): with a valid
      // token, resume at once; nothing is missed (Last-Event-ID).
      if (/role|sites/.test(state.streamEnd)) state.lastEventId = null;  // a fresh snapshot
      state.streamEnd = null;
      if (!renewDue() || await renew()) continue;
    }
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
  if (kind === "end") {
    state.streamEnd = data.reason || "ended";
  } else if (kind === "snapshot") {
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
function applyAlarm(a, render = true) {
  if (!a || !state.alarms.has(a.id)) return;
  if (a.state === "closed") state.alarms.delete(a.id);
  else state.alarms.set(a.id, a);
  if (render) { renderBoard(); updateFires(); }
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
  el.textContent = T(`ui.conn.${conn}`);
  el.dataset.state = conn;
  el.classList.toggle("on", conn === "live");
  el.title = conn === "live" ? "live stream connected"
    : `no data from the live stream for over ${Math.round(staleAfterMs() / 1000)} s`;
}

// -- board ----------------------------------------------------------------------------------
// Rows from board.js: lone alarms, incidents (fires of one site at overlapping times), an
// offline panel with the alarms it inhibits, floods of one class at one site. A row is
// rebuilt only when its content changes, so a busy board stays cheap to draw.
function alarmTitle(a) {
  return `${a.device_id} — ${L("rule", a.type)}`;
}

function alarmMeta(a) {
  return [a.site_name || a.site_id, a.location, fmtTime(a.raised_at),
    a.count > 1 ? `${a.count}×` : null, a.assignee ? `→ ${a.assignee}` : null]
    .filter(Boolean).join(" · ");
}

function selectAlarm(id) {
  if (id !== state.selected) for (const k of ["action-reason", "comment-text", "assign-to"]) delete state.drafts[k];
  state.selected = id;
  renderBoard();
  showDetail(id);
}

function alarmLine(a, extra) {
  const inhibitor = a.inhibited_by && a.inhibited_by.startsWith("offline:")
    ? a.inhibited_by.slice(8) : null;
  return h("li", {
    class: `alarm${state.selected === a.id ? " selected" : ""}${inhibitor ? " inhibited" : ""}`
      + (extra || ""),
    dataset: { alarmId: a.id, class: a.class, state: a.state, mode: a.mode },
    onclick: (ev) => { ev.stopPropagation(); selectAlarm(a.id); },
  },
  h("span", { class: `bar cls-${a.class}` }),
  h("span", { class: "title" }, h("span", { class: `badge cls-${a.class}` }, L("class", a.class)),
    alarmTitle(a), a.mode !== "normal" ? ` [${L("mode", a.mode)}]` : ""),
  h("span", { class: "state" }, L("state", a.state)),
  h("span", { class: "meta" }, alarmMeta(a),
    inhibitor ? h("span", { class: "tag" }, T("ui.inhibited_by", { device: inhibitor })) : null));
}

const UNACKED = new Set(["active", "cleared_unack"]);

function groupRow(r) {
  const open = state.expanded.has(r.key);
  const n = r.members.length;
  const inhibited = r.members.filter((a) => a.inhibited_by).length;
  const toAck = r.members.filter((a) => UNACKED.has(a.state));
  const toClose = r.members.filter((a) => a.state === "cleared" && a.class !== "fire");
  const site = r.head.site_name || r.head.site_id || "";
  const title = r.kind === "incident"
    ? [T("ui.incident", { n }), site]
    : [L("class", r.cls), site, T("ui.alarms_n", { n })];
  const headState = r.members.some((a) => a.state === "active") ? "active"
    : r.members.some((a) => a.state === "cleared_unack") ? "cleared_unack" : r.head.state;
  const reasonId = `bulk-reason-${r.key.replace(/[^a-z0-9]/gi, "-")}`;
  const li = h("li", {
    class: `alarm group${open ? " open" : ""}`,
    dataset: { rowKey: r.key, kind: r.kind, class: r.cls, state: headState, headId: r.head.id,
      size: n },
  },
  h("span", { class: `bar cls-${r.cls}` }),
  h("span", { class: "title", onclick: () => toggleRow(r.key) },
    h("span", { class: `badge cls-${r.cls}` }, L("class", r.cls)), title.join(" · ")),
  h("button", { class: "link toggle", dataset: { role: "toggle" }, onclick: () => toggleRow(r.key) },
    open ? T("ui.collapse") : T("ui.expand")),
  h("span", { class: "meta" },
    h("span", { class: "cause" }, `${T(r.kind === "incident" ? "ui.first" : "ui.cause")}: ${alarmTitle(r.head)}`),
    inhibited ? ` · ${T("ui.inhibited_n", { n: inhibited })}` : "",
    ` · ${fmtTime(r.head.raised_at)}`),
  open ? h("div", { class: "group-body" },
    can("alarm:handle") ? h("div", { class: "row bulk" },
      h("input", { id: reasonId, dataset: { role: "bulk-reason" }, maxlength: 1000,
        placeholder: T("ui.reason"), oninput: (ev) => { state.drafts[reasonId] = ev.target.value; } }),
      toAck.length ? h("button", { class: "primary", dataset: { action: "ack-all" },
        onclick: () => bulk("acknowledge", toAck, reasonId) }, T("ui.ack_all", { n: toAck.length })) : null,
      toClose.length ? h("button", { dataset: { action: "close-all" },
        onclick: () => bulk("close", toClose, reasonId) }, T("ui.close_all", { n: toClose.length })) : null)
      : null,
    h("ul", { class: "members" }, r.members.map((a) => alarmLine(a,
      a.id === r.head.id ? " head" : "")))) : null);
  return li;
}

function toggleRow(key) {
  if (state.expanded.has(key)) state.expanded.delete(key); else state.expanded.add(key);
  renderBoard();
}

async function bulk(action, alarms, reasonId) {
  const reason = (state.drafts[reasonId] || "").trim();
  if (action === "close" && !reason) {
    $(reasonId).classList.add("need");
    $(reasonId).placeholder = T("ui.reason_required");
    $(reasonId).focus();
    return;
  }
  try {
    const res = await api(`/alarms/${action}`, { method: "POST",
      body: { ids: alarms.map((a) => a.id), reason } });
    for (const a of res.data) applyAlarm(a, false);
    delete state.drafts[reasonId];
    renderBoard();
    updateFires();
  } catch (err) { alert(err.message); }
}

function rowSig(r) {
  const selected = r.members.some((a) => a.id === state.selected);
  return JSON.stringify([state.expanded.has(r.key), selected,
    r.members.map((a) => [a.id, a.state, a.count, a.assignee, a.inhibited_by, a.mode])]);
}

function renderBoard() {
  const rows = B.groupBoard([...state.alarms.values()]);
  const els = [];
  const keep = new Map();
  for (const r of rows) {
    const sig = rowSig(r);
    const old = state.rowEls.get(r.key);
    const el = old && old.sig === sig ? old.el
      : (r.kind === "single" ? alarmLine(r.head) : groupRow(r));
    keep.set(r.key, { el, sig });
    els.push(el);
  }
  state.rowEls = keep;
  const board = $("board");
  let cursor = board.firstChild;  // move only what moved: a focused reason box keeps focus
  for (const el of els) {
    if (el === cursor) { cursor = cursor.nextSibling; continue; }
    board.insertBefore(el, cursor);
  }
  while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
  for (const el of board.querySelectorAll("input[data-role=bulk-reason]")) {
    if (state.drafts[el.id] && el.value !== state.drafts[el.id]) el.value = state.drafts[el.id];
  }
  $("board-empty").hidden = rows.length > 0;
  $("board-count").textContent = String([...state.alarms.values()]
    .filter((a) => a.state === "active").length);
  if (window.cityAlarmsChanged) window.cityAlarmsChanged();  // the city map's colours
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

// One pop-up per incident (fires of one site at overlapping times) or lone fire, oldest
// first; its Acknowledge acknowledges every active fire of the incident in one call.
function pendingFires() {
  const pops = B.popups(B.groupBoard([...state.alarms.values()]));
  for (const p of pops) if (!state.fireOrder.includes(p.key)) state.fireOrder.push(p.key);
  const byKey = new Map(pops.map((p) => [p.key, p]));
  state.fireOrder = state.fireOrder.filter((k) => byKey.has(k));
  return state.fireOrder.map((k) => byKey.get(k));
}

function updateFires() {
  const fires = pendingFires();
  const p = fires[0];
  if (!p || state.snoozed) {
    $("fire-popup").hidden = true;
    state.popupKey = null;
    stopBeep();
    return;
  }
  const a = p.head;
  const more = fires.length - 1;
  $("fire-more").textContent = more > 0 ? T("ui.more_fires", { n: more }) : "";
  $("fire-what").textContent = p.members.length > 1
    ? `${T("ui.incident", { n: p.members.length })} — ${alarmTitle(a)}` : alarmTitle(a);
  $("fire-where").textContent = [a.site_name || a.site_id, a.location, a.floor_id]
    .filter(Boolean).join(" · ");
  $("fire-popup").dataset.alarmId = a.id;
  $("fire-popup").dataset.key = p.key;
  $("fire-popup").dataset.size = p.members.length;
  state.popupKey = p.key;
  $("fire-ack").hidden = !can("alarm:handle");
  $("fire-popup").hidden = false;
  placePopup();
  if (!state.beepTimer) { beep(); state.beepTimer = setInterval(beep, 1500); }
  updateSoundHint();
}

// With an alarm detail open, the pop-up docks over the board column instead of covering
// the screen: the detail the operator is working on stays readable and usable.
function placePopup() {
  const docked = !$("detail").hidden && !$("view-board").hidden;
  $("fire-popup").classList.toggle("docked", docked);
}

$("fire-ack").addEventListener("click", async () => {
  const p = pendingFires().find((x) => x.key === state.popupKey);
  if (!p) return;
  try {
    const res = await api("/alarms/acknowledge", { method: "POST",
      body: { ids: p.active.map((a) => a.id), reason: "" } });
    for (const a of res.data) applyAlarm(a, false);
    renderBoard();
    updateFires();
  } catch (err) { alert(err.message); }
});
$("fire-open").addEventListener("click", () => {
  // The operator takes it from the board: hide the pop-up (and the sound) until a new fire.
  const p = pendingFires().find((x) => x.key === state.popupKey);
  state.snoozed = true;
  updateFires();
  switchView("board");
  if (!p) return;
  if (p.members.length > 1) state.expanded.add(p.key);
  selectAlarm(p.head.id);
});
$("fire-mute").addEventListener("click", () => { state.muted = true; });

// -- views ----------------------------------------------------------------------------------
function switchView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  $("view-board").hidden = name !== "board";
  $("view-sites").hidden = name !== "sites";
  $("view-city").hidden = name !== "city";
  $("view-hazards").hidden = name !== "hazards";
  $("view-workorders").hidden = name !== "workorders";
  $("view-reports").hidden = name !== "reports";
  if (name === "sites") renderSite().catch(() => {});
  if (name === "city" && window.showCity) window.showCity();
  if (name === "hazards" && window.showHazards) window.showHazards();  // hazards.js
  if (name === "workorders" && window.showWorkOrders) window.showWorkOrders();  // workorders.js
  if (name === "reports" && window.showReports) window.showReports();  // reports.js
}
// (the duty and watch tabs are links to pages of their own: duty.html, watch.html)
for (const b of document.querySelectorAll(".tab[data-view]")) b.addEventListener("click", () => switchView(b.dataset.view));

// -- sites ----------------------------------------------------------------------------------
async function loadSites() {
  state.sites = (await api("/sites")).data;
  $("site-select").replaceChildren(...state.sites.map((s) => h("option", { value: s.id }, s.name)));
}
$("site-select").addEventListener("change", () => renderSite(true));
$("floor-select").addEventListener("change", () => renderSite(false));

// -- boot -----------------------------------------------------------------------------------
(async () => {
  state.lang = B.pickLang(localStorage.getItem("firetower.lang"), navigator.languages);
  try {
    state.labels = await (await fetch("labels.json")).json();
  } catch (err) { console.warn("labels:", err && err.message); }
  applyLang();
  if (state.token) start();
})();
