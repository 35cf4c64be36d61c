'use strict';
// Chat clients of the five ways of the transport study, one interface:
//   start() -> Promise        connected and receiving the room
//   send(text, clientId, cb)  cb({ok, error?}) once the server accepted (ack or HTTP answer)
//   onText(text, tRecv)       set by the workload: one call per delivered message
//   stop()
// ways: ws (Socket.IO over WebSocket), sio-polling (Socket.IO over Engine.IO long-polling
// only), short-poll (GET /api/rooms/<r>/messages?after=N every interval), long-poll
// (GET /api/rooms/<r>/poll?after=N&timeout=S), sse (GET /api/stream?rooms=<r>, text/event-stream, read
// as EventSource does, reconnecting with Last-Event-ID). HTTP ways send with POST /api/rooms/<r>/messages.

const { makeClient, isMessageEvent } = require('./sio');
const http = require('http');
const { CountingAgent, request } = require('./http');
const { now, sleep } = require('./common');
const { SseParser } = require('./sse');

const TEXT_KEY = '"text":"';

// The text of a `message` event, without parsing the whole packet.
function textOfPacket(p) {
  const s = typeof p === 'string' ? p : p.latin1Slice(0, p.length);
  const i = s.indexOf(TEXT_KEY);
  if (i < 0) return null;
  return s.slice(i + TEXT_KEY.length, s.indexOf('"', i + TEXT_KEY.length));
}

class SioChatClient {
  constructor(way, base, token, room, meter) {
    this.room = room;
    this.c = makeClient(way, base, token, { meter });
    this.onText = null;
    this.errors = 0;
    this.c.onPacket = (p) => {
      if (!isMessageEvent(p)) return;
      const t = now();
      const text = textOfPacket(p);
      if (text !== null && this.onText) this.onText(text, t);
    };
  }

  async start() {
    await this.c.connect();
    const r = await this.c.call('join', { room: this.room });
    if (!r || !r.ok) throw new Error(`join ${this.room}: ${JSON.stringify(r)}`);
  }

  send(text, clientId, cb) {
    this.c.emit('message', { room: this.room, text, client_id: clientId }, cb);
  }

  stop() { return this.c.close(); }
}

class HttpChatClient {
  constructor(way, base, token, room, meter, { interval = 1000, pollTimeout = 25 } = {}) {
    this.way = way;
    this.base = base;
    this.room = room;
    this.meter = meter;
    this.interval = interval;
    this.pollTimeout = pollTimeout;
    this.agent = new CountingAgent(meter, { maxSockets: 2 });
    this.auth = { Authorization: `Bearer ${token}` };
    this.after = 0;
    this.stopped = false;
    this.onText = null;
    this.errors = 0;
    this.errorSample = null;
    this.sender = true; // the workload clears it for clients that only receive
    this.pathBase = `/api/rooms/${encodeURIComponent(room)}`;
  }

  async start() {
    if (this.way === 'sse') {
      await this._openStream();
    } else {
      // rooms are new for each run, so polling starts after seq 0; this first call checks the token
      await this._check();
      this.loop = this.way === 'short-poll' ? this._shortLoop() : this._longLoop();
    }
    // a sender beside a held stream or long poll opens its second socket now, as a page does before its
    // first send: no socket opens in the measurement window (the kernel's counts cover whole sockets)
    if (this.sender && this.way !== 'short-poll') await this._check();
  }

