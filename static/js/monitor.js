// The live dashboard: `metrics` samples from the /monitor namespace (about one a second),
// drawn with uPlot. On every connect the server sends a backlog of its recent samples, so
// the charts fill the gap a reconnect left. Text goes in with textContent only.
import { socketOptions } from "./connection.js";
import { watchSession } from "./session.js";

const KEEP = 300;        // samples (and points per pushed series) on screen: five minutes
const HEIGHT = 180;      // px, every chart
const MB = 1024 * 1024;

// samples: [sample] by ts, oldest first; series: name -> { points: [[ts, value]], plot, figure }
// status: "connecting" | "online" | "offline" | "refused"; socket: the /monitor connection
const state = { samples: [], series: new Map(), status: "connecting", received: 0 };
window.papoMonitor = state;  // read-only handle for debugging and tests

const $ = (id) => document.getElementById(id);
const css = (name, fallback) => getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
const palette = () => [css("--accent", "#2754c5"), css("--ok", "#1a7f37"), css("--warn", "#8a5a00"), css("--err", "#b42318")];

// One definition per chart: the lines it draws, each a label and how to read it from a sample.
const CHARTS = {
  connections: [
    ["Users online", (s) => s.connections],
    ["WebSocket connections", (s) => s.transports?.websocket],
    ["Polling connections", (s) => s.transports?.polling],
  ],
  messages: [
    ["In / s", (s) => s.messages_per_s],
    ["Delivered / s", (s) => s.deliveries_per_s],
    ["Errors / s", (s) => s.errors_per_s],
  ],
  latency: [
    ["p50", (s) => s.latency_ms?.p50],
    ["p99", (s) => s.latency_ms?.p99],
  ],
  cpu: [
    ["Papo", (s) => s.cpu_percent],
    ["Machine", (s) => s.system_cpu_percent],
  ],
  memory: [
    ["Papo RSS", (s) => (s.memory_rss_bytes == null ? null : s.memory_rss_bytes / MB)],
  ],
};

const plots = new Map();  // chart key -> { plot, figure, lines }

// A sample's `connections` counts users (presence); its `transports` count the Engine.IO connections.
export const connectionCount = (s) => (s.transports ? Object.values(s.transports).reduce((a, b) => a + (b || 0), 0) : null);

// The latest known value of each latency quantile, and the ts of the sample that had it: a pause in
// traffic leaves a sample without latency, and the tile then says how old its figure is.
const latest = { p50: null, p99: null };  // quantile -> { value, ts } | null

function makePlot(container, labels) {
  const colors = palette();
  const axis = { stroke: css("--muted", "#56606e"), grid: { stroke: css("--border", "#d8dde5"), width: 1 },
                 ticks: { stroke: css("--border", "#d8dde5"), width: 1 } };
  const opts = {
    width: Math.max(200, container.clientWidth),
    height: HEIGHT,
    scales: {
      // One point (a fresh series) would stretch the axis over years: show the last minute instead.
      x: { time: true, range: (u, min, max) => {
        const xs = u.data[0];
        if (xs.length > 1) return [min, max];
        const at = xs.length ? xs[0] : Date.now() / 1000;
        return [at - 60, at + 1];
      } },
      y: { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] },
    },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i % colors.length], width: 2 }))],
    axes: [{ ...axis }, { ...axis, size: 56 }],
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [[], ...labels.map(() => [])], container);
  new ResizeObserver(() => plot.setSize({ width: Math.max(200, container.clientWidth), height: HEIGHT })).observe(container);
  return plot;
}

function setFigure(figure, values) {
  const known = values.filter((v) => v != null && Number.isFinite(v));
  figure.dataset.points = String(values.length);
  figure.dataset.last = values.length && values[values.length - 1] != null ? String(values[values.length - 1]) : "";
  figure.dataset.max = known.length ? String(Math.max(...known)) : "";
}

function setupCharts() {
  for (const [key, lines] of Object.entries(CHARTS)) {
    const figure = document.querySelector(`figure[data-chart="${key}"]`);
    if (!figure) continue;
    plots.set(key, { plot: makePlot(figure.querySelector(".plot"), lines.map(([label]) => label)), figure, lines });
  }
}

// ---------------------------------------------------------------------------
// Samples: merged by ts, so a backlog after a reconnect fills the gap without duplicates.
function addSamples(list) {
  const byTs = new Map(state.samples.map((s) => [s.ts, s]));
  let changed = false;
  for (const s of list || []) {
    if (s && Number.isFinite(s.ts) && !byTs.has(s.ts)) {
      byTs.set(s.ts, s);
      changed = true;
    }
  }
  if (!changed) return;
  state.samples = [...byTs.values()].sort((a, b) => a.ts - b.ts).slice(-KEEP);
  state.received += 1;
  render();
}

