'use strict';
// Reference peer for the benchmark: Node socket.io v4 with Papo's room semantics
// (PROTOCOL.md) for what the workloads use, everything in memory, nothing stored.
//
// Usage: node server.js [--port P] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379/N]   (or PORT=P)
// Prints one JSON line {"listening": port, "pid": pid} on stdout once bound.
// --redis: socket.io's Redis adapter (@socket.io/redis-adapter), so that several processes share
// their rooms' broadcasts, as Papo's processes do with REDIS_URL. Rooms' seq and history stay
// per process (the workloads that use several processes read only the text).

const http = require('http');
const { Server } = require('socket.io');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const PORT = Number(arg('--port', process.env.PORT || 5100));
const REDIS_URL = arg('--redis', '');
const HOST = arg('--host', '127.0.0.1');
if (!['127.0.0.1', 'localhost', '::1'].includes(HOST)) {
  console.error('refusing to bind %s: loopback only', HOST);
  process.exit(2);
}

const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const HISTORY_KEEP = 10000; // messages kept per room for replay and HTTP polling
const TOKEN_PREFIX = 'ref.';

// rooms: name -> {lastSeq, log: [Message] (oldest first, at most HISTORY_KEEP), keys: dedup key per log entry,
//                 dedup: Map("user\0client_id" -> Message), members: Map(user -> connection count),
//                 waiters: Set(fn) of long polls}
const rooms = new Map();

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { lastSeq: 0, log: [], keys: [], dedup: new Map(), members: new Map(), waiters: new Set(), streams: new Set() };
    rooms.set(name, r);
  }
  return r;
}

function err(code, message) {
  return { ok: false, error: { code, message } };
}

function userFromToken(token) {
  if (typeof token !== 'string' || token === '') return null;
  return token.startsWith(TOKEN_PREFIX) ? token.slice(TOKEN_PREFIX.length) : token;
}

let nextId = 1;

// Store and broadcast one message; a repeated client_id returns the first one.
function post(roomName, user, text, clientId) {
  const r = room(roomName);
  const key = clientId == null ? null : user + '\0' + clientId;
  if (key !== null) {
    const seen = r.dedup.get(key);
    if (seen) return { message: seen, created: false };
  }
  r.lastSeq += 1;
  const message = {
    id: String(nextId++), room: roomName, seq: r.lastSeq, user, text,
    ts: Date.now(), client_id: clientId == null ? null : clientId,
  };
  r.log.push(message);
  r.keys.push(key);
  if (key !== null) r.dedup.set(key, message);
  if (r.log.length > HISTORY_KEEP) {
    const drop = r.log.length - HISTORY_KEEP;
    r.log.splice(0, drop);
    for (const k of r.keys.splice(0, drop)) if (k !== null) r.dedup.delete(k);
  }
  io.to(roomName).emit('message', message);
  if (r.streams.size) {
    const event = `id: ${roomName}:${message.seq}\nevent: message\ndata: ${JSON.stringify(message)}\n\n`;
    for (const res of r.streams) res.write(event);
  }
  if (r.waiters.size) {
    const waiters = [...r.waiters];
    r.waiters.clear();
    for (const w of waiters) w();
  }
  return { message, created: true };
}

function after(r, seq, limit) {
  // log holds consecutive seqs ending at lastSeq
  const first = r.log.length ? r.log[0].seq : r.lastSeq + 1;
  const start = Math.max(0, seq + 1 - first);
  const slice = r.log.slice(start, start + limit);
  return { messages: slice, has_more: start + limit < r.log.length };
}


function validText(text) {
  if (typeof text !== 'string') return null;
  const t = text.trim();
  return t.length >= 1 && t.length <= 4000 ? t : null;
}

// ---------------------------------------------------------------- HTTP
function send(res, status, body, headers) {
  const data = JSON.stringify(body);
  res.writeHead(status, Object.assign({
    'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data),
  }, headers || {}));
  res.end(data);
}

function readJSON(req, cb) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => { size += c.length; if (size <= 1e6) chunks.push(c); });
  req.on('end', () => {
    if (size > 1e6) return cb(null, 'too_large');
    try { cb(JSON.parse(Buffer.concat(chunks).toString() || 'null')); } catch (e) { cb(null, 'invalid_payload'); }
  });
}

