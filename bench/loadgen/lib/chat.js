'use strict';
// Open-loop chat load: clients in rooms, each sending `rate` messages/s on a fixed
// schedule whether or not the server keeps up; every delivery's end-to-end latency
// from the send time written into the text. Serves `latency` (Socket.IO over WebSocket)
// and `transport` (any of the five ways).

const { now, log, Samples, round, CpuMeter, ServerProc, loopDelay, generatorFields, sleep, pool, textOf } = require('./common');
const { Meter } = require('./http');
const { makeChatClient } = require('./clients');
const { kernelBytes, kernelDelta } = require('./kernel');

async function runChat(ctx, o) {
  const { base } = ctx;
  const way = o.way;
  const n = o.clients;
  const nRooms = o.rooms > 0 ? o.rooms : Math.max(1, Math.ceil(n / o.roomSize));
  const users = await ctx.tokens(Math.min(n, o.users > 0 ? o.users : 20));
  const meter = new Meter();
  const roomName = (r) => `${o.roomPrefix}-${ctx.runId}-${r}`;
  const members = new Array(nRooms).fill(0);
  const clients = [];
  for (let i = 0; i < n; i++) {
    const r = i % nRooms;
    members[r]++;
    // room r holds clients r, r + nRooms, ...: alternate them over the servers (--urls)
    const server = ctx.bases[Math.floor(i / nRooms) % ctx.bases.length];
    clients.push(makeChatClient(way, server, users[i % users.length].token, roomName(r),
      meter, { interval: o.interval, pollTimeout: o.pollTimeout }));
  }

  // window [t0, t1): deliveries of messages sent in it are the sample
  let t0 = Infinity; let t1 = Infinity;
  const lat = new Samples();
  const ackLat = new Samples();
  let deliveredInWindow = 0; // arrivals during the window, any send time
  let deliveredOfWindow = 0; // arrivals (until the drain ends) of messages sent in the window
  let expectedOfWindow = 0;
  let lastDeliveryOfWindow = 0;
  const ackErrors = {};
  let sentInWindow = 0; let skipped = 0;
  let clientErrors = 0; const clientErrorSamples = [];

  const latArrivals = new Samples(); // deliveries arriving in the window, whenever sent
  const onText = (text, t) => {
    const ts = parseFloat(text);
    if (t >= t0 && t < t1) { deliveredInWindow++; latArrivals.add(t - ts); }
    if (ts >= t0 && ts < t1) {
      deliveredOfWindow++;
      lat.add(t - ts);
      lastDeliveryOfWindow = t;
    }
  };
  for (const c of clients) c.onText = onText;
  // every client receives; the first `senders` of them send (client i is in room i mod rooms, so
  // that they spread over the rooms)
  const nSenders = o.senders > 0 ? Math.min(o.senders, n) : n;
  clients.forEach((c, i) => { c.sender = i < nSenders; });

  const tConn = now();
  const startAll = (list) => pool(list, o.connectConcurrency, async (c) => {
    try {
      await c.start();
    } catch (e) {
      clientErrors++;
      if (clientErrorSamples.length < 3) clientErrorSamples.push(e.message);
      c.failed = true;
    }
  });
  // memory per idle client: the server's VmRSS after the first few clients (the server's first
  // requests load code and caches whatever their number) and once all of them are connected, idle
  const first = Math.min(n - 1, Math.max(1, Math.floor(n / 50)));
  await startAll(clients.slice(0, first));
  const rss0 = ctx.server.snapshot();
  await startAll(clients.slice(first));
  const connectS = (now() - tConn) / 1000;
  const live = clients.filter((c) => !c.failed);
  log(`${way}: ${live.length}/${n} clients in ${nRooms} rooms ready in ${connectS.toFixed(1)}s`);
  if (live.length === 0) throw new Error(`no client could start: ${clientErrorSamples.join('; ')}`);
  await sleep(o.settle * 1000);
  const rss1 = ctx.server.snapshot();
  const counted = clients.slice(first).filter((c) => !c.failed).length;
  const idleRss = rss0 && rss1 && rss0.rss_kb != null && rss1.rss_kb != null && counted > 0
    ? { first_clients: first, before_kb: rss0.rss_kb, idle_kb: rss1.rss_kb, clients_counted: counted,
      per_client_kb: round((rss1.rss_kb - rss0.rss_kb) / counted, 2),
      // server CPU per client over the same span: its connect, auth and subscription (and the settle)
      cpu_us_per_connect: rss0.cpu_s != null && rss1.cpu_s != null ? round(((rss1.cpu_s - rss0.cpu_s) * 1e6) / counted, 1) : null,
    } : null;

  // sending schedule: client i sends at start + phase_i + k/rate
  const period = 1000 / o.rate;
  let stopping = false;
  let seqNo = 0;
  const outstanding = new Array(n).fill(0);
  const start = now() + 50;
  const schedule = (i) => {
    const c = clients[i];
    if (c.failed) return;
    let k = 0;
    const phase = Math.random() * period;
    let pauseUntil = 0;
    const tick = () => {
      if (stopping) return;
      const t = now();
      if (t >= pauseUntil) {
        if (outstanding[i] >= o.maxOutstanding) {
          skipped++;
        } else {
          const inWin = t >= t0 && t < t1;
          if (inWin) { sentInWindow++; expectedOfWindow += members[i % nRooms]; }
          outstanding[i]++;
          const id = ++seqNo;
          c.send(textOf(o.textSize, `${t.toFixed(3)}:${id}`), `${ctx.runId}-${id}`, (ack) => {
            outstanding[i]--;
            const ta = now();
            if (ack && ack.ok) {
              if (inWin) ackLat.add(ta - t);
            } else {
              const code = (ack && ack.error && ack.error.code) || 'no_ack';
              ackErrors[code] = (ackErrors[code] || 0) + 1;
              if (inWin) expectedOfWindow -= members[i % nRooms];
              if (code === 'rate_limited') pauseUntil = ta + 1000 * (Number(ack.error.retry_after) || 1);
            }
          });
        }
      }
      k++;
      setTimeout(tick, Math.max(0, start + phase + k * period - now()));
    };
    setTimeout(tick, Math.max(0, start + phase - now()));
  };
  for (let i = 0; i < nSenders; i++) schedule(i);

  await sleep(50 + o.warmup * 1000);
  const cpu = new CpuMeter(); const lag = loopDelay();
  const kb0 = o.kernelCheck ? await kernelBytes(base.port) : null;
  const s0 = ctx.server.snapshot(); const b0 = meter.bytes();
  t0 = now(); t1 = t0 + o.duration * 1000;
  await sleep(o.duration * 1000);
  const s1 = ctx.server.snapshot(); const b1 = meter.bytes();
  const kb1 = o.kernelCheck ? await kernelBytes(base.port) : null;
  // the socket counters over the kernel's own window: `ss` reads the kernel as it ends, so each
  // snapshot of the counters is taken right after one
  const bk = meter.bytes();
  const gen = cpu.read(); const lagR = lag.read();
  stopping = true;
  const tStop = now();
  const drainMs = o.drain > 0 ? o.drain * 1000 : Math.max(3000, 2 * o.interval);
  while (deliveredOfWindow < expectedOfWindow && now() - tStop < drainMs) await sleep(20);
  await Promise.race([Promise.all(clients.map((c) => c.stop())), sleep(3000)]);

  const delivered = deliveredInWindow;
  const bytesUp = b1.written - b0.written; const bytesDown = b1.read - b0.read;
  const requests = b1.requests - b0.requests;
  const server = ServerProc.delta(s0, s1);
  const summary = lat.summary(o.cdf);
  const sendTarget = clients.slice(0, nSenders).filter((c) => !c.failed).length * o.rate;
  const sendRate = sentInWindow / o.duration;
  const deliveredRatio = expectedOfWindow > 0 ? deliveredOfWindow / expectedOfWindow : 0;
  const p99Limit = o.keepupP99Ms > 0 ? o.keepupP99Ms : (way === 'short-poll' ? 2 * o.interval + 1000 : 1000);
  const keptUp = sendRate >= 0.97 * sendTarget && deliveredRatio >= 0.99 && summary.count > 0 && summary.p99 <= p99Limit;
  const errorsHttp = clients.reduce((a, c) => a + (c.errors || 0), 0);
  const sampleHttp = clients.map((c) => c.errorSample).filter(Boolean).slice(0, 2);
  return {
    way,
    clients: n, clients_live: live.length, rooms: nRooms, senders: nSenders, rate_per_client: o.rate,
    connect_s: round(connectS),
    // the server's memory per client, connected and idle (polling ways: polling meanwhile)
    server_rss_kb: idleRss,
    send_target_per_s: sendTarget, sent_per_s: round(sendRate, 1), skipped_over_outstanding: skipped,
    deliveries_per_s: round(delivered / o.duration, 1),
    expected_deliveries: expectedOfWindow, delivered_of_window: deliveredOfWindow,
    delivered_ratio: round(deliveredRatio, 4),
    drain_ms: lastDeliveryOfWindow > t1 ? round(lastDeliveryOfWindow - t1, 1) : 0,
    latency_ms: summary,
    // a server that falls behind delivers little of the window's own messages before the
    // drain ends: the latency of what arrived during the window shows how far behind it is
    latency_arrivals_ms: latArrivals.summary(),
    ack_ms: ackLat.summary(),
    kept_up: keptUp, kept_up_rule: `sent>=97% of target, delivered>=99%, p99<=${p99Limit}ms`,
    wire: {
      bytes_up: bytesUp, bytes_down: bytesDown, requests,
      bytes_up_per_delivery: delivered ? round(bytesUp / delivered, 1) : null,
      bytes_down_per_delivery: delivered ? round(bytesDown / delivered, 1) : null,
      requests_per_delivery: delivered ? round(requests / delivered, 4) : null,
      kernel: kb0 && kb1 ? Object.assign(kernelDelta(kb0, kb1), { counters_down: bk.read - b0.read, counters_up: bk.written - b0.written }) : null,
    },
    server_cpu_us_per_delivery: server && delivered ? round((server.cpu_s * 1e6) / delivered, 2) : null,
    server_disk_kb_per_message: server && server.disk_written_kb != null && sentInWindow
      ? round(server.disk_written_kb / sentInWindow, 2) : null,
    server,
    errors: { clients: clientErrors, client_samples: clientErrorSamples, acks: ackErrors, http: errorsHttp, http_samples: sampleHttp },
    ...generatorFields(gen, lagR),
  };
}

module.exports = { runChat };
