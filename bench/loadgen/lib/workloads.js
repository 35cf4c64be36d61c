'use strict';
// The Socket.IO-over-WebSocket workloads of part (b): fanout, idle, capacity, persist.
// (latency and transport are the open-loop chat load in chat.js.)

const { now, log, Samples, round, CpuMeter, ServerProc, loopDelay, generatorFields, sleep, pool, textOf } = require('./common');
const { makeClient, isMessageEvent } = require('./sio');
const { runChat } = require('./chat');

// Connect `n` Socket.IO clients over WebSocket and join each to roomOf(i); client i goes to
// the server ctx.bases[i % servers] (--urls), so that a room's members are spread evenly.
// Returns {clients, failed, errors, seconds}; failures are counted, not fatal.
async function connectJoin(ctx, n, users, roomOf, { offset = 0, setup } = {}) {
  const clients = new Array(n);
  const errors = [];
  let failed = 0;
  const t = now();
  let done = 0;
  const idx = Array.from({ length: n }, (_, i) => i);
  await pool(idx, ctx.opts.connectConcurrency, async (i) => {
    const c = makeClient('ws', ctx.bases[(offset + i) % ctx.bases.length], users[(offset + i) % users.length].token);
    if (setup) setup(c, offset + i);
    try {
      await c.connect();
      const r = await c.call('join', { room: roomOf(offset + i) });
      if (!r || !r.ok) throw new Error(`join: ${JSON.stringify(r)}`);
      clients[i] = c;
    } catch (e) {
      failed++;
      if (errors.length < 3) errors.push(e.message);
      c.close();
    }
    done++;
    if (n >= 2000 && done % 1000 === 0) log(`connected ${done}/${n}`);
  });
  return { clients: clients.filter(Boolean), failed, errors, seconds: round((now() - t) / 1000) };
}

function countError(errors, ack) {
  const code = (ack && ack.error && ack.error.code) || 'no_ack';
  errors[code] = (errors[code] || 0) + 1;
  return code === 'rate_limited' ? 1000 * (Number(ack.error.retry_after) || 1) : 0;
}

// ------------------------------------------------------------------ fanout
// One room of N clients; `senders` of them each keep at most `inflight` messages unacked.
async function fanout(ctx, o) {
  const users = await ctx.tokens(Math.max(o.senders, o.users > 0 ? o.users : 10));
  const room = `fanout-${ctx.runId}`;
  let counting = false; let delivered = 0; let deliveredTotal = 0;
  const setup = (c) => {
    c.onPacket = (p) => {
      if (isMessageEvent(p)) { deliveredTotal++; if (counting) delivered++; }
    };
  };
  const conn = await connectJoin(ctx, o.clients, users, () => room, { setup });
  log(`fanout: ${conn.clients.length}/${o.clients} clients joined in ${conn.seconds}s`);
  const senders = conn.clients.slice(0, o.senders); // clients 0..senders-1 hold distinct users
  let stopping = false; let acked = 0; let ackedTotal = 0; let inflightTotal = 0; let k = 0;
  const errors = {};
  const ackLat = new Samples();
  const pump = (c, s) => {
    while (!stopping && c.inflight < o.inflight && now() >= c.pauseUntil) {
      c.inflight++; inflightTotal++;
      const id = k++;
      const t = now();
      c.emit('message', { room, text: textOf(o.textSize, `f${s}:${id}`), client_id: `${ctx.runId}-f${id}` }, (ack) => {
        c.inflight--; inflightTotal--;
        if (ack && ack.ok) { ackedTotal++; if (counting) { acked++; ackLat.add(now() - t); } } else {
          const pause = countError(errors, ack);
          if (pause) { c.pauseUntil = now() + pause; setTimeout(() => pump(c, s), pause); }
        }
        pump(c, s);
      });
    }
  };
  senders.forEach((c, s) => { c.inflight = 0; c.pauseUntil = 0; pump(c, s); });
  await sleep(o.warmup * 1000);
  const cpu = new CpuMeter(); const lag = loopDelay(); const s0 = ctx.server.snapshot();
  counting = true;
  const t0 = now();
  await sleep(o.duration * 1000);
  counting = false;
  const wall = (now() - t0) / 1000;
  const s1 = ctx.server.snapshot(); const gen = cpu.read(); const lagR = lag.read();
  stopping = true;
  const tStop = now();
  while (inflightTotal > 0 && now() - tStop < 5000) await sleep(20);
  await sleep(200);
  for (const c of conn.clients) c.close();
  return {
    clients: o.clients, clients_joined: conn.clients.length, senders: senders.length, inflight: o.inflight,
    deliveries_per_s: round(delivered / wall, 1),
    acked_per_s: round(acked / wall, 1),
    // each acked message should reach every client: delivered / (acked x clients)
    delivery_ratio_total: ackedTotal ? round(deliveredTotal / (ackedTotal * conn.clients.length), 4) : null,
    ack_ms: ackLat.summary(),
    server: ServerProc.delta(s0, s1),
    server_cpu_us_per_delivery: s0 && delivered ? round((ServerProc.delta(s0, s1).cpu_s * 1e6) / delivered, 2) : null,
    errors: { connect: conn.failed, connect_samples: conn.errors, acks: errors, unacked_at_end: inflightTotal },
    ...generatorFields(gen, lagR),
  };
}

