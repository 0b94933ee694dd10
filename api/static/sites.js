// Firetower console: floor plans (markers in the image's own coordinates), the site view
// with device health, fire plan and contacts, and the telemetry curves. Loaded after
// console.js; shares its state and helpers.
"use strict";

// -- floor plans: markers in the image's own coordinates -----------------------------------
// devices.x/y are fractions of the plan's width and height. The plan is drawn in a box with
// exactly the image's aspect ratio (from its pixels, or an SVG's width/height or viewBox), the
// image filling it, so a marker at left: x%, top: y% of the box sits on that point of the
// image however wide the column is.
function svgRatio(text) {
  const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
  const w = svg.getAttribute("width"), ht = svg.getAttribute("height");
  if (w && ht && !/%/.test(w + ht) && parseFloat(w) > 0 && parseFloat(ht) > 0) {
    return parseFloat(w) / parseFloat(ht);
  }
  const vb = (svg.getAttribute("viewBox") || "").trim().split(/[\s,]+/).map(Number);
  return vb.length === 4 && vb[2] > 0 && vb[3] > 0 ? vb[2] / vb[3] : null;
}

async function planImage(planUrl) {
  if (!state.planUrls.has(planUrl)) {
    state.planUrls.set(planUrl, (async () => {
      const blob = await (await api(planUrl.replace(API, ""), { raw: true })).blob();
      const url = URL.createObjectURL(blob);
      let ratio = blob.type === "image/svg+xml" ? svgRatio(await blob.text()) : null;
      if (!ratio) {
        const im = new Image();
        im.src = url;
        await im.decode();
        ratio = im.naturalWidth / im.naturalHeight;
      }
      return { url, ratio };
    })());
  }
  return state.planUrls.get(planUrl);
}

const healthClass = (d) => d.online === null || d.online === undefined ? "never"
  : d.online ? "" : "offline";

// devices: [{id, x, y, location, status ("alarm" | "offline" | "never" | ""), onclick}]
function planView(floor, devices, id) {
  const img = h("img", { alt: `${T("ui.floor_plan")}: ${floor.name}` });
  const wrap = h("div", { class: "plan-canvas", id, dataset: { floorId: floor.id } }, img,
    devices.map((d) => {
      const m = h("button", { class: `marker ${d.status || ""}`, title: `${d.id} ${d.location || ""}`,
        dataset: { deviceId: d.id }, onclick: d.onclick },
      h("span", { class: "marker-label" }, d.location ? `${d.id} · ${d.location}` : d.id));
      m.style.left = `${d.x * 100}%`;  // CSSOM, allowed by the CSP (inline style attributes are not)
      m.style.top = `${d.y * 100}%`;
      return m;
    }));
  planImage(floor.plan_url).then(({ url, ratio }) => {
    wrap.style.setProperty("--ratio", String(ratio));
    img.addEventListener("load", () => { wrap.dataset.ready = "1"; }, { once: true });
    img.src = url;
  }).catch((err) => console.warn("floor plan:", err && err.message));
  return wrap;
}

