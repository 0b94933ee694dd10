// Firetower: what the pages of the hazard loop share (phone.js, and hazards.js and
// workorders.js in the console): the steps of a hazard and of a work order as the API takes
// them, and small formatting. No DOM of its own; plain script, loaded before its users.
"use strict";

(function (root) {
  // Per kind of record: its route and its label prefix. What steps the caller may take, and
  // what each needs, the API says on every record (`my_steps`: trigger, needs_note, photo).
  const KINDS = {
    hazard: { path: "hazards", prefix: "hz" },
    order: { path: "work-orders", prefix: "wo" },
  };
  // The states in which a hazard's deadline runs (hazards/model.py OWING).
  const OWING = new Set(["found", "notified", "rectifying"]);

  // The steps the caller may take on `record`, as the API lists them.
  const mySteps = (record) => (record.my_steps || []).map((x) => x.trigger);

  // What step `t` of `record` needs: a note (true/false), a photo ("required", "optional" or
  // false).
  function needs(record, t) {
    const x = (record.my_steps || []).find((s) => s.trigger === t);
    return { note: Boolean(x && x.needs_note), photo: x && x.photo !== "none" ? x.photo : false };
  }

  // "due in 3 d" / "2 h overdue", in the largest whole unit; `T` is the page's label lookup.
  function relative(T, iso, now) {
    if (!iso) return "";
    const ms = new Date(iso).getTime() - (now === undefined ? Date.now() : now);
    const a = Math.abs(ms) / 1000;
    const n = a >= 86400 ? `${Math.floor(a / 86400)} d` : a >= 3600 ? `${Math.floor(a / 3600)} h`
      : `${Math.max(1, Math.floor(a / 60))} min`;
    return ms >= 0 ? T("ph.due_in", { n }) : T("ph.late_by", { n });
  }

  // A hazard's deadline as words while the fix is owed, else "".
  const due = (T, x) => (x.deadline && OWING.has(x.state) ? relative(T, x.deadline) : "");

  // An order is late while open past its response (not yet responded) or repair deadline.
  const orderLate = (o) => o.state !== "closed"
    && (o.repair_late || (o.response_late && !o.responded_at));

  // "user:alice" -> "alice"; rule and other actors as they are.
  const actor = (a) => String(a || "").replace(/^user:/, "");

  const api = { KINDS, OWING, mySteps, needs, relative, due, orderLate, actor };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FiretowerLoop = api;
})(this);

// -- the DOM part (only in the browser) ------------------------------------------------------
if (typeof window !== "undefined") {
  // replaceChildren that takes what the pages' h() takes: nested lists; null and false are
  // nothing (the DOM's own would write "null").
  window.FiretowerLoop.fill = (el, ...kids) => el.replaceChildren(
    ...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));

  // Refresh a console view every `ms` while it is shown and someone is signed in.
  window.FiretowerLoop.every = (timer, viewId, ms, fn) => {
    clearInterval(timer);
    return setInterval(() => {
      const view = document.getElementById(viewId);
      if (view && !view.hidden && sessionStorage.getItem("firetower.token")) fn().catch(() => {});
    }, ms);
  };
}