function bearerUser(req) {
  const h = req.headers.authorization || '';
  return h.startsWith('Bearer ') ? userFromToken(h.slice(7)) : null;
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/socket.io/')) return; // engine.io answers these
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
  if (req.method === 'POST' && (path === '/api/users' || path === '/api/tokens')) {
    return readJSON(req, (body, bad) => {
      if (bad || !body || typeof body.username !== 'string' || !body.username) {
        return send(res, 400, { error: { code: 'invalid_payload', message: 'username and password' } });
      }
      if (path === '/api/users') return send(res, 201, { username: body.username });
      return send(res, 200, { token: TOKEN_PREFIX + body.username, expires_in: 86400 });
    });
  }
  if (req.method === 'GET' && path === '/api/rooms') {
    const list = [...rooms].map(([name, r]) => ({ name, members: r.members.size, last_seq: r.lastSeq }));
    return send(res, 200, { rooms: list });
  }
  if (req.method === 'GET' && path === '/api/stream') return stream(req, res, url);
  const m = /^\/api\/rooms\/([^/]+)\/(messages|poll)$/.exec(path);
  if (m) {
    const user = bearerUser(req);
    if (!user) return send(res, 401, { error: { code: 'unauthorized', message: 'token required' } });
    const name = decodeURIComponent(m[1]);
    if (!ROOM_RE.test(name)) return send(res, 400, { error: { code: 'invalid_room', message: 'bad room' } });
    const r = room(name);
    if (m[2] === 'messages' && req.method === 'POST') {
      return readJSON(req, (body, bad) => {
        const text = body && validText(body.text);
        if (bad || !text) return send(res, 400, { error: { code: bad || 'invalid_message', message: 'bad text' } });
        const out = post(name, user, text, body.client_id);
        return send(res, out.created ? 201 : 200, { message: out.message });
      });
    }
    if (req.method !== 'GET') return send(res, 405, { error: { code: 'invalid_payload', message: 'method' } });
    const afterSeq = Number(url.searchParams.get('after') || 0);
    const limit = Math.min(100, Math.max(1, Number(url.searchParams.get('limit') || 100)));
    if (m[2] === 'messages') {
      const out = after(r, afterSeq, limit);
      return send(res, 200, { messages: out.messages, has_more: out.has_more });
    }
    // long poll
    const timeout = Math.min(30, Math.max(0, Number(url.searchParams.get('timeout') || 25)));
    const answer = () => {
      const out = after(r, afterSeq, limit);
      send(res, 200, { messages: out.messages, has_more: out.has_more });
    };
    if (r.lastSeq > afterSeq) return answer();
    let timer = null;
    const waiter = () => { clearTimeout(timer); answer(); };
    r.waiters.add(waiter);
    timer = setTimeout(() => { r.waiters.delete(waiter); send(res, 200, { messages: [], has_more: false }); }, timeout * 1000);
    req.on('close', () => { if (!res.writableEnded) { clearTimeout(timer); r.waiters.delete(waiter); } });
    return undefined;
  }
  return send(res, 404, { error: { code: 'not_found', message: 'no such route' } });
});

