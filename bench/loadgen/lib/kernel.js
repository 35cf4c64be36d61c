'use strict';
// The kernel's own count of bytes on the generator's TCP connections to the server
// (ss -ti: bytes_acked, bytes_received per socket), to cross-check the socket counters.

const { execFile } = require('child_process');

// Map "localaddr:port" -> {sent, received}, for established connections to `port`.
function kernelBytes(port) {
  return new Promise((resolve) => {
    execFile('ss', ['-tinH', 'state', 'established', `( dport = :${port} )`], { maxBuffer: 256 * 1024 * 1024 }, (err, out) => {
      if (err) return resolve(null);
      const map = new Map();
      let key = null;
      for (const line of out.split('\n')) {
        if (!line) continue;
        if (line[0] !== '\t' && line[0] !== ' ') {
          const f = line.trim().split(/\s+/);
          key = f[f.length - 2];
        } else if (key) {
          const acked = /bytes_acked:(\d+)/.exec(line);
          const recv = /bytes_received:(\d+)/.exec(line);
          map.set(key, { sent: acked ? Number(acked[1]) : 0, received: recv ? Number(recv[1]) : 0 });
          key = null;
        }
      }
      return resolve(map);
    });
  });
}

// Bytes over the sockets present at both snapshots (sockets opened or closed between
// them are left out and counted in `sockets_changed`).
function kernelDelta(a, b) {
  if (!a || !b) return null;
  let sent = 0; let received = 0; let both = 0; let changed = 0;
  for (const [k, v1] of b) {
    const v0 = a.get(k);
    if (!v0) { changed++; continue; }
    both++;
    sent += v1.sent - v0.sent;
    received += v1.received - v0.received;
  }
  for (const k of a.keys()) if (!b.has(k)) changed++;
  return { bytes_up: sent, bytes_down: received, sockets: both, sockets_changed: changed };
}

module.exports = { kernelBytes, kernelDelta };