function addPoints(name, points) {
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(name)) return;
  let entry = state.series.get(name);
  if (!entry) {
    entry = makeSeries(name);
    state.series.set(name, entry);
  }
  const byTs = new Map(entry.points.map(([ts, v]) => [ts, v]));
  for (const [ts, v] of points) if (Number.isFinite(ts) && Number.isFinite(v)) byTs.set(ts, v);
  entry.points = [...byTs.entries()].sort((a, b) => a[0] - b[0]).slice(-KEEP);
  entry.plot.setData([entry.points.map(([ts]) => ts / 1000), entry.points.map(([, v]) => v)]);
  setFigure(entry.figure, entry.points.map(([, v]) => v));
}

function makeSeries(name) {
  $("series-empty")?.remove();
  const plotBox = document.createElement("div");
  plotBox.className = "plot";
  const caption = document.createElement("figcaption");
  caption.textContent = name;
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.dataset.series = name;
  figure.append(caption, plotBox);
  $("series").append(figure);
  const plot = makePlot(plotBox, [name]);
  return { points: [], plot, figure };
}

// ---------------------------------------------------------------------------
// Rendering
function render() {
  const samples = state.samples;
  const xs = samples.map((s) => s.ts / 1000);
  for (const { plot, figure, lines } of plots.values()) {
    const ys = lines.map(([, read]) => samples.map((s) => {
      const v = read(s);
      return v == null || !Number.isFinite(v) ? null : v;
    }));
    plot.setData([xs, ...ys]);
    setFigure(figure, ys[0]);
  }
  const last = samples[samples.length - 1];
  if (!last) return;
  const number = (v, digits = 0) => (v == null ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));
  $("tile-users").textContent = number(last.connections);
  $("tile-connections").textContent = number(connectionCount(last));
  $("tile-messages").textContent = number(last.messages_per_s, 1);
  for (const q of ["p50", "p99"]) {
    for (const s of samples) if (s.latency_ms?.[q] != null && s.ts >= (latest[q]?.ts ?? -Infinity)) latest[q] = { value: s.latency_ms[q], ts: s.ts };
    const known = latest[q];
    $(`tile-${q}`).textContent = known ? `${number(known.value, 1)} ms` : "–";
    const age = known && known.ts < last.ts ? Math.round((last.ts - known.ts) / 1000) : null;
    $(`tile-${q}-age`).textContent = age ? `${age} s ago` : "";
  }
  $("tile-cpu").textContent = last.cpu_percent == null ? "–" : `${number(last.cpu_percent, 0)} %`;
  $("tile-memory").textContent = last.memory_rss_bytes == null ? "–" : `${number(last.memory_rss_bytes / MB, 0)} MB`;
  renderRooms(last.busiest_rooms || []);
}

function renderRooms(rooms) {
  const list = $("busiest-rooms");
  list.replaceChildren();
  if (!rooms.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "No rooms in use.";
    list.append(empty);
    return;
  }
  const top = Math.max(...rooms.map((r) => r.messages_per_s || 0));
  const most = Math.max(...rooms.map((r) => r.members || 0), 1);
  for (const r of rooms) {
    const share = top > 0 ? (r.messages_per_s || 0) / top : (r.members || 0) / most;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `# ${r.room}`;
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${Math.round(share * 100)}%`;
    const track = document.createElement("span");
    track.className = "track";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${r.messages_per_s} msg/s · ${r.members} online`;
    const item = document.createElement("li");
    item.dataset.room = r.room;
    item.append(name, track, value);
    list.append(item);
  }
}

function setStatus(status, text) {
  state.status = status;
  const line = $("monitor-status");
  line.dataset.status = status;
  line.textContent = text;
  const topbar = $("connection");
  if (topbar) {
    topbar.dataset.status = status === "refused" ? "offline" : status;
    topbar.querySelector(".connection-text").textContent = status === "online" ? "Online" : status === "connecting" ? "Connecting…" : "Offline";
  }
}

// ---------------------------------------------------------------------------
// The connection: the backlog on every connect, then a sample a second.
setupCharts();
const socket = io("/monitor", socketOptions());
// The dashboard's connection is bound to the admin's session like the chat's: it refreshes before
// expiry and, once the session ends, shows why on the signed-out page instead of reconnecting.
watchSession(socket, {
  fetchFn: (...args) => fetch(...args), leave: (url) => window.location.assign(url), next: location.pathname,
});
state.socket = socket;

socket.on("connect", () => setStatus("online", "Live · a sample a second"));
socket.on("disconnect", () => setStatus("offline", "Offline · reconnecting, the gap fills in on return"));
socket.on("connect_error", (err) => {
  const code = err?.data?.code;
  if (code === "unauthorized") {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  } else if (code === "forbidden") {
    setStatus("refused", "Only admins (the ADMIN_USERS setting) can watch this page.");
  } else {
    setStatus("offline", "Offline · reconnecting…");
  }
});
socket.on("backlog", (data) => {
  addSamples(data?.samples);
  for (const [name, points] of Object.entries(data?.series || {})) addPoints(name, points);
});
socket.on("metrics", (sample) => addSamples([sample]));
socket.on("series", (point) => { if (point) addPoints(point.name, [[point.ts, point.value]]); });
