#!/usr/bin/env node
'use strict';
// Papo's load generator: one workload per invocation, one JSON result line on stdout,
// progress on stderr. Targets loopback only; every run is bounded (--max-seconds).
//
//   node loadgen.js <workload> --url http://127.0.0.1:PORT [options]
//   node loadgen.js help
//
// Written in Node with raw Engine.IO v4 / Socket.IO v5 frames over its own WebSocket client
// (lib/wsframes.js) and no third-party code: one Node process on one core takes ~200k
// deliveries/s, which a Python client does not.

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const { parseArgs, checkLoopback, log, emit, ServerProc } = require('./lib/common');
const users = require('./lib/users');
const workloads = require('./lib/workloads');
const { storm } = require('./lib/storm');
const { WAYS, socketsPerClient } = require('./lib/clients');

const COMMON = {
  url: 'http://127.0.0.1:5000',
  urls: '', // comma-separated servers (processes of one cluster): fanout and latency spread their clients over them
  users: 0, // size of the user pool (0: the workload's default: fanout 10, latency and transport 20, idle and capacity 50, persist one per sender)
  userPrefix: 'bench_u',
  password: 'bench-password-1',
  tokenCache: '', // JSON file keeping tokens across invocations against one server run
  registerConcurrency: 4,
  serverPid: '', // comma-separated PIDs: server CPU and RSS from /proc around the window
  maxSeconds: 300, // hard limit for the whole invocation
  connectConcurrency: 100, // handshakes at once (eventlet's listen backlog is 50-ish)
  textSize: 64, // characters of message text
  label: '',
};

const SPECS = {
  fanout: {
    help: 'one room of N clients, `senders` each keeping <= `inflight` messages unacked: deliveries/s',
    defaults: { clients: 200, senders: 5, inflight: 50, duration: 10, warmup: 2 },
  },
  latency: {
    help: 'clients in rooms sending `rate` msg/s each, open loop: end-to-end latency from a timestamp in the text',
    defaults: { clients: 100, senders: 0, rooms: 10, roomSize: 10, rate: 20, duration: 10, warmup: 2, drain: 0, cdf: false,
      maxOutstanding: 1000, keepupP99Ms: 0, kernelCheck: false, roomPrefix: 'lat', interval: 1000, pollTimeout: 25,
      settle: 0 },
  },
  transport: {
    help: `the latency load over one way (--way ${WAYS.join('|')}): latency, bytes and requests per delivery`,
    defaults: { way: 'ws', clients: 100, senders: 0, rooms: 0, roomSize: 10, rate: 1, duration: 10, warmup: 2, drain: 0,
      cdf: true, maxOutstanding: 1000, keepupP99Ms: 0, kernelCheck: true, roomPrefix: 'tr', interval: 1000, pollTimeout: 25,
      settle: 0.5 },
  },
  idle: {
    help: 'N connections joined to one room and held; then single broadcasts timed until all have them',
    defaults: { clients: 1000, broadcasts: 3, hold: 1, waitStdin: false, gap: 0.5, broadcastTimeout: 30 },
  },
  capacity: {
    help: 'websocket-shootout method: grow by `step`, `concurrent` broadcasts, stop when p`percentile` RTT > `limit-ms`',
    defaults: { step: 1000, maxClients: 10000, concurrent: 4, samples: 40, limitMs: 250, percentile: 95,
      rttMode: 'all', settle: 0.5, broadcastTimeout: 10 },
  },
  storm: {
    help: 'N clients in rooms with a trickle of messages; with --restart the driver restarts the server after the '
      + '{"event":"ready"} line: seconds until all re-joined with since, and whether any seq is missing',
    defaults: { clients: 10000, rooms: 100, rate: 1, before: 3, restart: false, recoverSeconds: 120, checkSeconds: 10,
      handshakeJoins: false, connectTimeout: 8, reconnectDelay: 500, reconnectDelayMax: 4000, randomization: 0.5 },
  },
  persist: {
    help: '`senders` distinct users, each keeping `inflight` messages unacked: acked messages/s',
    defaults: { senders: 50, rooms: 0, inflight: 1, duration: 10, warmup: 2 },
  },
};