// ------------------------------------------------------------------ idle
// N connections joined to one room, held idle; then single broadcasts timed to reach all.
async function idle(ctx, o) {
  const users = await ctx.tokens(Math.min(o.clients, o.users > 0 ? o.users : 50));
  const room = `idle-${ctx.runId}`;
  const before = ctx.server.snapshot();
  let onDelivery = null;
  const setup = (c) => { c.onPacket = (p) => { if (onDelivery && isMessageEvent(p)) onDelivery(p); }; };
  const genCpu = new CpuMeter();
  const conn = await connectJoin(ctx, o.clients, users, () => room, { setup });
  const connected = conn.clients.length;
  log(`idle: ${connected}/${o.clients} connected and joined in ${conn.seconds}s`);
  process.stderr.write(JSON.stringify({ event: 'ready', connected, failed: conn.failed, seconds: conn.seconds }) + '\n');
  if (o.waitStdin) {
    await new Promise((resolve) => { process.stdin.once('data', resolve); process.stdin.once('end', resolve); });
    process.stdin.pause();
  } else {
    await sleep(o.hold * 1000);
  }
  const held = ctx.server.snapshot();
  const connectServer = before && held ? round(((held.cpu_s - before.cpu_s) * 1e6) / Math.max(1, connected), 1) : null;
  const connectCpu = genCpu.read();
  const cpu = new CpuMeter(); const lag = loopDelay();
  const broadcasts = [];
  for (let b = 0; b < o.broadcasts && connected > 0; b++) {
    const sender = conn.clients[b % connected];
    const times = new Samples();
    let got = 0;
    const t = now();
    let ackMs = null;
    let acked = false;
    const done = new Promise((resolve) => {
      const timer = setTimeout(resolve, o.broadcastTimeout * 1000);
      const check = () => { if (acked && got === connected) { clearTimeout(timer); resolve(); } };
      onDelivery = () => { times.add(now() - t); got++; check(); };
      sender.emit('message', { room, text: textOf(o.textSize, `idle:${b}`), client_id: `${ctx.runId}-i${b}` }, (ack) => {
        ackMs = round(now() - t); acked = true;
        if (!ack || !ack.ok) log(`broadcast ${b}: ack ${JSON.stringify(ack)}`);
        check();
      });
    });
    await done;
    onDelivery = null;
    const s = times.summary();
    broadcasts.push({ reached: got, reach_all_ms: got === connected ? s.max : null, p50_ms: s.p50, p99_ms: s.p99, ack_ms: ackMs });
    log(`broadcast ${b}: ${got}/${connected} in ${s.max} ms`);
    await sleep(o.gap * 1000);
  }
  const gen = cpu.read(); const lagR = lag.read();
  for (const c of conn.clients) c.close();
  const all = broadcasts.map((x) => x.reach_all_ms).filter((x) => x !== null).sort((a, b) => a - b);
  const perConn = before && held && connected ? round((held.rss_kb - before.rss_kb) / connected, 2) : null;
  return {
    clients: o.clients, connected, connect_s: conn.seconds,
    connect_per_s: round(connected / Math.max(conn.seconds, 0.001), 1),
    broadcasts,
    reach_all_ms_median: all.length ? all[Math.floor((all.length - 1) / 2)] : null,
    server_rss_kb: before ? { before: before.rss_kb, held: held.rss_kb, per_connection_kb: perConn } : null,
    server_cpu_us_per_connect: connectServer, // connect + join, hold included
    errors: { connect: conn.failed, connect_samples: conn.errors, missed_broadcasts: broadcasts.filter((x) => x.reach_all_ms === null).length },
    generator_connect: connectCpu,
    ...generatorFields(gen, lagR),
  };
}

