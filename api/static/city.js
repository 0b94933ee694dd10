// Firetower console: the city view. The jurisdiction tree, a node's units and sites, a unit's
// page (contacts, maintenance company, sites, open alarms) and the city map (一张图): sites as
// markers coloured by their worst open alarm, gathered per jurisdiction when zoomed out, with
// the nodes' boundaries. Loaded after console.js; shares its state and helpers. The pure part
// (FiretowerCity) has no DOM and is tested on its own in Node (tests/unit/test_console_city.py).
"use strict";

(function (root) {
  const ORDER = { fire: 1, supervisory: 2, fault: 3, offline: 4, early_warning: 5 };

  // The worst open alarm class of each site: fire > supervisory > fault > offline > early
  // warning. Alarms in test, disabled or maintenance mode do not colour the map.
  function worstBySite(alarms) {
    const out = {};
    for (const a of alarms) {
      if (!a.site_id || a.state === "closed" || (a.mode && a.mode !== "normal")) continue;
      const now = out[a.site_id];
      if (!now || ORDER[a.class] < ORDER[now]) out[a.site_id] = a.class;
    }
    return out;
  }

  // The nodes the map gathers sites under when zoomed out: the children of the shallowest
  // visible node (the city's districts, say), or that node itself when it has none.
  function clusterNodes(nodes) {
    if (!nodes.length) return [];
    const depth = Math.min(...nodes.map((n) => n.path.length));
    const tops = nodes.filter((n) => n.path.length === depth);
    const next = nodes.filter((n) => n.path.length === depth + 1);
    return next.length ? next : tops;
  }

  // Per cluster node: its sites (those whose node lies in its subtree), the number of open
  // alarms of each class there, its worst class, and where to draw it (its centre, else the
  // mean of its sites' coordinates).
  function clusters(nodes, sites, alarms) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const worst = worstBySite(alarms);
    const out = clusterNodes(nodes).map((n) => ({ node: n, sites: [], counts: {}, worst: null,
      lat: n.center_lat, lon: n.center_lon }));
    const index = new Map(out.map((c) => [c.node.id, c]));
    for (const s of sites) {
      const j = byId.get(s.jurisdiction_id);
      if (!j) continue;
      const c = j.path.map((p) => index.get(p.id)).find((x) => x);
      if (c) c.sites.push(s);
    }
    const siteIds = new Map(out.map((c) => [c, new Set(c.sites.map((s) => s.id))]));
    for (const a of alarms) {
      if (a.state === "closed" || (a.mode && a.mode !== "normal")) continue;
      for (const c of out) {
        if (siteIds.get(c).has(a.site_id)) c.counts[a.class] = (c.counts[a.class] || 0) + 1;
      }
    }
    for (const c of out) {
      for (const s of c.sites) {
        const w = worst[s.id];
        if (w && (!c.worst || ORDER[w] < ORDER[c.worst])) c.worst = w;
      }
      const placed = c.sites.filter((s) => s.latitude !== null && s.longitude !== null);
      if ((c.lat === null || c.lat === undefined) && placed.length) {
        c.lat = placed.reduce((t, s) => t + s.latitude, 0) / placed.length;
        c.lon = placed.reduce((t, s) => t + s.longitude, 0) / placed.length;
      }
    }
    return out;
  }

  // The tree as nested lists: children of each node, in code order.
  function children(nodes) {
    const out = new Map();
    const ids = new Set(nodes.map((n) => n.id));
    for (const n of [...nodes].sort((a, b) => (a.code < b.code ? -1 : 1))) {
      const parent = ids.has(n.parent_id) ? n.parent_id : null;  // a root of what we see
      if (!out.has(parent)) out.set(parent, []);
      out.get(parent).push(n);
    }
    return out;
  }

  // The ids of a node's subtree, from the flat list.
  function subtreeIds(nodes, id) {
    return new Set(nodes.filter((n) => n.path.some((p) => p.id === id)).map((n) => n.id));
  }

  const api = { ORDER, worstBySite, clusterNodes, clusters, children, subtreeIds };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FiretowerCity = api;
})(this);