function usage() {
  const lines = ['usage: node loadgen.js <workload> --url http://127.0.0.1:PORT [--option value ...]', '', 'common options:'];
  for (const [k, v] of Object.entries(COMMON)) lines.push(`  --${kebab(k)} ${JSON.stringify(v)}`);
  for (const [name, s] of Object.entries(SPECS)) {
    lines.push('', `${name}: ${s.help}`);
    lines.push('  ' + Object.entries(s.defaults).map(([k, v]) => `--${kebab(k)} ${JSON.stringify(v)}`).join(' '));
  }
  return lines.join('\n');
}

function openFilesLimit() {
  try {
    const m = /Max open files\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch (e) {
    return null;
  }
}

function kebab(k) { return k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()); }

async function main() {
  const name = process.argv[2];
  if (!name || name === 'help' || name === '--help' || !SPECS[name]) {
    process.stderr.write(usage() + '\n');
    process.exit(name && name !== 'help' && name !== '--help' ? 2 : 0);
  }
  const spec = SPECS[name];
  const { opts } = parseArgs(process.argv.slice(3), Object.assign({}, COMMON, spec.defaults));
  const base = checkLoopback(opts.url);
  if (name === 'transport' && !WAYS.includes(opts.way)) throw new Error(`--way: one of ${WAYS.join(', ')}`);

  let need = Math.max(opts.clients || 0, opts.maxClients || 0, opts.senders || 0) + 200;
  if (name === 'transport') {
    const senders = opts.senders > 0 ? Math.min(opts.senders, opts.clients) : opts.clients;
    need = senders * socketsPerClient(opts.way, true) + (opts.clients - senders) * socketsPerClient(opts.way, false) + 200;
  }
  const have = openFilesLimit();
  if (have && have < need) {
    throw new Error(`${need} open files needed, the limit is ${have}: raise it (ulimit -n) before starting the generator`);
  }

  const started = new Date();
  const result = { workload: name, ok: false, label: opts.label, url: base.origin, started: started.toISOString() };
  const limit = setTimeout(() => {
    emit(Object.assign(result, { error: `time limit of ${opts.maxSeconds}s reached` }));
    process.exit(3);
  }, opts.maxSeconds * 1000);

  const ctx = {
    opts,
    base,
    bases: opts.urls ? opts.urls.split(',').map((u) => checkLoopback(u.trim())) : [base],
    runId: crypto.randomBytes(4).toString('hex'),
    server: new ServerProc(opts.serverPid),
    tokens: (n) => users.tokens(base, {
      n, prefix: opts.userPrefix, password: opts.password, concurrency: opts.registerConcurrency, cache: opts.tokenCache,
    }),
  };
  const params = {};
  for (const k of Object.keys(spec.defaults).concat(['users', 'textSize', 'connectConcurrency'])) params[kebab(k)] = opts[k];
  try {
    const figures = await (name === 'storm' ? storm : workloads[name])(ctx, opts);
    Object.assign(result, { ok: true, params, servers: ctx.bases.length }, figures);
  } catch (e) {
    Object.assign(result, { params, error: e.message });
    log(e.stack);
  }
  result.seconds = Math.round((Date.now() - started) / 100) / 10;
  // other work on the machine skews every figure: the driver can warn on a high load
  result.machine = { cpus: os.cpus().length, loadavg_1m_at_end: Math.round(os.loadavg()[0] * 100) / 100 };
  result.node = process.version;
  clearTimeout(limit);
  emit(result);
  process.exit(result.ok ? 0 : 1);
}

main().catch((e) => {
  emit({ workload: process.argv[2], ok: false, error: e.message });
  process.exit(2);
});