async function renderSite(siteChanged = true) {
  const site = state.sites.find((s) => s.id === $("site-select").value);
  if (!site) return;
  if (siteChanged || !$("floor-select").options.length) {
    $("floor-select").replaceChildren(h("option", { value: "" }, T("ui.all_floors")),
      ...site.floors.map((f) => h("option", { value: f.id }, f.name)));
    if (site.floors.length) $("floor-select").value = site.floors[0].id;
  }
  const floorId = $("floor-select").value;
  const [devices, health] = await Promise.all([
    api(`/devices?site_id=${encodeURIComponent(site.id)}`), api(`/sites/${encodeURIComponent(site.id)}/health`)]);
  state.devices = devices.data;
  $("site-health").textContent = health.online_rate === null ? T("ui.no_in_service")
    : T("ui.online_rate", { rate: Math.round(health.online_rate * 1000) / 10,
      online: health.online, total: health.in_service }) +
      (health.offline ? ` · ${T("ui.offline_n", { n: health.offline })}` : "");
  const onFloor = state.devices.filter((d) => !floorId || d.floor_id === floorId);
  const inAlarm = new Set([...state.alarms.values()].filter((a) => a.state !== "closed").map((a) => a.device_id));
  $("device-list").replaceChildren(...onFloor.map((d) => h("li", {
    dataset: { deviceId: d.id }, onclick: () => showCurves(d) },
  h("span", {}, h("span", { class: `dot ${healthClass(d)}` }), " ", d.id, " ",
    h("small", {}, d.location)), h("small", {}, L("lifecycle", d.lifecycle)))));
  const floor = site.floors.find((f) => f.id === floorId);
  if (floor && floor.plan_url) {
    $("plan").replaceChildren(planView(floor, onFloor.filter((d) => d.x !== null && d.y !== null)
      .map((d) => ({ id: d.id, x: d.x, y: d.y, location: d.location,
        status: inAlarm.has(d.id) ? "alarm" : healthClass(d), onclick: () => showCurves(d) })),
    "site-plan"));
  } else {
    $("plan").replaceChildren(h("p", { class: "empty" }, T("ui.no_plan")));
  }
  $("fire-plan").replaceChildren(...firePlanParts(site).filter(Boolean),
    h("section", {}, h("h3", {}, T("ui.contacts")), contactsList(site)),
    h("section", { id: "site-org" }), h("section", { id: "site-history" }));
  siteOrganisation(site).catch((err) => console.warn("site organisation:", err && err.message));
}

// The site's place in the city (unit, jurisdiction path, today's maintenance company) and
// its recent alarms, closed ones included: the site page of docs/organisation.md.
async function siteOrganisation(site) {
  const id = encodeURIComponent(site.id);
  const today = new Date().toISOString().slice(0, 10);
  const quiet = (p) => p.catch(() => null);  // a part the user may not see stays empty
  const [unit, node, contracts, history] = await Promise.all([
    site.unit_id ? quiet(api(`/units/${site.unit_id}`)) : null,
    site.jurisdiction_id ? quiet(api(`/jurisdictions/${site.jurisdiction_id}`)) : null,
    quiet(api("/contracts")), quiet(api(`/alarms?site_id=${id}&limit=20`))]);
  const running = ((contracts && contracts.data) || []).find((k) => k.site_id === site.id
    && k.starts_on <= today && today <= k.ends_on);
  const company = running ? await quiet(api(`/companies/${running.company_id}`)) : null;
  if ($("site-select").value !== site.id || !$("site-org")) return;  // another site meanwhile
  $("site-org").replaceChildren(h("h3", {}, T("ui.organisation")), h("dl", { class: "contacts" },
    h("dt", {}, T("ui.unit")), h("dd", { id: "site-unit" }, unit ? unit.name : "—"),
    h("dt", {}, T("ui.jurisdiction")), h("dd", {}, node ? node.path.map((p) => p.name).join(" › ") : "—"),
    h("dt", {}, T("ui.maintenance")), h("dd", { id: "site-company" },
      company ? `${company.name} ${company.phone || ""} (${running.starts_on} – ${running.ends_on})` : "—")));
  const alarms = (history && history.data) || [];
  $("site-history").replaceChildren(h("h3", {}, T("ui.recent_alarms")), alarms.length
    ? h("ul", { class: "plain" }, alarms.map((a) => h("li", { class: a.class },
      `${fmtTime(a.raised_at)} · ${T(`class.${a.class}`)} · ${a.device_id} · ${L("state", a.state)}`
      + (a.verdict ? ` · ${L("verdict", a.verdict)}` : ""))))
    : h("p", { class: "empty" }, T("ui.no_recent_alarms")));
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
  box.replaceChildren(h("p", {}, h("strong", {}, d.id), ` ${L("kind", d.kind)} · ${d.location}`));
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