// Server-Sent Events, for the transport study's sse way: GET /api/stream?rooms=a,b, `message` events
// of this process's posts (no resume: the generator's streams do not drop), a comment every 15 s.
function stream(req, res, url) {
  if (!bearerUser(req)) return send(res, 401, { error: { code: 'unauthorized', message: 'token required' } });
  const names = (url.searchParams.get('rooms') || '').split(',').filter(Boolean);
  if (!names.length || !names.every((n) => ROOM_RE.test(n))) {
    return send(res, 400, { error: { code: 'invalid_room', message: 'bad room' } });
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  res.write('retry: 2000\n\n');
  for (const n of names) room(n).streams.add(res);
  const keepalive = setInterval(() => res.write(':\n\n'), 15000);
  req.on('close', () => { clearInterval(keepalive); for (const n of names) room(n).streams.delete(res); });
  return undefined;
}

// ---------------------------------------------------------------- Socket.IO
const io = new Server(server, { serveClient: false, cors: undefined });

io.use((socket, next) => {
  const user = userFromToken(socket.handshake.auth && socket.handshake.auth.token);
  if (!user) {
    const e = new Error('unauthorized');
    e.data = { code: 'unauthorized' };
    return next(e);
  }
  socket.data.user = user;
  return next();
});

function leaveRoom(socket, name) {
  const r = rooms.get(name);
  if (!r) return;
  const user = socket.data.user;
  const n = (r.members.get(user) || 0) - 1;
  if (n > 0) { r.members.set(user, n); return; }
  r.members.delete(user);
  io.to(name).emit('presence', { room: name, user, action: 'leave', members: [...r.members.keys()] });
}

io.on('connection', (socket) => {
  const user = socket.data.user;
  const guard = (fn) => (payload, ack) => {
    if (typeof ack !== 'function') return;
    if (!payload || typeof payload !== 'object') return ack(err('invalid_payload', 'object expected'));
    try { fn(payload, ack); } catch (e) { ack(err('invalid_payload', String(e.message))); }
  };

  socket.on('join', guard((p, ack) => {
    if (typeof p.room !== 'string' || !ROOM_RE.test(p.room)) return ack(err('invalid_room', 'bad room'));
    const r = room(p.room);
    if (!socket.rooms.has(p.room)) {
      socket.join(p.room);
      const n = (r.members.get(user) || 0) + 1;
      r.members.set(user, n);
      if (n === 1) {
        io.to(p.room).emit('presence', { room: p.room, user, action: 'join', members: [...r.members.keys()] });
      }
    }
    let messages; let truncated = false;
    if (Number.isInteger(p.since)) {
      const out = after(r, p.since, 500);
      messages = out.messages; truncated = out.has_more;
    } else {
      messages = r.log.slice(-50);
    }
    return ack({ ok: true, room: p.room, members: [...r.members.keys()], last_seq: r.lastSeq,
      messages: messages, truncated });
  }));

  socket.on('leave', guard((p, ack) => {
    if (socket.rooms.has(p.room)) { socket.leave(p.room); leaveRoom(socket, p.room); }
    ack({ ok: true });
  }));

  socket.on('message', guard((p, ack) => {
    if (typeof p.room !== 'string' || !ROOM_RE.test(p.room)) return ack(err('invalid_room', 'bad room'));
    if (!socket.rooms.has(p.room)) return ack(err('not_in_room', 'join first'));
    const text = validText(p.text);
    if (!text) return ack(err('invalid_message', 'text must be 1 to 4000 characters'));
    const out = post(p.room, user, text, p.client_id);
    return ack({ ok: true, message: out.message });
  }));

  socket.on('typing', guard((p, ack) => {
    if (!socket.rooms.has(p.room)) return ack(err('not_in_room', 'join first'));
    socket.to(p.room).emit('typing', { room: p.room, user, typing: !!p.typing });
    return ack({ ok: true });
  }));

  socket.on('history', guard((p, ack) => {
    const r = rooms.get(p.room);
    if (!r) return ack({ ok: true, messages: [], has_more: false });
    const limit = Math.min(100, Math.max(1, Number(p.limit) || 50));
    const before = Number.isInteger(p.before) ? p.before : r.lastSeq + 1;
    const older = r.log.filter((m) => m.seq < before);
    return ack({ ok: true, messages: older.slice(-limit), has_more: older.length > limit });
  }));

  socket.on('disconnecting', () => {
    for (const name of socket.rooms) if (name !== socket.id) leaveRoom(socket, name);
  });
});

// With --redis, bind only once the adapter's two connections are up: a broadcast before would stay local.
async function useRedis(url) {
  const { createClient } = require('redis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (e) => console.error('redis: %s', e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

(REDIS_URL ? useRedis(REDIS_URL) : Promise.resolve()).then(() => {
  server.listen(PORT, HOST, () => {
    process.stdout.write(JSON.stringify({ listening: server.address().port, pid: process.pid, redis: !!REDIS_URL }) + '\n');
  });
}, (e) => {
  console.error('redis adapter: %s', e.message);
  process.exit(2);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { io.close(); server.close(); process.exit(0); });
}
