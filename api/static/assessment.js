// Firetower: the supervisors' assessment dashboard (assessment.html, docs/assessment.md): pick a
// node (a jurisdiction the caller sees, a unit, an industry or a maintenance company) and a
// period; the node's key figures, and charts (Chart.js, served from node_modules like Leaflet)
// of the fires and false alarms of the last 12 months (one /assessment/report a month), the
// ranking of its children on an indicator (best first, as the API ranks them), GB 50440 /
// NFPA 72 compliance, hazards, the online and integrity rates and the year's targets; the CSV
// and XLSX exports with the same parameters, fetched with the token. Text only into the DOM.
// window.firetowerAssessment.summary() tells what is drawn (the browser test reads it).
"use strict";

(function () {
  if (document.body.dataset.page !== "assessment") return;
  const { h, $, T, api, can, boot, me, fill } = window.FiretowerPage;
  const WORDS = {
    en: { assessment: "Assessment", briefings: "Briefings", node_kind: "Node", kind_jurisdiction: "Jurisdiction",
      kind_unit: "Unit", kind_industry: "Industry", kind_company: "Maintenance company", period: "Period",
      this_month: "This month", this_quarter: "This quarter", this_year: "This year", custom: "Custom",
      show: "Show", exports: "Exports", csv: "CSV", xlsx: "XLSX", briefings_link: "Monthly briefings",
      trend: "Fires and false alarms, last 12 months", ranking: "Ranking", compliance: "GB 50440 / NFPA 72 compliance",
      hazards: "Hazards", rates: "Online and integrity rates", progress: "Targets and progress",
      loading: "Loading…", no_nodes: "Nothing of this kind that you can see.", no_children: "No lower level to rank.",
      lower_better: "lower is better: best first", higher_better: "higher is better: best first",
      no_targets: "No target set for this year.", only_jurisdictions: "Targets are set per jurisdiction.",
      actual: "Actual", target: "Target", met: "Met", of_target: "% of the target", yes: "yes", no: "no",
      no_charts: "The chart library is not installed (make setup): figures only.", bad_period: "Pick both dates.",
      fires: "Fires", false_alarms: "False alarms", unranked: "no figure" },
    zh: { assessment: "考核", briefings: "简报", node_kind: "对象", kind_jurisdiction: "辖区", kind_unit: "单位",
      kind_industry: "行业", kind_company: "维保单位", period: "时段", this_month: "本月", this_quarter: "本季度",
      this_year: "本年", custom: "自定义", show: "查看", exports: "导出", csv: "CSV", xlsx: "XLSX",
      briefings_link: "月度简报", trend: "近12个月火警与误报", ranking: "通报排名", compliance: "GB 50440 / NFPA 72 达标率",
      hazards: "隐患", rates: "设备在线率与完好率", progress: "年度目标完成情况", loading: "加载中…",
      no_nodes: "没有可查看的对象。", no_children: "没有可排名的下级。", lower_better: "越低越好：由好到差",
      higher_better: "越高越好：由好到差", no_targets: "本年度未下达目标。", only_jurisdictions: "目标按辖区下达。",
      actual: "实际", target: "目标", met: "达标", of_target: "占目标%", yes: "是", no: "否",
      no_charts: "图表库未安装（make setup），仅显示数据。", bad_period: "请选择起止日期。", fires: "真实火警",
      false_alarms: "误报", unranked: "无数据" },
  };
  const FIGURES = ["fires", "false_alarms", "false_alarm_share", "false_alarms_per_100_detectors_year",
    "gb50440_units", "ack_p50_fire", "verdict_p50_fire", "online_rate", "integrity_rate", "hazards_found",
    "hazards_closed", "hazards_overdue", "hazard_closure_rate", "workorder_sla_rate", "patrol_coverage",
    "public_reports_handled_rate"];
  const COMPLIANCE = ["compliance_gb50440_display", "compliance_gb50440_forward", "compliance_nfpa72_display",
    "compliance_nfpa72_retransmit"];
  const HAZARDS = ["hazards_found", "hazards_closed", "hazards_overdue"];
  const RATES = ["online_rate", "integrity_rate", "hazard_closure_rate"];
  const COLORS = { fire: "#e5322d", warn: "#f08c00", ok: "#2fb26a", blue: "#3a8ee6", grey: "#7b8794" };
  const page = { inds: new Map(), nodes: {}, data: null, ranking: null, progress: null, charts: {},
    wired: false, seq: 0, rseq: 0, params: null };
  const say = (text) => { $("msg").textContent = text || ""; };
  const zh = () => document.documentElement.lang.startsWith("zh");
  const name = (key) => { const d = page.inds.get(key); return d ? (zh() ? d.name_zh : d.name_en) : key; };
  const unit = (key) => (page.inds.get(key) || {}).unit || "count";
  const tz = () => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (_) { return "UTC"; } };

  function fmt(key, v) {
    if (v === null || v === undefined) return "—";
    const u = unit(key);
    if (u === "ratio") return `${(v * 100).toFixed(1)}%`;
    if (u === "seconds") return `${v.toFixed(v < 10 ? 1 : 0)} s`;
    if (u === "per_100_detectors_per_year") return v.toFixed(2);
    return String(Math.round(v * 100) / 100);
  }
  // a ratio is drawn as a percentage
  const plot = (key, v) => (v === null || v === undefined ? null : unit(key) === "ratio" ? v * 100 : v);

  // -- the period ------------------------------------------------------------------------------
  function period() {
    const now = new Date();
    const y = now.getFullYear(), m = now.getMonth();
    const kind = $("period").value;
    if (kind === "custom") {
      if (!$("from").value || !$("to").value) return null;
      const [fy, fm, fd] = $("from").value.split("-").map(Number);
      const [ty, tm, td] = $("to").value.split("-").map(Number);
      return [new Date(fy, fm - 1, fd), new Date(ty, tm - 1, td + 1)];
    }
    if (kind === "year") return [new Date(y, 0, 1), new Date(y + 1, 0, 1)];
    if (kind === "quarter") { const q = Math.floor(m / 3) * 3; return [new Date(y, q, 1), new Date(y, q + 3, 1)]; }
    return [new Date(y, m, 1), new Date(y, m + 1, 1)];
  }
  const months = () => {  // the last 12 calendar months, this one last
    const now = new Date();
    return Array.from({ length: 12 }, (_, i) => {
      const s = new Date(now.getFullYear(), now.getMonth() - 11 + i, 1);
      return { label: `${s.getFullYear()}-${String(s.getMonth() + 1).padStart(2, "0")}`, start: s,
        end: new Date(s.getFullYear(), s.getMonth() + 1, 1) };
    });
  };
  const query = (extra) => new URLSearchParams({ ...page.params, ...extra }).toString();

  // -- the nodes ---------------------------------------------------------------------------------
  async function loadNodes(kind) {
    if (!page.nodes[kind]) {
      let list = [];
      if (kind === "jurisdiction") {
        const all = (await api("/jurisdictions")).data;
        const u = me();
        // a user attached to a node: its own subtree (the way to its sites is listed too)
        const own = u.scope_kind === "jurisdiction" ? all.filter((j) => j.path.some((p) => p.id === u.scope_id)) : all;
        list = own.map((j) => ({ key: `jurisdiction:${j.id}`, id: j.id,
          label: `${"· ".repeat(Math.max(0, j.path.length - 1))}${j.name}` }));
      } else if (kind === "unit" || kind === "industry") {
        const units = (await api("/units")).data;
        list = kind === "unit" ? units.map((x) => ({ key: `unit:${x.id}`, label: x.name }))
          : [...new Set(units.map((x) => x.industry).filter(Boolean))].sort()
            .map((x) => ({ key: `industry:${x}`, label: x }));
      } else {
        list = (await api("/companies")).data.map((x) => ({ key: `company:${x.id}`, label: x.name }));
      }
      page.nodes[kind] = list;
    }
    const keep = $("node").value;
    fill($("node"), page.nodes[kind].map((n) => h("option", { value: n.key }, n.label)));
    if (page.nodes[kind].some((n) => n.key === keep)) $("node").value = keep;
    return page.nodes[kind].length;
  }

  // -- loading -----------------------------------------------------------------------------------
  async function load() {
    const node = $("node").value;
    const p = period();
    if (!node) { say(T("no_nodes")); return; }
    if (!p) { say(T("bad_period")); return; }
    const seq = ++page.seq;
    $("dash").dataset.state = "loading";
    say("");
    $("period-text").textContent = T("loading");
    page.params = { node, start: p[0].toISOString(), end: p[1].toISOString(), tz: tz() };
    const jid = node.startsWith("jurisdiction:") ? Number(node.split(":")[1]) : null;
    try {
      const [report, trend, progress] = await Promise.all([
        api(`/assessment/report?${query()}`),
        Promise.all(months().map(async (m) => ({ label: m.label, report: await api(`/assessment/report?${query({
          start: m.start.toISOString(), end: m.end.toISOString() })}`) }))),
        jid ? api(`/assessment/progress?${new URLSearchParams({ jurisdiction_id: jid, year: p[0].getFullYear(), tz: tz() })}`)
          : Promise.resolve(null)]);
      if (seq !== page.seq) return;
      page.data = { report, trend, jid };
      page.progress = progress;
      await loadRanking(seq);
      if (seq !== page.seq) return;
      draw();
    } catch (e) {
      if (seq === page.seq) { say(e.message); $("period-text").textContent = ""; $("dash").dataset.state = "error"; }
    }
  }

  async function loadRanking(seq) {
    const rseq = ++page.rseq;
    const r = await api(`/assessment/ranking?${query({ indicator: $("indicator").value })}`);
    if (seq === page.seq && rseq === page.rseq) page.ranking = r;
  }

  // -- drawing -----------------------------------------------------------------------------------
  function chart(id, config) {
    if (page.charts[id]) { page.charts[id].destroy(); delete page.charts[id]; }
    const canvas = $(id);
    canvas.setAttribute("aria-label", config.data.datasets.map((d) => d.label).join(", "));
    if (!window.Chart) return;
    const style = getComputedStyle(document.documentElement);
    window.Chart.defaults.color = style.getPropertyValue("--text").trim() || "#e8ecf1";
    window.Chart.defaults.borderColor = style.getPropertyValue("--line").trim() || "#2c333d";
    config.options = { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: config.data.datasets.length > 1 } }, ...config.options };
    page.charts[id] = new window.Chart(canvas, config);
  }

  const bars = (keys, values, color) => ({
    type: "bar",
    data: { labels: keys.map(name), datasets: [{ label: keys.map(name).join(" / "),
      data: keys.map((k) => plot(k, values[k])), backgroundColor: color }] },
  });
  const percent = { scales: { y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } } } };

  function drawFigures(values) {
    fill($("figures"), FIGURES.map((k) => h("div", { class: "as-figure" },
      h("dt", {}, name(k)), h("dd", { dataset: { key: k, value: values[k] === null ? "" : String(values[k]) } },
        fmt(k, values[k])))));
  }

  function drawRanking() {
    const r = page.ranking;
    if (!r) return;
    const key = r.indicator;
    $("ranking-note").textContent = r.rows.length
      ? `${name(key)} · ${T(r.direction === "lower_better" ? "lower_better" : "higher_better")}` : T("no_children");
    fill($("ranking-list"), r.rows.map((row) => h("li", { dataset: { key: row.node.key, rank: row.rank ?? "" } },
      `${row.rank ?? "–"}. ${row.node.name}: ${row.value === null ? T("unranked") : fmt(key, row.value)}`)));
    chart("chart-ranking", {
      type: "bar",
      data: { labels: r.rows.map((row) => `${row.rank ?? "–"}. ${row.node.name}`),
        datasets: [{ label: name(key), data: r.rows.map((row) => plot(key, row.value)),
          backgroundColor: r.rows.map((_, i) => (i === 0 ? COLORS.ok : COLORS.blue)) }] },
      options: { indexAxis: "y", scales: unit(key) === "ratio" ? { x: { min: 0, max: 100 } } : {} },
    });
    $("chart-ranking").dataset.indicator = key;
  }

  function drawProgress() {
    const p = page.progress;
    if (!p) {
      $("progress-note").textContent = T("only_jurisdictions");
      fill($("progress-table"));
      chart("chart-progress", { type: "bar", data: { labels: [], datasets: [] } });
      return;
    }
    $("progress-note").textContent = p.items.length
      ? `${p.year} · ${Math.round(p.elapsed * 100)}% · ${T("of_target")}` : T("no_targets");
    // each indicator as a share of its target (100 = the target); lower-better ones met below it
    const share = (i) => (i.actual === null ? null : i.target === 0 ? (i.actual === 0 ? 100 : 200)
      : Math.min(200, (i.actual / i.target) * 100));
    chart("chart-progress", {
      type: "bar",
      data: { labels: p.items.map((i) => name(i.indicator)), datasets: [
        { label: T("of_target"), data: p.items.map(share),
          backgroundColor: p.items.map((i) => (i.met === null ? COLORS.grey : i.met ? COLORS.ok : COLORS.fire)) },
        { label: T("target"), data: p.items.map(() => 100), type: "line", borderColor: COLORS.warn,
          pointRadius: 0, borderDash: [4, 3] }] },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 200 } } },
    });
    fill($("progress-table"), h("thead", {}, h("tr", {}, ["", T("actual"), T("target"), T("met")].map((c) => h("th", {}, c)))),
      h("tbody", {}, p.items.map((i) => h("tr", { dataset: { indicator: i.indicator } },
        h("td", {}, name(i.indicator)), h("td", {}, fmt(i.indicator, i.actual)), h("td", {}, fmt(i.indicator, i.target)),
        h("td", { class: i.met === null ? "" : i.met ? "ok" : "bad" }, i.met === null ? "—" : T(i.met ? "yes" : "no"))))));
  }

  function draw() {
    const d = page.data;
    if (!d) return;
    const v = d.report.node.values;
    $("period-text").textContent = `${d.report.node.node.name} · ${new Date(d.report.start).toLocaleDateString()} – `
      + `${new Date(new Date(d.report.end).getTime() - 1).toLocaleDateString()} (${d.report.timezone})`;
    say(window.Chart ? "" : T("no_charts"));
    drawFigures(v);
    chart("chart-trend", {
      type: "line",
      data: { labels: d.trend.map((m) => m.label), datasets: [
        { label: T("fires"), data: d.trend.map((m) => m.report.node.values.fires ?? 0), borderColor: COLORS.fire,
          backgroundColor: COLORS.fire },
        { label: T("false_alarms"), data: d.trend.map((m) => m.report.node.values.false_alarms ?? 0),
          borderColor: COLORS.warn, backgroundColor: COLORS.warn }] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    chart("chart-compliance", { ...bars(COMPLIANCE, v, COLORS.ok), options: percent });
    chart("chart-hazards", { ...bars(HAZARDS, v, [COLORS.blue, COLORS.ok, COLORS.fire]),
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    chart("chart-rates", { ...bars(RATES, v, COLORS.ok), options: percent });
    drawRanking();
    drawProgress();
    $("briefings-link").href = d.jid ? `briefing.html?jurisdiction=${d.jid}` : "briefing.html";
    for (const ext of ["csv", "xlsx"]) $(`export-${ext}`).dataset.href = `/api/v1/assessment/export.${ext}?${query()}`;
    $("dash").dataset.lang = document.documentElement.lang;
    $("dash").dataset.state = "ready";
  }

  // -- the exports: fetched with the token, saved from a blob: URL -------------------------------
  async function download(ext) {
    if (!page.params) return;
    const token = sessionStorage.getItem("firetower.token");
    const r = await fetch(`/api/v1/assessment/export.${ext}?${query()}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", { href: url, download: `assessment-${page.params.node.replace(":", "-")}.${ext}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // what is drawn: each chart's labels and data, and whether its canvas has any pixel painted
  function painted(canvas) {
    if (!canvas.width || !canvas.height) return false;
    // read back from a copy, so that the chart's own canvas stays a fast, drawn-only one
    const copy = h("canvas", { width: canvas.width, height: canvas.height });
    const ctx = copy.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(canvas, 0, 0);
    const px = ctx.getImageData(0, 0, copy.width, copy.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i]) return true;
    return false;
  }
  window.firetowerAssessment = {
    summary() {
      const charts = {};
      for (const [id, c] of Object.entries(page.charts)) {
        charts[id.replace("chart-", "")] = { labels: c.data.labels, drawn: painted(c.canvas),
          datasets: c.data.datasets.map((s) => ({ label: s.label, data: s.data })) };
      }
      return { state: $("dash").dataset.state, params: page.params, charts,
        figures: page.data ? page.data.report.node.values : null,
        ranking: page.ranking ? page.ranking.rows.map((r) => ({ key: r.node.key, name: r.node.name, rank: r.rank,
          value: r.value })) : null };
    },
  };

  async function wire() {
    if (page.wired) return;
    page.wired = true;
    page.inds = new Map((await api("/assessment/indicators")).map((d) => [d.key, d]));
    fill($("indicator"), [...page.inds.keys()].map((k) => h("option", { value: k }, name(k))));
    $("indicator").value = "false_alarms";
    const asked = new URLSearchParams(window.location.search);
    const kind = (asked.get("node") || "").split(":")[0];
    if (["jurisdiction", "unit", "industry", "company"].includes(kind)) $("node-kind").value = kind;
    if (["month", "quarter", "year", "custom"].includes(asked.get("period"))) $("period").value = asked.get("period");
    $("custom").hidden = $("period").value !== "custom";
    await loadNodes($("node-kind").value);
    if (asked.get("node")) $("node").value = asked.get("node");
    $("node-kind").addEventListener("change", () => loadNodes($("node-kind").value)
      .then((n) => (n ? load() : say(T("no_nodes")))).catch((e) => say(e.message)));
    $("period").addEventListener("change", () => {
      $("custom").hidden = $("period").value !== "custom";
      if ($("period").value !== "custom") load();
    });
    $("pick").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    $("indicator").addEventListener("change", async () => {
      try { await loadRanking(page.seq); drawRanking(); } catch (e) { say(e.message); }
    });
    for (const ext of ["csv", "xlsx"]) {
      $(`export-${ext}`).addEventListener("click", (ev) => { ev.preventDefault(); download(ext).catch((e) => say(e.message)); });
    }
  }

  boot(WORDS, async () => {
    if (!can("stats:read")) { say("stats:read"); return; }
    try {
      if (page.data) {  // the language changed: the same figures, relabelled
        for (const o of $("indicator").options) o.textContent = name(o.value);
        draw();
        return;
      }
      await wire();
      await load();
    } catch (e) { say(e.message); }
  });
})();