// ------------------------------------------------------------------ capacity
// The websocket shootout's method: grow clients by `step`; at each size run `samples`
// broadcasts, `concurrent` at a time, each from a random client to the room; stop once
// the `percentile` round trip exceeds `limitMs`. Round trip ("all"): from send until every
// client got it; "ack": until the sender's ack (the shootout's broadcastResult).
async function capacity(ctx, o) {
  const users = await ctx.tokens(o.users > 0 ? o.users : 50);
  const room = `cap-${ctx.runId}`;
  const pending = new Map(); // broadcast id -> {t, remaining, resolve}
  // up to ~150k deliveries/s at 10k clients: find the broadcast id in the frame's bytes
  const MARK = Buffer.from('"text":"c');
  const setup = (c) => {
    c.onPacket = (p) => {
      if (!isMessageEvent(p)) return;
      let i = p.indexOf(MARK);
      if (i < 0) return;
      i += MARK.length;
      let id = 0;
      for (let d = p[i]; d >= 0x30 && d <= 0x39; d = p[++i]) id = id * 10 + (d - 0x30);
      const b = pending.get(id);
      if (b && --b.remaining === 0) b.finish();
    };
  };
  let clients = [];
  let failed = 0; const failSamples = [];
  const steps = [];
  let capacityClients = 0;
  let nextId = 0;
  const errors = {};
  const cpuAll = new CpuMeter();
  const deadline = now() + (o.maxSeconds - 10) * 1000;
  let stopReason = 'max_clients';
  while (clients.length < o.maxClients) {
    const add = Math.min(o.step, o.maxClients - clients.length);
    const conn = await connectJoin(ctx, add, users, () => room, { offset: clients.length, setup });
    clients = clients.concat(conn.clients);
    failed += conn.failed; failSamples.push(...conn.errors.slice(0, 3 - failSamples.length));
    if (conn.failed > 0) { stopReason = 'connect_failed'; log(`capacity: ${conn.failed} connections failed`); }
    await sleep(o.settle * 1000);
    const n = clients.length;
    const rttAll = new Samples(); const rttAck = new Samples();
    let timeouts = 0;
    const cpu = new CpuMeter(); const lag = loopDelay(); const s0 = ctx.server.snapshot();
    const one = () => new Promise((resolve) => {
      const id = nextId++;
      const sender = clients[Math.floor(Math.random() * n)];
      const t = now();
      let acked = false; let all = false;
      const b = { t, remaining: n, finish: null };
      const timer = setTimeout(() => { timeouts++; pending.delete(id); resolve(); }, o.broadcastTimeout * 1000);
      const check = () => { if (acked && all) { clearTimeout(timer); resolve(); } };
      b.finish = () => { pending.delete(id); rttAll.add(now() - t); all = true; check(); };
      pending.set(id, b);
      sender.emit('message', { room, text: textOf(o.textSize, `c${id}:`), client_id: `${ctx.runId}-c${id}` }, (ack) => {
        if (ack && ack.ok) rttAck.add(now() - t); else countError(errors, ack);
        acked = true; check();
      });
    });
    let started = 0;
    const worker = async () => { while (started < o.samples) { started++; await one(); } };
    await Promise.all(Array.from({ length: o.concurrent }, worker));
    const gen = cpu.read(); const s1 = ctx.server.snapshot();
    const all = rttAll.summary(); const ack = rttAck.summary();
    const chosen = o.rttMode === 'ack' ? rttAck : rttAll;
    const pv = timeouts > 0 || chosen.n === 0 ? Infinity : chosen.percentile(o.percentile);
    const pass = pv <= o.limitMs;
    steps.push({
      clients: n, pass, [`p${o.percentile}_ms`]: Number.isFinite(pv) ? round(pv) : null,
      rtt_all_ms: { min: all.min, p50: all.p50, p95: all.p95, max: all.max },
      rtt_ack_ms: { min: ack.min, p50: ack.p50, p95: ack.p95, max: ack.max },
      timeouts, server: ServerProc.delta(s0, s1), ...generatorFields(gen, lag.read()),
    });
    log(`capacity: ${n} clients p${o.percentile}=${Number.isFinite(pv) ? pv.toFixed(1) : 'timeout'} ms (${o.rttMode}) ${pass ? 'ok' : 'over the limit'} gen ${gen.cpu_pct}%`);
    if (!pass) { stopReason = 'limit'; break; }
    capacityClients = n;
    if (conn.failed > 0) break;
    if (now() > deadline) { stopReason = 'time'; break; }
  }
  for (const c of clients) c.close();
  return {
    capacity_clients: capacityClients, stop_reason: stopReason,
    rule: `p${o.percentile} of the ${o.rttMode} round trip <= ${o.limitMs} ms, ${o.concurrent} broadcasts at once, ${o.samples} per step`,
    steps,
    errors: { connect: failed, connect_samples: failSamples, acks: errors },
    generator_bound_any: steps.some((s) => s.generator.bound),
    generator: cpuAll.read(),
  };
}

