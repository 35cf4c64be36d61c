#!/usr/bin/env node
'use strict';
// Every workload once at a small size, checked for sane figures.
//   node smoke.js                       starts bench/reference on a free port and stops it after
//   node smoke.js --url http://127.0.0.1:P [--server-pid PID] [--token-cache F]   an already running server
// Ends with the line "N passed, N failed"; exit 1 when any failed.

const path = require('path');
const { spawn } = require('child_process');
const { parseArgs } = require('./lib/common');

const { opts } = parseArgs(process.argv.slice(2), { url: '', serverPid: '', tokenCache: '', users: 10 });
const LOADGEN = path.join(__dirname, 'loadgen.js');

const CASES = [
  ['fanout', ['--clients', '50', '--duration', '2', '--warmup', '0.5'],
    (r) => r.deliveries_per_s > 0 && r.delivery_ratio_total === 1],
  ['latency', ['--clients', '20', '--rooms', '4', '--rate', '5', '--duration', '2', '--warmup', '0.5'],
    (r) => r.delivered_ratio === 1 && r.latency_ms.count > 0],
  ['persist', ['--senders', '10', '--duration', '2', '--warmup', '0.5'], (r) => r.acked_per_s > 0],
  ['idle', ['--clients', '200', '--broadcasts', '2', '--hold', '0.2'],
    (r) => r.connected === 200 && r.errors.missed_broadcasts === 0],
  ['capacity', ['--step', '100', '--max-clients', '200', '--samples', '8'], (r) => r.capacity_clients >= 100],
  ['storm', ['--clients', '100', '--rooms', '5', '--before', '0.5'], (r) => r.connected === 100 && r.sent_before > 0],
  ...['ws', 'sio-polling', 'short-poll', 'long-poll', 'sse'].map((way) => ['transport',
    ['--way', way, '--clients', '20', '--rate', '2', '--duration', '2', '--warmup', '1.2', '--interval', '250'],
    (r) => r.delivered_ratio >= 0.99 && r.wire.bytes_down > 0 && r.latency_ms.count > 0]),
];

function run(args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

function startReference() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'reference', 'server.js'), '--port', '0'],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) resolve({ child, port: JSON.parse(line).listening });
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`reference exited ${code}`)));
  });
}

async function main() {
  let ref = null;
  let { url, serverPid } = opts;
  if (!url) {
    ref = await startReference();
    url = `http://127.0.0.1:${ref.port}`;
    serverPid = String(ref.child.pid);
  }
  let passed = 0; let failed = 0;
  // the reference started here is stopped by its PID however this ends
  process.on('exit', () => { if (ref) ref.child.kill('SIGTERM'); });
  for (const [name, args, check] of CASES) {
    const common = ['--url', url, '--users', String(opts.users), '--max-seconds', '60'];
    if (serverPid) common.push('--server-pid', serverPid);
    if (opts.tokenCache) common.push('--token-cache', opts.tokenCache);
    const r = await run([LOADGEN, name, ...args, ...common], 70000);
    let result = null;
    try { result = JSON.parse(r.out.trim().split('\n').pop()); } catch (e) { result = null; }
    let good = false;
    try { good = !!(result && result.ok && check(result)); } catch (e) { good = false; }
    const what = `${name}${name === 'transport' ? ' ' + args[1] : ''}`;
    if (good) {
      passed++;
      const fig = result.deliveries_per_s ?? result.acked_per_s ?? result.reach_all_ms_median ?? result.capacity_clients
        ?? result.connect_s;
      console.log(`ok   ${what} (${fig}; generator ${(result.generator || {}).cpu_pct}% of a core)`);
    } else {
      failed++;
      console.log(`FAIL ${what}: ${result ? JSON.stringify(result).slice(0, 600) : r.err.slice(-600)}`);
    }
  }
  if (ref) { ref.child.removeAllListeners('exit'); ref.child.kill('SIGTERM'); }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