// -- the DOM part (only in the browser) ------------------------------------------------------
if (typeof window !== "undefined") {
  const C = window.FiretowerCity;
  const CLUSTER_BELOW_ZOOM = 14;  // sites one by one from this zoom on
  const city = { nodes: [], sites: [], units: [], map: null, layers: null, markers: new Map(),
    loaded: false, panel: null, companies: new Map() };

  async function loadCity() {
    const [nodes, sites, units, config] = await Promise.all([
      api("/jurisdictions?limit=10000"), api("/sites"), api("/units?limit=10000"),
      api("/map/config")]);
    city.nodes = nodes.data;
    city.sites = sites.data;
    city.units = units.data;
    city.config = config;
    city.loaded = true;
    renderTree();
    renderMap();
  }

  function renderTree() {
    const kids = C.children(city.nodes);
    const small = city.nodes.length <= 60;  // a small tree opens whole; a city's, two levels
    const item = (n) => {
      const sub = kids.get(n.id) || [];
      const label = h("button", { class: "node-link", dataset: { nodeId: String(n.id) },
        onclick: (ev) => {  // choosing a node also opens it
          const d = ev.currentTarget.closest("details");
          if (d) d.open = true;
          showNode(n.id);
        } }, `${n.name} `, h("span", { class: "muted" }, `${T(`level.${n.level}`)} · ${n.sites}`));
      if (!sub.length) return h("li", {}, label);
      return h("li", {}, h("details", { open: small || n.path.length <= 2 ? "" : null },
        h("summary", {}, label), h("ul", {}, sub.map(item))));
    };
    $("city-tree").replaceChildren(...(kids.get(null) || []).map(item));
    $("city-empty").hidden = city.nodes.length > 0;
  }

  function showNode(id, refit = true) {
    const n = city.nodes.find((x) => x.id === id);
    if (!n) return;
    city.panel = { kind: "node", id };
    const ids = C.subtreeIds(city.nodes, id);
    const sites = city.sites.filter((s) => ids.has(s.jurisdiction_id));
    const units = city.units.filter((u) => ids.has(u.grid_id)
      || sites.some((s) => s.unit_id === u.id));
    const worst = C.worstBySite([...state.alarms.values()]);
    $("city-panel").replaceChildren(
      h("h3", {}, n.name),
      h("p", { class: "muted" }, n.path.map((p) => p.name).join(" › ")),
      h("h4", {}, `${T("ui.units")} (${units.length})`),
      h("ul", { class: "plain" }, units.map((u) => h("li", {}, h("button", { class: "link",
        dataset: { unitId: String(u.id) }, onclick: () => showUnit(u.id) }, u.name)))),
      h("h4", {}, `${T("ui.sites")} (${sites.length})`),
      h("ul", { class: "plain" }, sites.map((s) => h("li", { class: `site-row ${worst[s.id] || ""}` },
        h("button", { class: "link", onclick: () => focusSite(s.id) }, s.name),
        worst[s.id] ? h("span", { class: `badge ${worst[s.id]}` }, T(`class.${worst[s.id]}`)) : null))));
    const placed = sites.filter((s) => s.latitude !== null);
    if (refit && city.map && placed.length) {
      city.map.fitBounds(placed.map((s) => [s.latitude, s.longitude]), { maxZoom: 16, padding: [20, 20] });
    }
  }

  async function showUnit(id, fresh = true) {
    city.panel = { kind: "unit", id };
    const u = city.units.find((x) => x.id === id) || await api(`/units/${id}`);
    const sites = city.sites.filter((s) => s.unit_id === id);
    const siteIds = new Set(sites.map((s) => s.id));
    const alarms = [...state.alarms.values()].filter((a) => siteIds.has(a.site_id));
    // the maintenance company today: asked when the page opens, not on every alarm change
    if (fresh || !city.companies.has(id)) {
      let company = null;
      try {
        const today = new Date().toISOString().slice(0, 10);
        const contracts = (await api("/contracts")).data.filter((k) => siteIds.has(k.site_id)
          && k.starts_on <= today && today <= k.ends_on);
        if (contracts.length) company = await api(`/companies/${contracts[0].company_id}`);
      } catch (_) { company = null; }
      city.companies.set(id, company);
    }
    const company = city.companies.get(id);
    const phone = (p) => (p ? h("a", { href: `tel:${p.replace(/[^0-9+]/g, "")}` }, p) : "");
    const person = (name, p) => (name || p ? [name || "", " ", phone(p)] : "—");
    $("city-panel").replaceChildren(
      h("h3", { id: "unit-name" }, u.name),
      h("p", { class: "muted" }, [u.credit_code || "", T(`risk.${u.risk_class}`),
        u.nine_small ? T("ui.nine_small") : ""].filter((x) => x).join(" · ")),
      h("dl", { class: "contacts" },
        h("dt", {}, T("ui.responsible")), h("dd", { id: "unit-responsible" }, person(u.responsible_name, u.responsible_phone)),
        h("dt", {}, T("ui.manager")), h("dd", {}, person(u.manager_name, u.manager_phone)),
        h("dt", {}, T("ui.maintenance")), h("dd", { id: "unit-company" }, company ? `${company.name} ${company.phone || ""}` : "—")),
      h("h4", {}, `${T("ui.sites")} (${sites.length})`),
      h("ul", { class: "plain" }, sites.map((s) => h("li", {}, h("button", { class: "link",
        onclick: () => focusSite(s.id) }, s.name), ` ${s.address || ""}`))),
      h("h4", {}, `${T("ui.open_alarms")} (${alarms.length})`),
      h("ul", { class: "plain" }, alarms.map((a) => h("li", { class: a.class },
        h("button", { class: "link", onclick: () => { switchView("board"); selectAlarm(a.id); } },
          `${T(`class.${a.class}`)} · ${a.site_name || a.site_id} · ${a.location || a.device_id}`)))));
  }

  function focusSite(id) {
    const s = city.sites.find((x) => x.id === id);
    if (s && city.map && s.latitude !== null) city.map.setView([s.latitude, s.longitude], 17);
  }

  function renderMap() {
    const box = $("city-map");
    const leaflet = window.L;  // console.js's own `L` (labels) shadows the global name
    if (!leaflet) {
      box.replaceChildren(h("p", { class: "empty" }, T("ui.map_missing")));
      return;
    }
    if (!city.map) {
      city.map = leaflet.map(box, { preferCanvas: false, zoomControl: true, attributionControl: true });
      if (city.config.tile_url) {
        leaflet.tileLayer(city.config.tile_url, { attribution: city.config.attribution, maxZoom: 19 })
          .addTo(city.map);
      }
      city.layers = { bounds: leaflet.layerGroup().addTo(city.map),
        marks: leaflet.layerGroup().addTo(city.map) };
      city.map.on("zoomend", () => drawMarks());
      const placed = city.sites.filter((s) => s.latitude !== null);
      if (placed.length) city.map.fitBounds(placed.map((s) => [s.latitude, s.longitude]), { maxZoom: 16, padding: [20, 20] });
      else city.map.setView([35, 105], 4);
    }
    city.layers.bounds.clearLayers();
    for (const n of city.nodes.filter((x) => x.boundary)) {
      leaflet.geoJSON(n.boundary, { style: { className: `boundary level-${n.level}`, fill: false } })
        .bindTooltip(n.name).addTo(city.layers.bounds);
    }
    drawMarks();
  }

  // Sites one by one when zoomed in; one circle per jurisdiction with its counts when out.
  function drawMarks() {
    if (!city.map) return;
    const leaflet = window.L;
    const alarms = [...state.alarms.values()];
    const worst = C.worstBySite(alarms);
    city.layers.marks.clearLayers();
    city.markers.clear();
    if (city.map.getZoom() >= CLUSTER_BELOW_ZOOM) {
      for (const s of city.sites.filter((x) => x.latitude !== null && x.longitude !== null)) {
        const w = worst[s.id] || "ok";
        const m = leaflet.circleMarker([s.latitude, s.longitude], { radius: 9, weight: 2,
          className: `site-marker ${w}`, fillOpacity: 0.9 })
          .bindTooltip(`${s.name}${worst[s.id] ? ` · ${T(`class.${w}`)}` : ""}`)
          .on("click", () => { const u = s.unit_id; if (u) showUnit(u); })
          .addTo(city.layers.marks);
        const el = m.getElement();
        if (el) { el.setAttribute("data-site", s.id); el.setAttribute("data-worst", w); }
        city.markers.set(s.id, m);
      }
    } else {
      for (const c of C.clusters(city.nodes, city.sites, alarms)) {
        if (c.lat === null || c.lat === undefined || !c.sites.length) continue;
        const open = Object.values(c.counts).reduce((t, x) => t + x, 0);
        const m = leaflet.circleMarker([c.lat, c.lon], { radius: 12 + Math.min(18, Math.sqrt(c.sites.length)),
          className: `cluster-marker ${c.worst || "ok"}`, fillOpacity: 0.8 })
          .bindTooltip(`${c.node.name}: ${c.sites.length} ${T("ui.sites")}, ${open} ${T("ui.open_alarms")}`,
            { permanent: true, direction: "center", className: "cluster-label" })
          .on("click", () => showNode(c.node.id))
          .addTo(city.layers.marks);
        const el = m.getElement();
        if (el) { el.setAttribute("data-node", String(c.node.id)); el.setAttribute("data-worst", c.worst || "ok"); }
      }
    }
  }

  // console.js calls this after every change of the open alarms (stream, actions, language).
  window.cityAlarmsChanged = () => {
    if (!city.loaded || $("view-city").hidden) return;
    drawMarks();
    const p = city.panel;  // the open node or unit page lists open alarms: keep it current
    if (p && p.kind === "node") showNode(p.id, false);
    else if (p && p.kind === "unit") showUnit(p.id, false).catch(() => {});
  };
  window.showCity = () => {
    (city.loaded ? Promise.resolve() : loadCity())
      .then(() => { if (city.map) { city.map.invalidateSize(); drawMarks(); } })
      .catch((err) => console.warn("city:", err && err.message));
  };
  window.firetowerCity = city;  // for tests
}
