'use strict';
// Shared pieces of the load generator: arguments, clocks, samples, CPU and
// server process figures, the one-line JSON result.

const fs = require('fs');
const { performance, monitorEventLoopDelay } = require('perf_hooks');

const now = () => performance.now(); // monotonic ms, one clock for send and receive

function parseArgs(argv, defaults) {
  const opts = Object.assign({}, defaults);
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) { rest.push(a); continue; }
    let key = a.slice(2);
    let val;
    const eq = key.indexOf('=');
    if (eq >= 0) { val = key.slice(eq + 1); key = key.slice(0, eq); } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) { val = argv[++i]; } else { val = 'true'; }
    key = key.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${a.slice(2).split('=')[0]}`);
    const d = defaults[key];
    if (typeof d === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n)) throw new Error(`--${key} wants a number, got ${val}`);
      opts[key] = n;
    } else if (typeof d === 'boolean') {
      opts[key] = val !== 'false' && val !== '0';
    } else {
      opts[key] = val;
    }
  }
  return { opts, rest };
}

// Only loopback targets: the benchmark never sends traffic anywhere else.
function checkLoopback(url) {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!(host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host))) {
    throw new Error(`refusing target ${url}: loopback addresses only`);
  }
  return u;
}

function log(...parts) {
  process.stderr.write(`[loadgen ${(now() / 1000).toFixed(1)}s] ${parts.join(' ')}\n`);
}

// Growable float sample store; percentiles by sorting once at the end.
class Samples {
  constructor(cap = 8_000_000) { this.a = new Float64Array(1024); this.n = 0; this.cap = cap; this.dropped = 0; }
  add(v) {
    if (this.n === this.a.length) {
      if (this.n >= this.cap) { this.dropped++; return; }
      const b = new Float64Array(Math.min(this.cap, this.a.length * 2));
      b.set(this.a); this.a = b;
    }
    this.a[this.n++] = v;
  }
  percentile(p) {
    if (this.n === 0) return null;
    const s = this.a.subarray(0, this.n).slice().sort();
    return s[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))];
  }
  summary(withCdf = false) {
    const n = this.n;
    if (n === 0) return { count: 0 };
    const s = this.a.subarray(0, n).slice().sort();
    const q = (p) => s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
    let sum = 0;
    for (let i = 0; i < n; i++) sum += s[i];
    const r = {
      count: n, min: round(s[0]), mean: round(sum / n), p50: round(q(50)), p90: round(q(90)),
      p95: round(q(95)), p99: round(q(99)), p999: round(q(99.9)), max: round(s[n - 1]),
    };
    if (this.dropped) r.dropped = this.dropped;
    // 101 points q0..q100 for a CDF plot
    if (withCdf) r.cdf = Array.from({ length: 101 }, (_, i) => round(i === 0 ? s[0] : q(i)));
    return r;
  }
}

function round(v, d = 3) {
  const f = 10 ** d;
  return Math.round(v * f) / f;
}

// The generator's own CPU over a window, as % of one core.
class CpuMeter {
  constructor() { this.start(); }
  start() { this.c0 = process.cpuUsage(); this.t0 = now(); }
  read() {
    const c = process.cpuUsage(this.c0);
    const wallMs = now() - this.t0;
    const pct = wallMs > 0 ? (100 * (c.user + c.system) / 1000) / wallMs : 0;
    return { cpu_pct: round(pct, 1), user_s: round(c.user / 1e6), system_s: round(c.system / 1e6), wall_s: round(wallMs / 1000) };
  }
}

let CLK_TCK = 100;
try {
  CLK_TCK = Number(require('child_process').execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch (e) { /* keep 100 */ }

// Server process figures from /proc (same machine): CPU seconds and resident memory.
class ServerProc {
  constructor(pids) {
    this.pids = String(pids || '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  }
  get enabled() { return this.pids.length > 0; }
  cpuSeconds() {
    let ticks = 0;
    for (const pid of this.pids) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
      } catch (e) { return null; }
    }
    return ticks / CLK_TCK;
  }
  rssKb() {
    let kb = 0;
    for (const pid of this.pids) {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
        kb += m ? Number(m[1]) : 0;
      } catch (e) { return null; }
    }
    return kb;
  }
  // bytes the processes had the kernel write to storage (write_bytes of /proc/PID/io): the WAL, checkpoints
  diskWriteBytes() {
    let bytes = 0;
    for (const pid of this.pids) {
      try {
        const m = /^write_bytes:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'));
        if (!m) return null;
        bytes += Number(m[1]);
      } catch (e) { return null; }
    }
    return bytes;
  }
  snapshot() {
    return this.enabled ? { cpu_s: this.cpuSeconds(), rss_kb: this.rssKb(), disk_write_bytes: this.diskWriteBytes(), t: now() } : null;
  }
  static delta(a, b) {
    if (!a || !b || a.cpu_s == null || b.cpu_s == null) return null;
    const wall = (b.t - a.t) / 1000;
    const disk = a.disk_write_bytes == null || b.disk_write_bytes == null ? null : b.disk_write_bytes - a.disk_write_bytes;
    return { cpu_s: round(b.cpu_s - a.cpu_s), cpu_pct: round((100 * (b.cpu_s - a.cpu_s)) / wall, 1), rss_kb: b.rss_kb,
      disk_written_kb: disk === null ? null : round(disk / 1024, 1) };
  }
}

// Event-loop delay of the generator itself: a high p99 means the generator,
// not the server, added latency.
function loopDelay() {
  const RES = 10; // ms; the histogram holds whole timer periods, so the period is taken off
  const h = monitorEventLoopDelay({ resolution: RES });
  h.enable();
  const ms = (ns) => round(Math.max(0, ns / 1e6 - RES));
  return {
    reset() { h.reset(); },
    read() { return { p50_ms: ms(h.percentile(50)), p99_ms: ms(h.percentile(99)), max_ms: ms(h.max) }; },
  };
}

// Generator CPU above 90% of one core means the figure may be the generator's limit.
function generatorFields(cpu, lag) {
  return { generator: { ...cpu, loop_delay: lag, bound: cpu.cpu_pct > 90 } };
}

function emit(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Run `fn` over items with at most `limit` at once.
async function pool(items, limit, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      await fn(items[k], k);
    }
  });
  await Promise.all(workers);
}

function textOf(size, head) {
  // head, then padding to `size` characters: the text is plain ASCII, no escaping on the wire
  if (head.length >= size) return head;
  return head + ' ' + 'x'.repeat(size - head.length - 1);
}

module.exports = {
  now, parseArgs, checkLoopback, log, Samples, round, CpuMeter, ServerProc, loopDelay,
  generatorFields, emit, sleep, pool, textOf,
};
