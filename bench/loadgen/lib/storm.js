'use strict';
// The reconnect storm: N clients in rooms, a trickle of messages in every room; the driver
// restarts the server (SIGTERM or kill -9) and every client comes back as the browser client
// does (socket.io-client's backoff), re-joins with `since` = the last seq it holds, and must
// end up with every seq of its room: none missing, none changed. With --handshake-joins each
// client asks for its room in the Socket.IO handshake (`auth.join`, Papo's protocol 1.1), as
// Papo's browser client does, instead of a `join` event after it.
//
// Phases: connect + join (timed, server CPU per connection: the figure the reference has too);
// the trickle for --before seconds; stderr {"event":"ready"}; then, with --restart, wait for the
// drop, the reconnects and re-joins (recovered_s: first drop -> last re-join acked), one marker
// message per room, and the check. Without --restart it stops after the connect phase.

const { now, log, round, CpuMeter, loopDelay, generatorFields, sleep, pool, textOf, Samples } = require('./common');
const { makeClient } = require('./sio');

// socket.io-client's Backoff, with the browser client's settings (static/js: 500 ms, at most 4 s).
function backoff(attempt, o) {
  const ms = Math.min(o.reconnectDelay * 2 ** attempt, o.reconnectDelayMax);
  const deviation = Math.floor(Math.random() * o.randomization * ms);
  return Math.min(o.reconnectDelayMax, Math.random() < 0.5 ? ms - deviation : ms + deviation);
}

// One client: the seqs it holds (contiguous high-water mark + any above it), its connection.
class Member {
  constructor(i, room, token, base) {
    this.i = i; this.room = room; this.token = token; this.base = base;
    this.hw = 0; this.above = new Set(); this.changed = 0;
    this.c = null; this.back = false; this.attempts = 0; this.drops = 0; this.dropsBefore = 0;
  }

  take(m, acked) {
    const want = acked.get(m.seq);
    if (want !== undefined && want !== m.client_id) this.changed++;
    if (m.seq <= this.hw) return;
    this.above.add(m.seq);
    while (this.above.delete(this.hw + 1)) this.hw++;
  }
}