// ------------------------------------------------------------------ persist
// `senders` clients, each a distinct user, each keeping `inflight` messages unacked: acked/s.
async function persist(ctx, o) {
  const users = await ctx.tokens(Math.max(o.senders, o.users));
  const nRooms = o.rooms > 0 ? o.rooms : o.senders;
  const roomOf = (i) => `persist-${ctx.runId}-${i % nRooms}`;
  const conn = await connectJoin(ctx, o.senders, users, roomOf);
  log(`persist: ${conn.clients.length}/${o.senders} senders joined ${nRooms} rooms in ${conn.seconds}s`);
  let counting = false; let stopping = false; let acked = 0; let inflightTotal = 0; let k = 0;
  const errors = {};
  const lat = new Samples();
  const pump = (c, s) => {
    while (!stopping && c.inflight < o.inflight && now() >= c.pauseUntil) {
      c.inflight++; inflightTotal++;
      const id = k++;
      const t = now();
      c.emit('message', { room: roomOf(s), text: textOf(o.textSize, `p${s}:${id}`), client_id: `${ctx.runId}-p${id}` }, (ack) => {
        c.inflight--; inflightTotal--;
        if (ack && ack.ok) { if (counting) { acked++; lat.add(now() - t); } } else {
          const pause = countError(errors, ack);
          if (pause) { c.pauseUntil = now() + pause; setTimeout(() => pump(c, s), pause); }
        }
        pump(c, s);
      });
    }
  };
  conn.clients.forEach((c, s) => { c.inflight = 0; c.pauseUntil = 0; pump(c, s); });
  await sleep(o.warmup * 1000);
  const cpu = new CpuMeter(); const lag = loopDelay(); const s0 = ctx.server.snapshot();
  counting = true;
  const t0 = now();
  await sleep(o.duration * 1000);
  counting = false;
  const wall = (now() - t0) / 1000;
  const s1 = ctx.server.snapshot(); const gen = cpu.read(); const lagR = lag.read();
  stopping = true;
  const tStop = now();
  while (inflightTotal > 0 && now() - tStop < 5000) await sleep(20);
  for (const c of conn.clients) c.close();
  const server = ServerProc.delta(s0, s1);
  return {
    senders: o.senders, senders_joined: conn.clients.length, rooms: nRooms, inflight: o.inflight,
    acked_per_s: round(acked / wall, 1),
    ack_ms: lat.summary(),
    server, server_cpu_us_per_message: server && acked ? round((server.cpu_s * 1e6) / acked, 1) : null,
    errors: { connect: conn.failed, connect_samples: conn.errors, acks: errors, unacked_at_end: inflightTotal },
    ...generatorFields(gen, lagR),
  };
}

const latency = (ctx, o) => runChat(ctx, Object.assign({}, o, { way: 'ws' }));
const transport = (ctx, o) => runChat(ctx, o);

module.exports = { fanout, idle, capacity, persist, latency, transport };
