'use strict';
// A WebSocket client over a plain net.Socket (RFC 6455, client side). `ws`'s client upgrades
// through Node's HTTP client, which made the generator the slower side of a reconnect storm: it
// opens 10,000 connections within a second on the machine's two cores, beside the server
// (bench/README.md, "The generator's WebSocket client"). The protocol part is sans-I/O: `Reader`
// takes bytes and gives the 101's verdict and whole messages; `WsConnection` moves the bytes.

const crypto = require('crypto');
const net = require('net');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEAD_LIMIT = 16 * 1024;
const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

// Random bytes drawn in blocks: one system call per 4 KiB rather than one per key or mask.
const pool = { buf: Buffer.alloc(0), at: 0 };
function randomBytes(n) {
  if (pool.at + n > pool.buf.length) { pool.buf = crypto.randomBytes(4096); pool.at = 0; }
  pool.at += n;
  return pool.buf.subarray(pool.at - n, pool.at);
}

function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

function upgradeRequest(u, key) {
  return `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n`
    + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

// One client frame: FIN set, masked with a fresh key.
function frame(opcode, payload, mask = randomBytes(4)) {
  const len = payload.length;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); } else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2); }
  mask.copy(out, head - 4);
  for (let i = 0; i < len; i++) out[head + i] = payload[i] ^ mask[i & 3];
  return out;
}

// The server's side of a connection, read: feed(bytes) returns what it completed, in order, as
// {open: true}, {message: Buffer}, {ping: Buffer}, {close: Buffer}, or {error: string} (then nothing more).
class Reader {
  constructor(key) {
    this.accept = acceptFor(key);
    this.open = false;
    this.failed = false;
    this.pending = null; // bytes not yet a whole head or frame
    this.parts = null; // a fragmented message's payloads so far
  }

  feed(data) {
    const out = [];
    if (this.failed) return out;
    let buf = this.pending ? Buffer.concat([this.pending, data]) : data;
    this.pending = null;
    if (!this.open) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > HEAD_LIMIT) return this._fail(out, 'handshake: response head too long');
        this.pending = buf;
        return out;
      }
      const head = buf.toString('latin1', 0, end);
      if (!/^HTTP\/1\.1 101[ \r]/.test(head + '\r')) return this._fail(out, `handshake: ${head.split('\r\n')[0]}`);
      const m = /\r\nsec-websocket-accept:[ \t]*([^\r\n]*?)[ \t]*(\r\n|$)/i.exec(head);
      if (!m || m[1] !== this.accept) return this._fail(out, 'handshake: wrong Sec-WebSocket-Accept');
      this.open = true;
      out.push({ open: true });
      buf = buf.subarray(end + 4);
    }
    while (buf.length >= 2) {
      const b1 = buf[1] & 0x7f;
      let at = 2; let len = b1;
      if (b1 === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); at = 4; }
      if (b1 === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      if (buf[1] & 0x80) return this._fail(out, 'a masked frame from the server');
      if (buf.length < at + len) break;
      const event = this._frame(buf[0], buf.subarray(at, at + len));
      if (event) out.push(event);
      if (event && event.error) { this.failed = true; return out; }
      buf = buf.subarray(at + len);
    }
    if (buf.length) this.pending = Buffer.from(buf);
    return out;
  }

  _fail(out, error) {
    this.failed = true;
    out.push({ error });
    return out;
  }

  _frame(b0, payload) {
    const opcode = b0 & 0x0f; const fin = (b0 & 0x80) !== 0;
    if (opcode >= 0x8) {
      if (!fin) return { error: 'a fragmented control frame' };
      if (opcode === OP.close) return { close: payload };
      if (opcode === OP.ping) return { ping: payload };
      if (opcode === OP.pong) return null;
      return { error: `opcode ${opcode}` };
    }
    if ((opcode === OP.continuation) !== (this.parts !== null)) return { error: 'a fragment out of turn' };
    if (opcode !== OP.continuation && opcode !== OP.text && opcode !== OP.binary) return { error: `opcode ${opcode}` };
    if (!fin) {
      (this.parts = this.parts || []).push(Buffer.from(payload));
      return null;
    }
    if (this.parts) {
      this.parts.push(payload);
      payload = Buffer.concat(this.parts);
      this.parts = null;
    }
    return { message: payload };
  }
}

// One client connection to `u` (a URL): onOpen(), onMessage(Buffer), onClose(), onError(Error).
class WsConnection {
  constructor(u, { onOpen, onMessage, onClose, onError, handshakeTimeoutMs = 30000 }) {
    const key = randomBytes(16).toString('base64');
    this.onOpen = onOpen; this.onMessage = onMessage; this.onClose = onClose; this.onError = onError;
    this.readyState = 0; // 0 connecting, 1 open, 2 closing, 3 closed (as WebSocket has them)
    this.reader = new Reader(key);
    this.socket = net.connect({ host: u.hostname, port: Number(u.port), noDelay: true });
    this.timer = setTimeout(() => this._error(new Error('handshake timeout')), handshakeTimeoutMs);
    this.socket.write(upgradeRequest(u, key)); // written once connected
    this.socket.on('data', (data) => this._data(data));
    this.socket.on('error', (e) => this._error(e));
    this.socket.on('close', () => this._closed());
  }

  send(text) {
    if (this.readyState === 1) this.socket.write(frame(OP.text, Buffer.from(text)));
  }

  terminate() {
    if (this.readyState !== 3) { this.readyState = 2; this.socket.destroy(); }
  }

  _data(data) {
    for (const e of this.reader.feed(data)) {
      if (this.readyState >= 2) return;
      if (e.message) { if (this.onMessage) this.onMessage(e.message); } else if (e.open) {
        clearTimeout(this.timer);
        this.readyState = 1;
        if (this.onOpen) this.onOpen();
      } else if (e.ping) this.socket.write(frame(OP.pong, e.ping));
      else if (e.close) {
        this.readyState = 2;
        this.socket.end(frame(OP.close, e.close.subarray(0, 2)));
      } else if (e.error) this._error(new Error(e.error));
    }
  }

  _error(e) {
    if (this.readyState === 3) return;
    this.terminate();
    if (this.onError) this.onError(e);
  }

  _closed() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearTimeout(this.timer);
    if (this.onClose) this.onClose();
  }
}

module.exports = { WsConnection, Reader, frame };
