// Firetower: the monthly briefing as a web page (briefing.html, docs/assessment.md
// "Briefings"): the list of stored briefings with a form to generate one now, and one briefing
// (?id=N) drawn from its JSON: sections, key figures, tables, the charts as SVG fetched from
// the API (with the token, shown as blob: images) and the PDF. Text only into the DOM.
"use strict";

(function () {
  if (document.body.dataset.page !== "briefing") return;
  const { h, $, T, api, fmtTime, boot } = window.FiretowerPage;
  const WORDS = {
    en: { briefings: "Briefings", jurisdiction_id: "Jurisdiction id", month: "Month", timezone: "Time zone",
      generate: "Generate", generating: "Generating…", jurisdiction: "Jurisdiction", version: "Version",
      generated: "Generated", by: "By", pdf: "PDF", open: "Open", back: "All briefings", none_yet: "No briefing yet.",
      indicator: "Indicator", this_month: "This month", last_month: "Last month", change: "Change",
      target: "Year's target (to date)", assessment: "Assessment" },
    zh: { briefings: "简报", jurisdiction_id: "辖区编号", month: "月份", timezone: "时区", generate: "生成",
      generating: "正在生成…", jurisdiction: "辖区", version: "版本", generated: "生成时间", by: "生成方式",
      pdf: "PDF", open: "查看", back: "全部简报", none_yet: "暂无简报。", indicator: "指标", this_month: "本月",
      last_month: "上月", change: "较上月", target: "年度目标（年累计）", assessment: "考核" },
  };
  const say = (text) => { $("msg").textContent = text || ""; };
  const fill = (el, ...children) => { el.replaceChildren(...children.flat()); return el; };

  async function blobUrl(path) {
    const token = sessionStorage.getItem("firetower.token");
    const r = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return URL.createObjectURL(await r.blob());
  }

  function grid(columns, rows) {
    return h("table", { class: "table" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
  }

  async function showList() {
    $("briefing").hidden = true;
    $("briefing-list").hidden = false;
    const list = await api("/assessment/briefings");
    if (!list.data.length) { fill($("briefings"), h("caption", {}, T("none_yet"))); return; }
    fill($("briefings"),
      h("thead", {}, h("tr", {}, [T("jurisdiction"), T("month"), T("version"), T("generated"), T("by"), ""]
        .map((c) => h("th", {}, c)))),
      h("tbody", {}, list.data.map((b) => h("tr", {},
        h("td", {}, b.jurisdiction_name), h("td", {}, b.month), h("td", {}, String(b.version)),
        h("td", {}, fmtTime(b.generated_at)), h("td", {}, b.generated_by),
        h("td", {}, h("a", { href: `briefing.html?id=${b.id}` }, T("open")))))));
  }

  async function showBriefing(id) {
    $("briefing-list").hidden = true;
    const b = await api(`/assessment/briefings/${id}`);
    const c = b.content;
    const pdf = h("button", { class: "link", id: "pdf-link", onclick: async () => {
      window.open(await blobUrl(b.pdf), "_blank", "noopener");
    } }, T("pdf"));
    const parts = [h("p", {}, h("a", { href: "briefing.html" }, T("back")), " · ", pdf),
      h("h1", {}, c.title),
      h("p", { class: "muted" }, `${b.month} (${b.timezone}) · v${b.version} · ${fmtTime(b.generated_at)} · ${b.generated_by}`)];
    for (const s of c.sections) {
      const sec = h("section", { class: "briefing-section", id: `section-${s.key}` }, h("h2", {}, s.title),
        s.paragraphs.map((p) => h("p", {}, p)));
      if (s.figures.length) {
        sec.append(grid([T("indicator"), T("this_month"), T("last_month"), T("change"), T("target")],
          s.figures.map((f) => [f.name, f.value_text, f.previous_text, f.change_text, f.target_text])));
      }
      for (const t of s.tables) sec.append(grid(t.columns, t.rows));
      for (const name of s.charts) {
        const img = h("img", { class: "briefing-chart", alt: name, width: "700" });
        sec.append(h("figure", {}, img));
        blobUrl(`/api/v1/assessment/briefings/${b.id}/charts/${name}.svg`)
          .then((url) => { img.src = url; }).catch(() => { img.alt = `${name}: —`; });
      }
      parts.push(sec);
    }
    fill($("briefing"), parts);
    $("briefing").hidden = false;
  }

  let wired = false;
  function wire() {
    if (wired) return;
    wired = true;
    const now = new Date();
    const last = new Date(now.getFullYear(), now.getMonth() - 1, 1);
    $("g-month").value = `${last.getFullYear()}-${String(last.getMonth() + 1).padStart(2, "0")}`;
    const asked = new URLSearchParams(window.location.search).get("jurisdiction");  // from the dashboard
    if (asked && /^[0-9]+$/.test(asked)) $("g-jurisdiction").value = asked;
    $("generate").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      say(T("generating"));
      $("g-submit").disabled = true;
      try {
        const b = await api("/assessment/briefings", { method: "POST", body: {
          jurisdiction_id: Number($("g-jurisdiction").value), month: $("g-month").value,
          timezone: $("g-tz").value || "UTC" } });
        window.location.search = `?id=${b.id}`;
      } catch (e) { say(e.message); } finally { $("g-submit").disabled = false; }
    });
  }

  boot(WORDS, async () => {
    wire();
    const id = new URLSearchParams(window.location.search).get("id");
    try {
      if (id && /^[0-9]+$/.test(id)) await showBriefing(id); else await showList();
    } catch (e) { say(e.message); $("briefing-list").hidden = false; }
  });
})();