  async _check() {
    const r = await request(this.agent, this.base, 'GET', `${this.pathBase}/messages?after=0&limit=1`, { headers: this.auth });
    if (r.status !== 200 && r.status !== 404) {
      throw new Error(`GET ${this.pathBase}/messages: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    }
  }

  // The stream: resolves once the server answered 200 with text/event-stream. A stream that ends
  // or fails later is counted as an error and opened again after `retry` ms with Last-Event-ID,
  // as a browser's EventSource does.
  _openStream() {
    return new Promise((resolve, reject) => {
      const headers = Object.assign({ Accept: 'text/event-stream', 'Cache-Control': 'no-cache' }, this.auth);
      if (this.parser && this.parser.lastId) headers['Last-Event-ID'] = this.parser.lastId;
      const path = `/api/stream?rooms=${encodeURIComponent(this.room)}`;
      const req = http.request({ agent: this.agent, host: this.base.hostname, port: this.base.port, method: 'GET', path, headers }, (res) => {
        const type = String(res.headers['content-type'] || '');
        if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
          const chunks = [];
          res.setEncoding('utf8');
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => reject(new Error(`GET ${path}: HTTP ${res.statusCode} ${type} ${chunks.join('').slice(0, 200)}`)));
          return;
        }
        const last = this.parser;
        this.parser = new SseParser((ev) => this._event(ev));
        if (last) { this.parser.lastId = last.lastId; this.parser.retry = last.retry; }
        res.setEncoding('utf8');
        res.on('data', (chunk) => { this.tChunk = now(); this.parser.feed(chunk); });
        res.on('error', () => {}); // the close below counts it
        res.on('close', () => this._dropped(path, 'the stream ended'));
        this.stream = req;
        resolve();
      });
      if (this.meter) this.meter.requests++;
      req.on('error', (e) => { if (this.stream === req) this._dropped(path, e.message); else reject(e); });
      req.end();
    });
  }

  _event(ev) {
    if (ev.type !== 'message' || !this.onText) return;
    const m = JSON.parse(ev.data);
    if (m.seq > this.after) this.after = m.seq;
    this.onText(m.text, this.tChunk);
  }

  _dropped(path, why) {
    if (this.stopped || this.reopening) return;
    this._error(`GET ${path}: ${why}`);
    this.reopening = true;
    this.stream = null;
    setTimeout(() => {
      this.reopening = false;
      if (!this.stopped) this._openStream().catch((e) => this._dropped(path, e.message));
    }, (this.parser && this.parser.retry) || 1000);
  }

  _take(body) {
    const t = now();
    const j = JSON.parse(body);
    for (const m of j.messages) {
      if (m.seq > this.after) this.after = m.seq;
      if (this.onText) this.onText(m.text, t);
    }
    return j.has_more;
  }

  _error(what) {
    this.errors++;
    if (!this.errorSample) this.errorSample = what;
  }

  async _fetch(path, timeoutMs) {
    try {
      const r = await request(this.agent, this.base, 'GET', path, { headers: this.auth, meter: this.meter, timeoutMs });
      if (r.status === 200) return this._take(r.body);
      if (r.status !== 404) this._error(`GET ${path}: HTTP ${r.status} ${r.body.slice(0, 120)}`);
    } catch (e) {
      if (!this.stopped) this._error(`GET ${path}: ${e.message}`);
    }
    return null;
  }

  async _shortLoop() {
    await sleep(Math.random() * this.interval); // spread the clients over the interval
    let next = now();
    while (!this.stopped) {
      let more = true;
      while (more && !this.stopped) {
        more = await this._fetch(`${this.pathBase}/messages?after=${this.after}&limit=100`, 30000);
      }
      next += this.interval;
      const wait = next - now();
      if (wait > 0) await sleep(wait); else next = now();
    }
  }

  async _longLoop() {
    while (!this.stopped) {
      const got = await this._fetch(`${this.pathBase}/poll?after=${this.after}&timeout=${this.pollTimeout}`, (this.pollTimeout + 10) * 1000);
      if (got === null && !this.stopped && this.errors) await sleep(100);
    }
  }

  send(text, clientId, cb) {
    request(this.agent, this.base, 'POST', `${this.pathBase}/messages`, {
      body: { text, client_id: clientId }, headers: this.auth, meter: this.meter,
    }).then((r) => {
      if (r.status === 200 || r.status === 201) return cb({ ok: true });
      let error = { code: `http_${r.status}` };
      try { error = JSON.parse(r.body).error || error; } catch (e) { /* keep */ }
      if (r.status === 429) error.retry_after = Number(r.headers['retry-after']) || 1;
      return cb({ ok: false, error });
    }, (e) => cb({ ok: false, error: { code: 'network', message: e.message } }));
  }

  stop() {
    this.stopped = true;
    if (this.stream) this.stream.destroy();
    this.agent.destroy();
  }
}

const WAYS = ['ws', 'sio-polling', 'short-poll', 'long-poll', 'sse'];

// Sockets a client of `way` holds at most: WebSocket one; Engine.IO polling two (a GET held, POSTs and
// pongs); the other HTTP ways one to receive (a poll or the stream at a time) and one more to send.
function socketsPerClient(way, sender = true) {
  if (way === 'ws') return 1;
  if (way === 'sio-polling') return 2;
  return sender ? 2 : 1;
}

function makeChatClient(way, base, token, room, meter, opts) {
  if (way === 'ws' || way === 'sio-polling') return new SioChatClient(way, base, token, room, meter);
  if (way === 'short-poll' || way === 'long-poll' || way === 'sse') return new HttpChatClient(way, base, token, room, meter, opts);
  throw new Error(`unknown way ${way}: one of ${WAYS.join(', ')}`);
}

module.exports = { makeChatClient, textOfPacket, socketsPerClient, WAYS };
