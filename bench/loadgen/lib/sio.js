'use strict';
// Raw Socket.IO v5 / Engine.IO v4 clients, namespace "/", two transports with one interface:
//   SioWs:      GET /socket.io/?EIO=4&transport=websocket, one packet per frame
//   SioPolling: GET/POST /socket.io/?EIO=4&transport=polling&sid=..., packets joined by \x1e
// Packets: open `0{json}`, ping `2` -> pong `3`, connect `40{auth}` -> `40{"sid"}` or `44{error}`,
// event `42[name,data]`, event with ack `42<id>[name,data]`, ack `43<id>[data]`.
// The server's events reach `onPacket(pkt)` unparsed (Buffer for WebSocket, string for
// polling) when it is set, so a workload can count them without JSON work; else
// `onEvent(name, data)`.

const { WsConnection } = require('./wsframes');
const { CountingAgent, request } = require('./http');

const RS = '\x1e';

class SioBase {
  constructor(base, token, opts = {}) {
    this.base = base; // URL of the server (http://127.0.0.1:P)
    this.token = token;
    this.meter = opts.meter || null;
    this.onPacket = null;
    this.onEvent = null;
    this.onClose = null;
    this.auth = {}; // more of the CONNECT packet's auth than the token
    this.nextAck = 0;
    this.acks = new Map(); // ack id -> callback(ackObject)
    this.connected = false;
    this.closed = false;
    this._connect = null; // {resolve, reject, timer} while connecting
  }

