// deepsense live dashboard: one Server-Sent Events stream in, DOM and canvas out.
//
// Frames from /events hold only what changed (the server sends at most a few per second).
// They are merged into `devices`/`gateways` and the changed cards are marked dirty; drawing
// happens on requestAnimationFrame, dirty cards first, and the timelines of the visible
// cards scroll four times a second. window.deepsenseStats holds what the benchmark reads.
"use strict";

const SPAN_MS = 120000;          // timeline width
const SCROLL_MS = 250;           // timelines of visible cards are redrawn this often
const STALE_FACTOR = 3;          // no status for 3 x 10 s: shown as degraded
const STATUS_INTERVAL_MS = 10000;

const devices = new Map();       // id -> {data, points, events, el, canvas, bars, visible, dirty}
const gateways = new Map();      // id -> {data, el}
let errorsSeen = {};
let uncertainBelow = 0.6;
let clockOffsetMs = 0;           // browser clock - server clock, from each frame's now_ms
const dirty = new Set();
let gatewaysDirty = false;
let lastScroll = 0;

const stats = window.deepsenseStats = {
  frames: 0, predictions: 0, renders: 0, rafTicks: 0, renderMs: [], latencyMs: [],
  reset() { this.frames = this.predictions = this.renders = this.rafTicks = 0;
            this.renderMs = []; this.latencyMs = []; },
};

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const fmt = (x, digits = 2) => (x === null || x === undefined) ? "-" : Number(x).toFixed(digits);

// ------------------------------------------------------------------ merging frames
function merge(frame) {
  stats.frames++;
  clockOffsetMs = Date.now() - frame.now_ms;
  uncertainBelow = frame.uncertain_below;
  for (const d of frame.devices) {
    let dev = devices.get(d.device_id);
    if (!dev) dev = createDevice(d.device_id);
    if (d.reset) { dev.points = []; dev.events = []; }
    dev.points.push(...d.points);
    dev.events.push(...d.events);
    if (dev.points.length > 240) dev.points.splice(0, dev.points.length - 240);
    dev.data = d.last;
    dev.n = d.n;
    dev.dirty = true;
    dirty.add(dev);
    stats.predictions += d.points.length;
  }
  for (const g of frame.gateways) {
    gateways.set(g.gateway_id, {...(gateways.get(g.gateway_id) || {}), data: g});
    gatewaysDirty = true;
  }
  if (frame.errors) { errorsSeen = frame.errors; gatewaysDirty = true; }
}

// ------------------------------------------------------------------ device cards
const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const dev = entry.target.deviceRef;
    dev.visible = entry.isIntersecting;
    if (dev.visible && dev.dirty) dirty.add(dev);
  }
});

// Canvas sizes are cached here, never read while drawing: reading a size after changing
// text forces a layout, and 50 forced layouts per frame are what freezes a page.
const sizes = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const dev = entry.target.parentElement.deviceRef;
    dev.w = entry.contentRect.width;
    dev.h = entry.contentRect.height;
    dirty.add(dev);
  }
});

function createDevice(id) {
  const card = el("div", "device");
  card.dataset.device = id;
  const head = el("div", "head");
  head.append(el("span", "id", id), el("span", "label", "-"));
  const meta = el("div", "meta");
  const bars = el("div", "bars");
  const canvas = el("canvas", "timeline");
  card.append(head, meta, bars, canvas);
  const dev = {id, card, meta, bars, canvas, label: $(".label", head), barEls: new Map(),
               points: [], events: [], data: {}, visible: true, dirty: true, w: 0, h: 0};
  card.deviceRef = dev;
  const list = $("#devices");
  $(".empty", list)?.remove();
  const after = [...devices.keys()].filter((k) => k > id).sort()[0];
  list.insertBefore(card, after === undefined ? null : devices.get(after).card);
  devices.set(id, dev);
  visibility.observe(card);
  sizes.observe(canvas);
  return dev;
}

