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

const state = {
  token: sessionStorage.getItem("firetower.token"),
  me: null,
  alarms: new Map(),       // id -> alarm (unfinished only)
  selected: null,          // alarm id shown in the detail panel
  lastEventId: null,       // resume token of the live stream
  stream: null,            // AbortController of the running stream
  fireQueue: [],           // fire alarm ids waiting for the pop-up
  muted: false,
  snoozed: false,          // pop-up hidden by "Open" until the next new fire
  audio: null,
  beepTimer: null,
  sites: [], devices: [],
};
// Exposed for tests and latency measurement: when each alarm first became visible (ms epoch).
window.firetower = { seenAt: {}, events: 0 };

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

// -- API ------------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(API + path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { logout("Session expired: sign in again."); throw new ApiError("401"); }
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
  state.token = (await r.json()).access_token;
  sessionStorage.setItem("firetower.token", state.token);
  await start();
});

$("logout").addEventListener("click", () => logout());

function logout(message) {
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.token = null;
  sessionStorage.removeItem("firetower.token");
  state.alarms.clear();
  $("app").hidden = true;
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
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  while (!ctl.signal.aborted && state.token) {
    try {
      const headers = { Authorization: `Bearer ${state.token}` };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const r = await fetch(`${API}/alarms/stream`, { headers, signal: ctl.signal });
      if (r.status === 401) { logout("Session expired: sign in again."); return; }
      if (!r.ok) throw new Error(`stream ${r.status}`);
      setLive(true);
      await readSse(r.body, handleSse);
    } catch (err) {
      if (ctl.signal.aborted) return;
      console.warn("alarm stream lost:", err && err.message);
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, RECONNECT_MS));
  }
}

async function readSse(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { id: null, event: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
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
      if (a.class === "fire" && e.kind === "raise" && a.mode === "normal") newFire(a);
      if (a.class === "fire" && a.state !== "active") dismissFire(a.id);
      if (state.selected === a.id) showDetail(a.id);
    }
  }
}

function markSeen(alarmId) {
  if (!(alarmId in window.firetower.seenAt)) window.firetower.seenAt[alarmId] = Date.now();
}

function setLive(on) {
  $("live").textContent = on ? "live" : "reconnecting";
  $("live").classList.toggle("on", on);
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
  panel.hidden = false;
}

// -- fire pop-up and sound ------------------------------------------------------------------
function unlockAudio() {
  try {
    state.audio = state.audio || new (window.AudioContext || window.webkitAudioContext)();
    if (state.audio.state === "suspended") state.audio.resume();
  } catch (_) { state.audio = null; }
}

function beep() {
  const ctx = state.audio;
  if (!ctx || state.muted) return;
  window.firetower.beeps = (window.firetower.beeps || 0) + 1;
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

function newFire(a) {
  if (!state.fireQueue.includes(a.id)) state.fireQueue.push(a.id);
  state.snoozed = false;  // every new fire forces the pop-up back
  showFire();
}

function dismissFire(id) {
  state.fireQueue = state.fireQueue.filter((x) => x !== id);
  showFire();
}

function showFire() {
  const id = state.fireQueue[0];
  const a = id && state.alarms.get(id);
  if (id && !a) { state.fireQueue.shift(); showFire(); return; }
  if (!a || state.snoozed) {
    $("fire-popup").hidden = true;
    stopBeep();
    return;
  }
  const more = state.fireQueue.length - 1;
  $("fire-more").textContent = more > 0 ? `${more} more fire${more > 1 ? "s" : ""} waiting` : "";
  $("fire-what").textContent = `${a.device_id} — ${a.type}`;
  $("fire-where").textContent = [a.site_name || a.site_id, a.location, a.floor_id]
    .filter(Boolean).join(" · ");
  $("fire-popup").dataset.alarmId = a.id;
  $("fire-ack").hidden = !can("alarm:handle");
  $("fire-popup").hidden = false;
  if (!state.beepTimer) { beep(); state.beepTimer = setInterval(beep, 1500); }
}

$("fire-ack").addEventListener("click", async () => {
  const id = Number($("fire-popup").dataset.alarmId);
  try { await api(`/alarms/${id}/acknowledge`, { method: "POST", body: {} }); }
  catch (err) { alert(err.message); }
  dismissFire(id);
});
$("fire-open").addEventListener("click", () => {
  // The operator takes it from the board: hide the pop-up (and the sound) until a new fire.
  const id = Number($("fire-popup").dataset.alarmId);
  state.snoozed = true;
  dismissFire(id);
  switchView("board");
  state.selected = id;
  renderBoard();
  showDetail(id);
});
$("fire-mute").addEventListener("click", () => { state.muted = true; stopBeep(); });

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
