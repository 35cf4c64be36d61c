'use strict';
// The kernel's own count of bytes on the generator's TCP connections to the server
// (ss -ti: bytes_acked, bytes_received per socket), to cross-check the socket counters.

const { execFile } = require('child_process');
const fs = require('fs');

// Loopback interface totals: every packet on lo, TCP/IP headers included, whoever sent it.
function loStats() {
  try {
    const read = (f) => Number(fs.readFileSync(`/sys/class/net/lo/statistics/${f}`, 'utf8'));
    return { bytes: read('tx_bytes'), packets: read('tx_packets') };
  } catch (e) {
    return null;
  }
}

// Map "localaddr:port" -> {sent, received}, for established connections to `port`.
function kernelBytes(port) {
  return new Promise((resolve) => {
    execFile('ss', ['-tinH', 'state', 'established', `( dport = :${port} )`], { maxBuffer: 256 * 1024 * 1024 }, (err, out) => {
      if (err) return resolve(null);
      const map = new Map();
      map.lo = loStats();
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
  const lo = a.lo && b.lo ? { bytes: b.lo.bytes - a.lo.bytes, packets: b.lo.packets - a.lo.packets } : null;
  // lo: all loopback traffic in the window, both directions, with TCP/IP headers (other
  // processes' traffic included)
  return { bytes_up: sent, bytes_down: received, sockets: both, sockets_changed: changed, lo };
}

module.exports = { kernelBytes, kernelDelta };
