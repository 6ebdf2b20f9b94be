// The h2mesh dashboard: polls /live.json once a second and updates the page in place. Every
// cluster card and endpoint row is made once and then only its text and bar widths change, so
// hundreds of endpoints (the server lists the top ones and sums up the others) cost a few DOM
// writes per second. No framework, no external asset.
"use strict";

const POLL_MS = 1000;
const STATUS_COLORS = {
  OK: "#16a34a", CANCELLED: "#9ca3af", UNKNOWN: "#a855f7", INVALID_ARGUMENT: "#f59e0b",
  DEADLINE_EXCEEDED: "#f97316", NOT_FOUND: "#eab308", UNAVAILABLE: "#dc2626",
  RESOURCE_EXHAUSTED: "#be185d", INTERNAL: "#7c3aed", UNIMPLEMENTED: "#0ea5e9", NONE: "#4b5563",
};

const params = new URLSearchParams(location.search);
const windowSelect = document.getElementById("window");
if (params.get("window")) windowSelect.value = params.get("window");
const statusEl = document.getElementById("status");
const clustersEl = document.getElementById("clusters");
const cards = new Map();      // cluster name -> card state
const listenerRows = new Map();

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function setText(e, text) { if (e.textContent !== text) e.textContent = text; }
function setAttr(e, name, value) { if (e.getAttribute(name) !== value) e.setAttribute(name, value); }
function rate(v) { return v === null || v === undefined ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1); }
function ms(v) {
  if (v === null || v === undefined) return "–";
  return v >= 100 ? v.toFixed(0) + " ms" : v >= 1 ? v.toFixed(1) + " ms" : (v * 1000).toFixed(0) + " µs";
}
function pct(v) { return (v * 100).toFixed(1) + " %"; }

function metric(label) {
  const m = el("span", "metric");
  const b = el("b", "", "–");
  m.append(b, el("span", "", label));
  return { root: m, value: b };
}

function makeCard(name) {
  const root = el("div", "card");
  root.dataset.cluster = name;
  const head = el("div", "card-head");
  const title = el("span", "name", name);
  const m = {
    rate: metric("calls/s"), errors: metric("errors"), p50: metric("p50"), p90: metric("p90"),
    p99: metric("p99"), inflight: metric("in flight"),
  };
  const counts = el("span", "counts muted");
  head.append(title, ...Object.values(m).map((x) => x.root), counts);
  head.addEventListener("click", () => root.classList.toggle("collapsed"));
  const statuses = el("div", "statuses");
  const legend = el("div", "legend");
  const table = el("table", "grid");
  table.innerHTML = "<thead><tr><th>endpoint</th><th class='left'>state</th><th class='left'>share of calls</th>" +
    "<th>calls/s</th><th>errors</th><th>p50</th><th>p99</th><th>in flight</th><th>conns</th></tr></thead>";
  const tbody = el("tbody");
  table.append(tbody);
  const body = el("div", "card-body");
  body.append(statuses, legend, table);
  root.append(head, body);
  clustersEl.append(root);
  return { root, title, m, counts, statuses, legend, tbody, rows: new Map(), others: null, statusKey: "" };
}

function makeRow() {
  const tr = el("tr");
  const cells = {};
  for (const k of ["address", "state", "share", "rate", "errors", "p50", "p99", "inflight", "conns"]) {
    cells[k] = el("td", k === "state" || k === "share" ? "left" : "");
    tr.append(cells[k]);
  }
  const badge = el("span", "badge");
  cells.state.append(badge);
  const share = el("div", "share");
  const track = el("div", "track");
  const fill = el("div", "fill");
  track.append(fill);
  const label = el("span", "pct");
  share.append(track, label);
  cells.share.append(share);
  return { tr, cells, badge, fill, label };
}

function fillRow(row, e, isOthers) {
  const state = isOthers ? "" : e.state;
  setText(row.cells.address, isOthers ? `+ ${e.endpoints} more endpoints` : e.address);
  if (!isOthers) {
    setText(row.badge, state);
    setAttr(row.badge, "class", "badge " + state);
    row.tr.classList.toggle("down", state !== "available");
    row.tr.dataset.endpoint = e.address;
    row.tr.dataset.state = state;
  } else {
    const bad = Object.entries(e.states).filter(([s]) => s !== "available").map(([s, n]) => `${n} ${s}`);
    setText(row.badge, bad.length ? bad.join(", ") : "available");
    setAttr(row.badge, "class", "badge " + (bad.length ? "unhealthy" : "available"));
  }
  row.tr.dataset.share = String(e.share);
  row.fill.style.width = (e.share * 100).toFixed(1) + "%";
  setText(row.label, pct(e.share));
  setText(row.cells.rate, rate(e.calls_per_second));
  setText(row.cells.errors, String(e.errors));
  row.cells.errors.classList.toggle("err", e.errors > 0);
  setText(row.cells.p50, isOthers ? "" : ms(e.p50_ms));
  setText(row.cells.p99, isOthers ? "" : ms(e.p99_ms));
  setText(row.cells.inflight, String(e.in_flight));
  setText(row.cells.conns, String(e.upstream_connections));
}