function renderDevice(dev) {
  const d = dev.data;
  const uncertain = Boolean(d.uncertain);
  dev.card.classList.toggle("uncertain", uncertain);
  if (d.probs) {
    dev.label.textContent = d.label;
    dev.meta.textContent = `p ${fmt(d.max_prob)}  entropy ${fmt(d.entropy)}  ` +
      `${d.model?.name ?? "?"} ${d.model?.version ?? ""}  ${fmt(d.latency_ms, 1)} ms  #${dev.n}`;
    renderBars(dev, d.probs, d.label);
  } else if (d.mean) {
    const [target, mean] = Object.entries(d.mean)[0];
    const iv = d.interval_95?.[target];
    dev.label.textContent = `${target} ${fmt(mean)}`;
    dev.meta.textContent = (iv ? `95% [${fmt(iv[0])}, ${fmt(iv[1])}]  ` : "") +
      `${d.model?.name ?? "?"} ${d.model?.version ?? ""}  #${dev.n}`;
  }
  dev.label.title = uncertain ? "uncertain window" : "";
  if (d.received_ms) stats.latencyMs.push(Date.now() - clockOffsetMs - d.received_ms);
  if (dev.visible) drawTimeline(dev);
}

function renderBars(dev, probs, label) {
  for (const [name, p] of Object.entries(probs)) {
    let bar = dev.barEls.get(name);
    if (!bar) {
      const track = el("div", "track");
      bar = {fill: el("div", "fill"), value: el("span", "value")};
      track.append(bar.fill);
      dev.bars.append(el("span", "name", name), track, bar.value);
      dev.barEls.set(name, bar);
    }
    bar.fill.style.transform = `scaleX(${p.toFixed(3)})`;   // no layout, unlike width
    bar.fill.classList.toggle("top", name === label);
    bar.value.textContent = fmt(p);
  }
}

// ------------------------------------------------------------------ timelines
function drawTimeline(dev) {
  const c = dev.canvas;
  const w = dev.w, h = dev.h, ratio = window.devicePixelRatio || 1;
  if (!w) return;
  if (c.width !== Math.round(w * ratio)) { c.width = Math.round(w * ratio); c.height = Math.round(h * ratio); }
  const g = c.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const now = Date.now() - clockOffsetMs, t0 = now - SPAN_MS;
  const x = (t) => (t - t0) / SPAN_MS * w;
  const pts = dev.points.filter((p) => p[0] >= t0 - 2000);
  const regression = !dev.data.probs;
  const step = pts.length > 1 ? Math.max(2, (pts[pts.length - 1][0] - pts[0][0]) / (pts.length - 1) / SPAN_MS * w) : 3;
  g.fillStyle = "rgba(220, 50, 47, 0.18)";
  const flag = regression ? 4 : 3;
  for (const p of pts) if (p[flag]) g.fillRect(x(p[0]) - step, 0, step, h);
  let y;
  if (regression) {
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[2]); hi = Math.max(hi, p[3]); }
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    y = (v) => h - 2 - (v - lo) / (hi - lo) * (h - 4);
    g.fillStyle = "rgba(47, 111, 222, 0.18)";
    g.beginPath();
    pts.forEach((p, i) => (i ? g.lineTo(x(p[0]), y(p[3])) : g.moveTo(x(p[0]), y(p[3]))));
    for (let i = pts.length - 1; i >= 0; i--) g.lineTo(x(pts[i][0]), y(pts[i][2]));
    g.fill();
    line(g, pts, x, (p) => y(p[1]), "#2f6fde");
  } else {
    y = (v) => h - 2 - v * (h - 4);
    g.strokeStyle = "#c5cad1"; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(0, y(uncertainBelow)); g.lineTo(w, y(uncertainBelow)); g.stroke();
    g.setLineDash([]);
    const logC = Math.log(Math.max(2, Object.keys(dev.data.probs).length));
    line(g, pts, x, (p) => y(p[2] / logC), "#e08a1e");
    line(g, pts, x, (p) => y(p[1]), "#2f6fde");
  }
  g.fillStyle = g.strokeStyle = "#8a3fd1";
  g.font = "10px system-ui, sans-serif";
  for (const [t, name] of dev.events) {
    if (t < t0) continue;
    g.beginPath(); g.moveTo(x(t), 0); g.lineTo(x(t), h); g.stroke();
    g.fillText(name, Math.min(x(t) + 2, w - 40), 10);
  }
}