async function storm(ctx, o) {
  const users = await ctx.tokens(Math.min(o.clients, o.users > 0 ? o.users : 50));
  const nRooms = Math.max(1, o.rooms);
  const roomName = (r) => `storm-${ctx.runId}-${r}`;
  const acked = new Map(); // per room: seq -> client_id of every acked message
  const maxSeq = new Array(nRooms).fill(0);
  const members = Array.from({ length: o.clients }, (_, i) => new Member(
    i, i % nRooms, users[i % users.length].token, ctx.bases[Math.floor(i / nRooms) % ctx.bases.length]));
  for (let r = 0; r < nRooms; r++) acked.set(r, new Map());
  const errors = { connect: 0, samples: [], sends: 0 };
  let firstDrop = null; let lastBack = null; let restarting = false;
  const backMs = new Samples(); // each client's re-join, ms after the first drop

  const take = (mb, m) => {
    if (m.seq > maxSeq[mb.room]) maxSeq[mb.room] = m.seq;
    mb.take(m, acked.get(mb.room));
  };

  // connect, join with since (0 the first time), replay what the join returned; a close meanwhile fails it
  let down = 0; let dropped = 0;
  const join = async (mb) => {
    const c = makeClient('ws', mb.base, mb.token);
    // with --handshake-joins, as Papo's browser client: the room in the handshake, answered by a `joined` event
    let joined = null;
    let pending = null;
    if (o.handshakeJoins) {
      c.auth = { join: [{ room: roomName(mb.room), since: mb.hw }] };
      pending = new Promise((resolve) => { joined = resolve; });
    }
    c.onEvent = (name, data) => {
      if (name === 'message' && data) take(mb, data);
      else if (name === 'joined' && joined) { joined(data); joined = null; }
    };
    const closed = new Promise((_, reject) => {
      c.onClose = () => (mb.c === c && mb.back ? onDrop(mb) : reject(new Error('closed while joining')));
    });
    closed.catch(() => {});
    mb.c = c;
    await Promise.race([c.connect(o.connectTimeout * 1000), closed]);
    for (;;) {
      const r = await Promise.race([pending || c.call('join', { room: roomName(mb.room), since: mb.hw }, o.connectTimeout * 1000), closed]);
      pending = null;
      if (!r || !r.ok) throw new Error(`join: ${JSON.stringify(r)}`);
      for (const m of r.messages || []) take(mb, m);
      if (r.last_seq > maxSeq[mb.room]) maxSeq[mb.room] = r.last_seq;
      if (!r.truncated) break;
    }
    mb.back = true;
  };

  const reconnect = async (mb) => {
    let attempt = 0;
    while (!mb.back) {
      await sleep(backoff(attempt++, o));
      mb.attempts = Math.max(mb.attempts, attempt);
      try {
        await join(mb);
      } catch (e) {
        mb.c.close();
        if (errors.samples.length < 3) errors.samples.push(e.message);
      }
    }
    down--;
    if (restarting && firstDrop !== null) backMs.add(now() - firstDrop);
    if (restarting && down === 0 && dropped === members.length) lastBack = now();
  };

  function onDrop(mb) {
    mb.back = false; mb.drops++; down++;
    if (!restarting) errors.connect++;
    else if (mb.drops === 1 + mb.dropsBefore) dropped++;
    if (restarting && firstDrop === null) firstDrop = now();
    reconnect(mb);
  }

  const cpu0 = new CpuMeter(); const s0 = ctx.server.snapshot(); const t0 = now();
  await pool(members, o.connectConcurrency, async (mb) => {
    try { await join(mb); } catch (e) {
      errors.connect++;
      if (errors.samples.length < 3) errors.samples.push(e.message);
    }
  });
  const connectS = (now() - t0) / 1000;
  const s1 = ctx.server.snapshot(); const connectGen = cpu0.read();
  const connected = members.filter((mb) => mb.back).length;
  log(`storm: ${connected}/${o.clients} in ${nRooms} rooms connected and joined in ${connectS.toFixed(1)}s`);
  const connectCpu = s0 && s1 ? round(s1.cpu_s - s0.cpu_s, 2) : null;
  const result = {
    clients: o.clients, rooms: nRooms, servers: ctx.bases.length, connected,
    connect_s: round(connectS, 2), connect_per_s: round(connected / connectS, 1),
    server_cpu_s_connect: connectCpu,
    server_cpu_us_per_connect: connectCpu !== null && connected ? round((connectCpu * 1e6) / connected, 1) : null,
    connect_generator: connectGen,
  };
  if (connected < o.clients) throw new Error(`${o.clients - connected} clients could not connect: ${errors.samples.join('; ')}`);

  // the trickle: the first member of each room sends `rate` messages/s, one in flight
  let stopping = false;
  let sent = 0;
  const senders = members.slice(0, nRooms);
  const send = (mb, id) => new Promise((resolve) => {
    if (!mb.back) return resolve(false);
    const clientId = `${ctx.runId}-s${mb.room}-${id}`;
    mb.c.emit('message', { room: roomName(mb.room), text: textOf(o.textSize, clientId), client_id: clientId }, (ack) => {
      if (ack && ack.ok) { acked.get(mb.room).set(ack.message.seq, clientId); take(mb, ack.message); } else errors.sends++;
      resolve(!!(ack && ack.ok));
    });
    return undefined;
  });
  const trickle = senders.map(async (mb) => {
    let id = 0;
    await sleep(Math.random() * 1000 / o.rate);
    while (!stopping) {
      if (mb.back && await Promise.race([send(mb, id), sleep(2000).then(() => false)])) { id++; sent++; }
      await sleep(1000 / o.rate);
    }
  });
  await sleep(o.before * 1000);
  if (!o.restart) {
    stopping = true;
    await Promise.race([Promise.all(trickle), sleep(3000)]);
    members.forEach((mb) => mb.c && mb.c.close());
    return Object.assign(result, { restarted: false, sent_before: sent }, generatorFields(connectGen, { p50_ms: null }));
  }

  // the driver restarts the server now; the clients find out by their connections closing
  members.forEach((mb) => { mb.dropsBefore = mb.drops; });
  restarting = true;
  const cpu = new CpuMeter(); const lag = loopDelay();
  const tReady = now(); const wallReady = Date.now();
  process.stderr.write(JSON.stringify({ event: 'ready', connected, t_wall_ms: wallReady }) + '\n');
  const deadline = tReady + o.recoverSeconds * 1000;
  while (lastBack === null && now() < deadline) await sleep(20);
  const recovered = lastBack !== null;
  const backCount = members.filter((mb) => mb.back).length;
  const gen = cpu.read(); const lagR = lag.read();
  log(`storm: ${backCount}/${members.length} back ${recovered ? `in ${((lastBack - firstDrop) / 1000).toFixed(2)}s` : 'by the deadline'}`);

  // one marker per room from its sender, then every member must hold every seq up to it
  stopping = true;
  await Promise.race([Promise.all(trickle), sleep(3000)]);
  await Promise.all(senders.map((mb) => send(mb, 'end')));
  const settle = now() + o.checkSeconds * 1000;
  const complete = () => members.every((mb) => mb.hw >= maxSeq[mb.room]);
  while (!complete() && now() < settle) await sleep(20);
  const short = members.filter((mb) => mb.hw < maxSeq[mb.room]);
  const missing = short.reduce((a, mb) => a + maxSeq[mb.room] - mb.hw - mb.above.size, 0);
  const changed = members.reduce((a, mb) => a + mb.changed, 0);
  members.forEach((mb) => mb.c && mb.c.close());
  return Object.assign(result, {
    restarted: true, sent_before: sent, recovered, t_ready_wall_ms: wallReady,
    t_first_drop_wall_ms: firstDrop === null ? null : round(wallReady + firstDrop - tReady, 0),
    t_all_back_wall_ms: lastBack === null ? null : round(wallReady + lastBack - tReady, 0),
    recovered_s: recovered ? round((lastBack - firstDrop) / 1000, 2) : null,
    back: backCount, back_ms: backMs.summary(), attempts_max: Math.max(...members.map((mb) => mb.attempts)),
    clients_by_attempts: members.reduce((a, mb) => { a[mb.attempts] = (a[mb.attempts] || 0) + 1; return a; }, {}),
    drops_before_restart: errors.connect,
    messages_in_rooms: maxSeq.reduce((a, b) => a + b, 0),
    // changed: a member got a seq whose client_id differs from the one acked for it (an acked message lost)
    missing, clients_missing: short.length, changed,
    nothing_missing: short.length === 0 && changed === 0,
    errors: { sends: errors.sends, samples: errors.samples },
    ...generatorFields(gen, lagR),
  });
}

module.exports = { storm, backoff };
