'use strict';
// HTTP/1.1 with keep-alive over counted sockets: every byte on the wire
// (request line, headers, bodies) is read from net.Socket bytesRead/bytesWritten.

const http = require('http');
const net = require('net');

// A group of sockets whose bytes are counted together (one per transport under test).
class Meter {
  constructor() { this.sockets = []; this.requests = 0; this.closedRead = 0; this.closedWritten = 0; }
  track(sock) {
    this.sockets.push(sock);
    sock.once('close', () => {
      this.closedRead += sock.bytesRead; this.closedWritten += sock.bytesWritten;
      const i = this.sockets.indexOf(sock);
      if (i >= 0) { this.sockets[i] = this.sockets[this.sockets.length - 1]; this.sockets.pop(); }
    });
  }
  bytes() {
    let read = this.closedRead; let written = this.closedWritten;
    for (const s of this.sockets) { read += s.bytesRead; written += s.bytesWritten; }
    return { read, written, requests: this.requests, sockets: this.sockets.length };
  }
}

class CountingAgent extends http.Agent {
  constructor(meter, opts) {
    super(Object.assign({ keepAlive: true, maxSockets: 2, keepAliveMsecs: 1000 }, opts || {}));
    this.meter = meter;
  }
  createConnection(options) {
    // returned synchronously: http.Agent then hands it to the request itself
    const s = net.createConnection(options);
    s.setNoDelay(true);
    if (this.meter) this.meter.track(s);
    return s;
  }
}

// One request; resolves {status, headers, body (string)}. Rejects on network error or timeout.
function request(agent, base, method, path, { body, headers, timeoutMs = 60000, meter } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : (typeof body === 'string' ? body : JSON.stringify(body));
    const h = Object.assign({}, headers || {});
    if (data !== null) {
      if (!h['Content-Type']) h['Content-Type'] = typeof body === 'string' ? 'text/plain;charset=UTF-8' : 'application/json';
      h['Content-Length'] = Buffer.byteLength(data);
    }
    const req = http.request({ agent, host: base.hostname, port: base.port, method, path, headers: h }, (res) => {
      const chunks = [];
      res.setEncoding('utf8');
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode, headers: res.headers, body: chunks.join('') }); });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    if (meter) meter.requests++;
    const timer = setTimeout(() => { req.destroy(new Error(`timeout ${method} ${path}`)); }, timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (data !== null) req.write(data);
    req.end();
  });
}

async function requestJSON(agent, base, method, path, opts) {
  const r = await request(agent, base, method, path, opts);
  let json = null;
  try { json = r.body ? JSON.parse(r.body) : null; } catch (e) { json = null; }
  return { status: r.status, headers: r.headers, json, body: r.body };
}

module.exports = { Meter, CountingAgent, request, requestJSON };