function line(g, pts, x, y, color) {
  g.strokeStyle = color; g.lineWidth = 1.5;
  g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(x(p[0]), y(p)) : g.moveTo(x(p[0]), y(p))));
  g.stroke();
}

// ------------------------------------------------------------------ gateways
function gatewayState(g) {
  if (g.state === "online" && Date.now() - clockOffsetMs - g.received_ms > STALE_FACTOR * STATUS_INTERVAL_MS)
    return "degraded";
  return g.state;
}

function renderGateways() {
  const box = $("#gateways");
  if (gateways.size) $(".empty", box)?.remove();
  for (const [id, gw] of [...gateways].sort()) {
    if (!gw.el) { gw.el = el("div", "gateway"); gw.el.dataset.gateway = id; box.append(gw.el); }
    const g = gw.data, m = g.model || {};
    const state = gatewayState(g);
    const title = el("div", "title");
    title.append(el("span", "", id), el("span", `badge state ${state}`, state));
    const dl = el("dl");
    const row = (k, v, cls) => { dl.append(el("dt", "", k)); const dd = el("dd", cls || "", String(v ?? "-")); dd.dataset.field = k; dl.append(dd); return dd; };
    row("model", `${m.name ?? "?"} ${m.version ?? ""} (${m.task ?? "?"})`);
    row("sha256", (m.sha256 || "").slice(0, 16), "sha").title = m.sha256 || "";
    row("devices", g.devices);
    row("queue depth", g.queue_depth);
    row("pending", g.pending_predictions);
    row("predictions", g.counters?.predictions ?? 0);
    const refusals = el("div", "refusals");
    for (const [reason, n] of Object.entries(g.refusals || {}).sort()) {
      const r = el("span", "refusal");
      r.dataset.reason = reason;
      r.append(`${reason} `, el("span", "count", String(n)));
      refusals.append(r);
    }
    if (!refusals.childElementCount) refusals.append(el("span", "empty", "no refusals"));
    const events = el("div", "meta", g.events?.length ? "model updates: " + g.events.map(
      ([t, name]) => `${new Date(t).toLocaleTimeString()} ${name}`).join(", ") : "");
    gw.el.replaceChildren(title, dl, refusals, events);
  }
  const seen = Object.entries(errorsSeen);
  $("#errors").textContent = seen.length ? "refusals seen on the error topics since this page opened: " +
    seen.map(([k, v]) => `${k} ${v}`).join(", ") : "";
}

// ------------------------------------------------------------------ the loop
function tick(ts) {
  stats.rafTicks++;
  if (dirty.size || gatewaysDirty) {
    const started = performance.now();
    // Off-screen cards keep their dirty mark and are drawn when they scroll into view.
    for (const dev of dirty) if (dev.visible) { renderDevice(dev); dev.dirty = false; }
    dirty.clear();
    if (gatewaysDirty) { renderGateways(); gatewaysDirty = false; }
    stats.renders++;
    stats.renderMs.push(performance.now() - started);
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    $("#summary").textContent = `${plural(devices.size, "device")}, ${plural(gateways.size, "gateway")}`;
  }
  if (ts - lastScroll >= SCROLL_MS) {
    lastScroll = ts;
    for (const dev of devices.values()) if (dev.visible) drawTimeline(dev);
    if (gateways.size) renderGatewayStates();
  }
  requestAnimationFrame(tick);
}

function renderGatewayStates() {
  for (const gw of gateways.values()) {
    const badge = gw.el && $(".state", gw.el);
    if (!badge) continue;
    const state = gatewayState(gw.data);
    if (badge.textContent !== state) { badge.textContent = state; badge.className = `badge state ${state}`; }
  }
}

function connect() {
  const badge = $("#connection");
  const source = new EventSource("/events");
  source.onopen = () => { badge.textContent = "live"; badge.className = "badge online"; };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = "badge offline"; };
  source.onmessage = (event) => merge(JSON.parse(event.data));
}

connect();
requestAnimationFrame(tick);