  connect(timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this._fail(new Error('connect timeout')), timeoutMs);
      this._connect = { resolve, reject, timer };
      this._open();
    });
  }

  _fail(err) {
    if (this._connect) {
      const c = this._connect; this._connect = null;
      clearTimeout(c.timer); c.reject(err);
    }
    this.close();
  }

  // One Engine.IO packet from the server, as Buffer (WebSocket) or string (polling).
  _packet(p) {
    const isStr = typeof p === 'string';
    const c0 = isStr ? p.charCodeAt(0) : p[0];
    if (c0 === 0x34) { // '4' socket.io packet
      const c1 = isStr ? p.charCodeAt(1) : p[1];
      if (c1 === 0x32) { // '2' event
        if (this.onPacket) return this.onPacket(p);
        const s = isStr ? p : p.toString();
        const arr = JSON.parse(s.slice(s.indexOf('[')));
        if (this.onEvent) this.onEvent(arr[0], arr[1]);
        return undefined;
      }
      if (c1 === 0x33) { // '3' ack
        const s = isStr ? p : p.toString();
        const b = s.indexOf('[');
        const id = Number(s.slice(2, b));
        const cb = this.acks.get(id);
        if (cb) { this.acks.delete(id); cb(JSON.parse(s.slice(b))[0]); }
        return undefined;
      }
      if (c1 === 0x30) { // '0' connected
        this.connected = true;
        if (this._connect) { const c = this._connect; this._connect = null; clearTimeout(c.timer); c.resolve(this); }
        return undefined;
      }
      if (c1 === 0x34) { // '4' connect error
        const s = isStr ? p : p.toString();
        let data = s.slice(2);
        try { data = JSON.parse(data); } catch (e) { /* keep text */ }
        return this._fail(Object.assign(new Error(`connect_error ${JSON.stringify(data)}`), { data }));
      }
      if (c1 === 0x31) return this.close(); // '1' disconnected by the server
      return undefined;
    }
    if (c0 === 0x32) return this._send('3'); // ping -> pong
    if (c0 === 0x30) { // open: authenticate on namespace "/"
      const s = isStr ? p : p.toString();
      this.open = JSON.parse(s.slice(1));
      return this._send('40' + JSON.stringify({ token: this.token, ...this.auth }));
    }
    if (c0 === 0x31) return this.close(); // engine.io close
    return undefined; // noop '6' and the rest
  }

  emit(event, data, ack) {
    if (ack) {
      const id = this.nextAck++;
      this.acks.set(id, ack);
      this._send('42' + id + JSON.stringify([event, data]));
    } else {
      this._send('42' + JSON.stringify([event, data]));
    }
  }

  call(event, data, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${event}: no ack in ${timeoutMs} ms`)), timeoutMs);
      this.emit(event, data, (r) => { clearTimeout(timer); resolve(r); });
    });
  }

  _closed() {
    if (this.closed) return;
    this.closed = true;
    this.connected = false;
    if (this._connect) this._fail(new Error('closed while connecting'));
    if (this.onClose) this.onClose();
  }
}

class SioWs extends SioBase {
  _open() {
    const u = new URL('/socket.io/?EIO=4&transport=websocket', this.base);
    this.ws = new WsConnection(u, {
      onOpen: () => { if (this.meter) this.meter.track(this.ws.socket); },
      onMessage: (data) => this._packet(data),
      onError: (e) => this._fail(e),
      onClose: () => this._closed(),
    });
  }

  _send(s) {
    this.ws.send(s);
  }

  close() {
    if (this.ws) this.ws.terminate();
    this._closed();
  }
}

class SioPolling extends SioBase {
  constructor(base, token, opts = {}) {
    super(base, token, opts);
    this.agent = new CountingAgent(this.meter, { maxSockets: 2 });
    this.outbox = [];
    this.posting = false;
    this.sid = null;
  }

  _path() {
    const t = Math.random().toString(36).slice(2, 10); // cache buster, as engine.io-client sends
    return `/socket.io/?EIO=4&transport=polling&t=${t}${this.sid ? '&sid=' + this.sid : ''}`;
  }

  async _open() {
    try {
      const r = await request(this.agent, this.base, 'GET', this._path(), { meter: this.meter });
      if (r.status !== 200) throw new Error(`handshake HTTP ${r.status}: ${r.body.slice(0, 200)}`);
      const first = r.body.split(RS);
      const open = JSON.parse(first[0].slice(1));
      this.sid = open.sid;
      for (const p of first) this._packet(p);
      this._poll();
    } catch (e) {
      this._fail(e);
    }
  }

  async _poll() {
    while (!this.closed) {
      let r;
      try {
        r = await request(this.agent, this.base, 'GET', this._path(), { meter: this.meter, timeoutMs: 120000 });
      } catch (e) {
        return this._fail(e);
      }
      if (r.status !== 200) return this._fail(new Error(`poll HTTP ${r.status}: ${r.body.slice(0, 200)}`));
      const packets = r.body.split(RS);
      for (const p of packets) if (p.length) this._packet(p);
    }
    return undefined;
  }

  _send(s) {
    if (this.closed) return;
    this.outbox.push(s);
    if (!this.posting) this._flush();
  }

  async _flush() {
    this.posting = true;
    while (this.outbox.length && !this.closed) {
      const body = this.outbox.join(RS);
      this.outbox = [];
      try {
        const r = await request(this.agent, this.base, 'POST', this._path(), { body, meter: this.meter });
        if (r.status !== 200) { this.posting = false; return this._fail(new Error(`post HTTP ${r.status}: ${r.body.slice(0, 200)}`)); }
      } catch (e) {
        this.posting = false;
        return this._fail(e);
      }
    }
    this.posting = false;
    return undefined;
  }

  // Tell the server (engine.io close packet), then drop the sockets; resolves when done.
  close() {
    let done = Promise.resolve();
    if (!this.closed && this.sid) {
      done = request(this.agent, this.base, 'POST', this._path(), { body: '1', timeoutMs: 2000 })
        .catch(() => {}).finally(() => this.agent.destroy());
    } else {
      this.agent.destroy();
    }
    this._closed();
    return done;
  }
}

function isMessageEvent(p) {
  // `42["message",` without parsing
  if (typeof p === 'string') return p.startsWith('42["message"');
  return p.length > 12 && p[2] === 0x5b && p[4] === 0x6d && p[5] === 0x65 && p[6] === 0x73
    && p[7] === 0x73 && p[8] === 0x61 && p[9] === 0x67 && p[10] === 0x65 && p[11] === 0x22;
}

function makeClient(kind, base, token, opts) {
  if (kind === 'ws') return new SioWs(base, token, opts);
  if (kind === 'sio-polling') return new SioPolling(base, token, opts);
  throw new Error(`unknown Socket.IO transport ${kind}`);
}

module.exports = { SioWs, SioPolling, makeClient, isMessageEvent };
