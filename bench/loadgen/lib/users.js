'use strict';
// A bounded pool of registered users and their tokens (POST /api/users, POST /api/tokens).
// Registration hashes a password on the server (~100 ms each), so the pool is small,
// made a few at a time, optionally cached in a file across invocations against one
// server run, and its tokens are shared by many connections.

const fs = require('fs');
const { CountingAgent, requestJSON } = require('./http');
const { log, pool, sleep } = require('./common');

async function callRetrying(agent, base, method, path, body) {
  for (let attempt = 0; attempt < 20; attempt++) {
    let r;
    try {
      r = await requestJSON(agent, base, method, path, { body, timeoutMs: 60000 });
    } catch (e) {
      if (attempt >= 5) throw e;
      await sleep(200 * (attempt + 1));
      continue;
    }
    if (r.status === 429 || r.status === 503) {
      const wait = Number(r.headers['retry-after']) || 1;
      log(`${path}: ${r.status}, retrying in ${wait}s`);
      await sleep(wait * 1000);
      continue;
    }
    return r;
  }
  throw new Error(`${path}: still refused after retries`);
}

// Returns [{username, token}] of length n.
async function tokens(base, { n, prefix, password, concurrency, cache }) {
  const key = `${base.origin}|${prefix}`;
  let cached = {};
  if (cache) {
    try {
      const all = JSON.parse(fs.readFileSync(cache, 'utf8'));
      cached = (all[key] && all[key].users) || {};
    } catch (e) { cached = {}; }
  }
  const agent = new CountingAgent(null, { maxSockets: concurrency });
  const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const out = new Array(n);
  const t0 = Date.now();
  let made = 0;
  await pool(names, concurrency, async (username, i) => {
    const c = cached[username];
    if (c && c.expires > Date.now() + 600000) { out[i] = { username, token: c.token }; return; }
    const reg = await callRetrying(agent, base, 'POST', '/api/users', { username, password });
    if (reg.status !== 201 && reg.status !== 409) {
      throw new Error(`register ${username}: HTTP ${reg.status} ${reg.body.slice(0, 200)}`);
    }
    const tok = await callRetrying(agent, base, 'POST', '/api/tokens', { username, password });
    if (tok.status !== 200 || !tok.json || !tok.json.token) {
      throw new Error(`token ${username}: HTTP ${tok.status} ${tok.body.slice(0, 200)}`);
    }
    out[i] = { username, token: tok.json.token };
    cached[username] = { token: tok.json.token, expires: Date.now() + 1000 * (Number(tok.json.expires_in) || 3600) };
    made++;
  });
  agent.destroy();
  if (made) log(`registered/logged in ${made} users in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  if (cache && made) {
    let all = {};
    try { all = JSON.parse(fs.readFileSync(cache, 'utf8')); } catch (e) { all = {}; }
    all[key] = { users: cached };
    fs.writeFileSync(cache, JSON.stringify(all));
  }
  return out;
}

module.exports = { tokens };
