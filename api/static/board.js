// Firetower console: the pure logic of the board, without the DOM, so it is tested on its
// own (tests/unit/test_console_board.py runs it in Node): labels in English and Chinese,
// evidence in words and units, and the grouping of the board into rows (incidents of fires,
// an offline panel with the alarms it inhibits, floods of one class at one site).
"use strict";

(function (root) {
  const CLASS_ORDER = { fire: 1, supervisory: 2, fault: 3, offline: 4, early_warning: 5 };
  // This many non-fire alarms of one class at one site (children included) are one row.
  const FLOOD_MIN = 3;
  const LANGS = ["en", "zh"];

  // -- labels ---------------------------------------------------------------------------------
  // `labels` is api/static/labels.json: {en: {key: text}, zh: {key: text}}. Unknown keys fall
  // back to English, then to the raw value, so a new rule id still shows something.
  function t(labels, lang, key, vars) {
    const table = labels[lang] || {};
    let text = table[key] !== undefined ? table[key] : (labels.en || {})[key];
    if (text === undefined) return null;
    for (const [k, v] of Object.entries(vars || {})) text = text.split(`{${k}}`).join(String(v));
    return text;
  }

  function label(labels, lang, prefix, value) {
    if (value === null || value === undefined || value === "") return "";
    const text = t(labels, lang, `${prefix}.${value}`);
    return text === null ? String(value) : text;
  }

  // 'engine', 'dispatch', 'operator:<name>' -> words; anything else as it is.
  function actorLabel(labels, lang, actor) {
    if (!actor) return "";
    const i = actor.indexOf(":");
    if (i > 0) {
      const text = t(labels, lang, `actor.${actor.slice(0, i)}`, { name: actor.slice(i + 1) });
      if (text !== null) return text;
    }
    const text = t(labels, lang, `actor.${actor}`);
    return text === null ? actor : text;
  }

  // The language to start in: the one remembered, else the browser's (zh-* -> zh), else en.
  function pickLang(saved, browserLangs) {
    if (LANGS.includes(saved)) return saved;
    for (const l of browserLangs || []) {
      const base = String(l).toLowerCase().split("-")[0];
      if (LANGS.includes(base)) return base;
    }
    return "en";
  }

  // -- evidence in words and units ------------------------------------------------------------
  const UNITS = [["_pct_per_m", "%/m"], ["_c_per_min", "°C/min"], ["_kpa_per_h", "kPa/h"],
    ["_per_h", "/h"], ["_kpa", "kPa"], ["_lps", "L/s"], ["_ppm", "ppm"], ["_c", "°C"],
    ["_s", "s"], ["_v", "V"]];
  // Measured values come first, in this order; the rest as the alarm has them.
  const MEASURED = ["obscuration_pct_per_m", "temperature_c", "rate_c_per_min",
    "temperature_rise_c", "temperature_rate_c_per_min", "co_rise_ppm", "co_ppm", "flow_lps",
    "pressure_kpa", "drop_kpa", "slope_kpa_per_h", "starts", "value", "battery_v", "offset_s"];
  const EVIDENCE_SKIP = new Set(["rule", "superseded_by", "source", "mode_window", "type",
    "seq", "device_id", "device_stamp", "reason", "verifying", "state"]);

  function unitOf(key) {
    for (const [suffix, unit] of UNITS) if (key.endsWith(suffix)) return unit;
    return "";
  }

  function fmtNumber(v) {
    if (typeof v !== "number" || !isFinite(v)) return String(v);
    const a = Math.abs(v);
    return String(a >= 100 ? Math.round(v) : a >= 10 ? Math.round(v * 10) / 10
      : Math.round(v * 100) / 100);
  }

  function valueText(labels, lang, key, v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (key === "confidence") return `${Math.round(v * 100)} %`;
      if (key === "last_seen" || key === "deadline") {
        return v > 1e9 ? new Date(v * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"
          : fmtNumber(v);
      }
      const unit = unitOf(key);
      return unit ? `${fmtNumber(v)} ${unit}` : fmtNumber(v);
    }
    if (typeof v === "boolean") return v ? "✓" : "✗";
    if (key === "category") return label(labels, lang, "class", v === "pre_alarm" ? "early_warning" : v);
    if (Array.isArray(v)) {
      return v.map((x) => (x && typeof x === "object" ? (x.device_id || JSON.stringify(x))
        : String(x))).join(", ");
    }
    if (typeof v === "object") {
      return Object.entries(v).map(([k, x]) =>
        `${t(labels, lang, `ev.${k}`) || k} ${valueText(labels, lang, k, x)}`).join(", ");
    }
    return String(v);
  }

  // [[label, text], ...] for an alarm's evidence: measured values with their units, limits
  // next to the value they bound ("Smoke obscuration 4.2 %/m (alarm level 3 %/m)").
  function evidenceLines(labels, lang, evidence) {
    const ev = evidence || {};
    const out = [];
    const used = new Set();
    const rank = (k) => (MEASURED.includes(k) ? MEASURED.indexOf(k) : MEASURED.length);
    const keys = Object.keys(ev).filter((k) => !EVIDENCE_SKIP.has(k) && ev[k] !== null
      && ev[k] !== "" && ev[k] !== undefined).sort((a, b) => rank(a) - rank(b));
    // A limit is shown with the first measured value of the same unit.
    const isLimit = (k) => /^(alarm|prealarm|fixed|ror|min|cut_in|max|static|limit)(_|$)/.test(k)
      || k === "limit" || k === "max_starts" || k === "limit_s";
    for (const k of keys) {
      if (used.has(k) || isLimit(k)) continue;
      used.add(k);
      let text = valueText(labels, lang, k, ev[k]);
      const limits = keys.filter((l) => !used.has(l) && isLimit(l) && unitOf(l) === unitOf(k));
      if (limits.length && typeof ev[k] === "number") {
        text += ` (${limits.map((l) => { used.add(l); return `${t(labels, lang, `ev.${l}`) || l} ${valueText(labels, lang, l, ev[l])}`; }).join(", ")})`;
      }
      out.push([t(labels, lang, `ev.${k}`) || k, text]);
    }
    for (const k of keys) {
      if (!used.has(k)) out.push([t(labels, lang, `ev.${k}`) || k, valueText(labels, lang, k, ev[k])]);
    }
    return out;
  }

  // -- board grouping -------------------------------------------------------------------------
  const time = (iso) => (iso ? Date.parse(iso) : NaN);
  const newestFirst = (a, b) => (time(b.raised_at) - time(a.raised_at)) || (b.id - a.id);
  const oldestFirst = (a, b) => (time(a.raised_at) - time(b.raised_at)) || (a.id - b.id);

  // The offline alarm that inhibits `a` ('offline:<panel>'), if it is on the board (a
  // panel's detectors are on its site: a row never mixes sites).
  function causeOf(a, offlineByDevice) {
    if (!a.inhibited_by || !a.inhibited_by.startsWith("offline:")) return null;
    const cause = offlineByDevice.get(a.inhibited_by.slice(8));
    return cause && cause.id !== a.id && (cause.site_id || null) === (a.site_id || null)
      ? cause : null;
  }

  // Fires of one site whose times overlap (raised .. cleared, or still on) are one incident:
  // connected runs of intervals sorted by start.
  function incidents(fires) {
    const sorted = [...fires].sort(oldestFirst);
    const out = [];
    let cur = null, end = -Infinity;
    for (const a of sorted) {
      const start = time(a.raised_at);
      const stop = a.cleared_at ? time(a.cleared_at) : Infinity;
      if (cur && start <= end) {
        cur.push(a);
        end = Math.max(end, stop);
      } else {
        cur = [a];
        out.push(cur);
        end = stop;
      }
    }
    return out;
  }

  function makeRow(kind, members, head) {
    const latest = Math.max(...members.map((a) => time(a.raised_at)));
    return { key: `${kind}:${head.id}`, kind, cls: head.class, site_id: head.site_id || null,
      head, members, latest, priority: CLASS_ORDER[head.class] || 9 };
  }

  // The board's rows, in board order (class priority, then newest first). Every alarm is in
  // exactly one row; a row's first member is its head (the cause, or the first fire).
  //   single:   one alarm
  //   incident: fires of one site with overlapping times (one pop-up)
  //   cause:    an offline panel, then the alarms its being offline inhibits
  //   flood:    FLOOD_MIN or more alarms of one non-fire class at one site: causes first,
  //             each followed by what it inhibits, then the rest, newest first
  function groupBoard(alarms, opts) {
    const floodMin = (opts && opts.floodMin) || FLOOD_MIN;
    const offlineByDevice = new Map();
    for (const a of alarms) {
      if (a.class !== "offline") continue;
      const prev = offlineByDevice.get(a.device_id);
      if (!prev || newestFirst(a, prev) < 0) offlineByDevice.set(a.device_id, a);
    }
    const children = new Map();  // cause id -> inhibited alarms
    const isChild = new Set();
    for (const a of alarms) {
      const cause = causeOf(a, offlineByDevice);
      if (cause && !causeOf(cause, offlineByDevice)) {  // one level: a cause is never a child
        if (!children.has(cause.id)) children.set(cause.id, []);
        children.get(cause.id).push(a);
        isChild.add(a.id);
      }
    }
    const unitOfCause = (c) => [c, ...(children.get(c.id) || []).sort(newestFirst)];
    const rows = [];
    const buckets = new Map();  // "fire|site|mode" or "class|site" -> top-level alarms
    for (const a of alarms) {
      if (isChild.has(a.id)) continue;
      const k = a.class === "fire" ? `fire|${a.site_id || ""}|${a.mode === "normal" ? "n" : "m"}`
        : `${a.class}|${a.site_id || ""}`;
      if (!buckets.has(k)) buckets.set(k, []);
      buckets.get(k).push(a);
    }
    for (const [k, tops] of buckets) {
      if (k.startsWith("fire|")) {
        for (const run of incidents(tops)) {
          rows.push(makeRow(run.length > 1 ? "incident" : "single", run, run[0]));
        }
        continue;
      }
      const total = tops.reduce((n, a) => n + 1 + (children.get(a.id) || []).length, 0);
      const byCause = (a, b) => ((children.get(b.id) || []).length
        - (children.get(a.id) || []).length) || newestFirst(a, b);
      if (tops.length > 1 && total >= floodMin) {
        const members = [...tops].sort(byCause).flatMap(unitOfCause);
        rows.push(makeRow("flood", members, members[0]));
      } else {
        for (const a of tops) {
          rows.push(children.has(a.id) ? makeRow("cause", unitOfCause(a), a)
            : makeRow("single", [a], a));
        }
      }
    }
    rows.sort((x, y) => (x.priority - y.priority) || (y.latest - x.latest)
      || (y.head.id - x.head.id));
    return rows;
  }

  // The fires that pop up: one per incident (or lone fire) in normal mode with at least one
  // active, unacknowledged alarm. -> [{key, head, members, active: [alarms]}]
  function popups(rows) {
    const out = [];
    for (const r of rows) {
      if (r.cls !== "fire") continue;
      const active = r.members.filter((a) => a.state === "active" && a.mode === "normal");
      if (active.length) out.push({ key: r.key, head: r.head, members: r.members, active });
    }
    return out;
  }

  const api = { CLASS_ORDER, FLOOD_MIN, LANGS, t, label, actorLabel, pickLang, unitOf,
    evidenceLines, groupBoard, popups, incidents };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FiretowerBoard = api;
})(this);
