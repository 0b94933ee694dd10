// The page behind a notification's signed link (docs/notifications.md, "Acknowledging from
// any channel"). The token is in the fragment (#ack/<token> or #read/<token>), which browsers
// never send to a server: it stays out of logs. Opening the page changes nothing (mail
// scanners and chat previews open links); the button does it, once.
"use strict";
(function () {
  const TITLES = {
    ack: "确认报警 Acknowledge the alarm",
    read: "工作提示已阅 Confirm reading the work prompt",
  };
  const $ = (id) => document.getElementById(id);
  const msg = (text, ok) => {
    const el = $("msg");
    el.textContent = text;
    el.hidden = false;
    el.dataset.state = ok ? "ok" : "error";
  };
  const m = /^#(ack|read)\/([0-9]{1,18}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) {
    $("title").textContent = "链接无效 Invalid link";
    $("describe").textContent = "This link is incomplete. Open it from the message again.";
    return;
  }
  const [, purpose, token] = m;
  const url = `/api/v1/public/links/${purpose}/${token}`;
  $("title").textContent = TITLES[purpose];
  const answer = async (res) => {
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    return { ok: res.ok, status: res.status, text: body.message || body.detail || res.statusText };
  };
  fetch(url, { headers: { Accept: "application/json" } })
    .then(answer)
    .then((r) => {
      if (!r.ok) {
        $("describe").textContent = r.status === 410 ? "链接已过期 This link has expired." : r.text;
        return;
      }
      $("describe").textContent = r.text;
      if (!/used already/.test(r.text)) $("act").hidden = false;
    })
    .catch(() => { $("describe").textContent = "网络错误 Network error: try again."; });
  $("act").addEventListener("click", () => {
    $("act").disabled = true;
    fetch(url, { method: "POST", headers: { Accept: "application/json" } })
      .then(answer)
      .then((r) => {
        msg(r.text, r.ok);
        if (r.ok) $("act").hidden = true;
        else $("act").disabled = r.status === 409 || r.status === 410;
      })
      .catch(() => { msg("网络错误 Network error: try again.", false); $("act").disabled = false; });
  });
})();