function updateStatuses(card, byStatus, total) {
  const entries = Object.entries(byStatus).sort((a, b) => b[1] - a[1]);
  const key = entries.map(([s]) => s).join(",");
  if (key !== card.statusKey) {  // the set of statuses changed: rebuild the few segments
    card.statusKey = key;
    card.statuses.replaceChildren(...entries.map(([s]) => {
      const d = el("div");
      d.style.background = STATUS_COLORS[s] || "#64748b";
      d.title = s;
      return d;
    }));
  }
  entries.forEach(([, n], i) => { card.statuses.children[i].style.width = (n / total * 100) + "%"; });
  card.legend.replaceChildren(...entries.map(([s, n]) => {
    const span = el("span");
    const dot = el("i");
    dot.style.background = STATUS_COLORS[s] || "#64748b";
    span.append(dot, `${s} ${n}`);
    return span;
  }));
  if (!entries.length) setText(card.legend, "no call ended in the window");
}

function updateCluster(c) {
  let card = cards.get(c.name);
  if (!card) {
    card = makeCard(c.name);
    cards.set(c.name, card);
  }
  card.seen = true;
  const title = c.service ? `${c.name} (${c.namespace}/${c.service})` : c.name;
  setText(card.title, title);
  setText(card.m.rate.value, rate(c.calls_per_second));
  setText(card.m.errors.value, pct(c.error_rate));
  card.m.errors.value.classList.toggle("err", c.errors > 0);
  setText(card.m.p50.value, ms(c.latency_ms.p50));
  setText(card.m.p90.value, ms(c.latency_ms.p90));
  setText(card.m.p99.value, ms(c.latency_ms.p99));
  setText(card.m.inflight.value, String(c.in_flight));
  const states = Object.entries(c.endpoint_states).map(([s, n]) => `${n} ${s}`).join(" · ");
  setText(card.counts, `${c.lb_policy} · ${c.endpoints_total} endpoints${states ? " · " + states : ""}`);
  updateStatuses(card, c.by_status, Object.values(c.by_status).reduce((a, b) => a + b, 0));

  // Rows by address, in the server's order; rows of endpoints no longer listed go.
  const wanted = new Set(c.endpoints.map((e) => e.address));
  for (const [addr, row] of card.rows) {
    if (!wanted.has(addr)) { row.tr.remove(); card.rows.delete(addr); }
  }
  let before = card.tbody.firstChild;
  for (const e of c.endpoints) {
    let row = card.rows.get(e.address);
    if (!row) { row = makeRow(); card.rows.set(e.address, row); }
    fillRow(row, e, false);
    if (row.tr !== before) card.tbody.insertBefore(row.tr, before);
    before = row.tr.nextSibling;
  }
  if (c.others) {
    if (!card.others) { card.others = makeRow(); card.others.tr.classList.add("others"); }
    fillRow(card.others, c.others, true);
    card.tbody.append(card.others.tr);
  } else if (card.others) {
    card.others.tr.remove();
    card.others = null;
  }
}

function updateListeners(listeners) {
  document.getElementById("listeners-section").hidden = listeners.length === 0;
  const tbody = document.querySelector("#listeners tbody");
  for (const l of listeners) {
    let r = listenerRows.get(l.name);
    if (!r) {
      r = { tr: el("tr"), cells: [] };
      for (let i = 0; i < 8; i++) { const td = el("td", i === 1 ? "left" : ""); r.cells.push(td); r.tr.append(td); }
      tbody.append(r.tr);
      listenerRows.set(l.name, r);
    }
    const values = [l.name, l.address, rate(l.calls_per_second), pct(l.error_rate),
      ms(l.latency_ms.p50), ms(l.latency_ms.p90), ms(l.latency_ms.p99), String(l.in_flight)];
    values.forEach((v, i) => setText(r.cells[i], v));
    r.cells[0].title = "routes lead to: " + l.clusters.join(", ");
  }
}

function render(live) {
  updateListeners(live.listeners);
  for (const card of cards.values()) card.seen = false;
  for (const c of live.clusters) updateCluster(c);
  for (const [name, card] of cards) {
    if (!card.seen) { card.root.remove(); cards.delete(name); }
  }
  document.getElementById("empty").hidden = live.clusters.length > 0;
  const w = live.window_seconds ? `${live.window_seconds.toFixed(0)} s window` : "first sample";
  setText(statusEl, `live · ${w} · ${new Date(live.time * 1000).toLocaleTimeString()}`);
  statusEl.className = "live ok";
}

async function poll() {
  try {
    const query = new URLSearchParams({ window: windowSelect.value });
    if (params.get("top")) query.set("top", params.get("top"));
    const res = await fetch("live.json?" + query, { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
  } catch (err) {
    setText(statusEl, "no answer from the proxy (" + err.message + ")");
    statusEl.className = "live down";
  }
  setTimeout(poll, POLL_MS);
}

windowSelect.addEventListener("change", () => {
  const u = new URL(location.href);
  u.searchParams.set("window", windowSelect.value);
  history.replaceState(null, "", u);
});
poll();
