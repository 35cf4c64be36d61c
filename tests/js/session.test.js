// The browser's side of sessions: refresh before expiry, the signed-out page, no reconnect.
import assert from "node:assert/strict";
import { test } from "node:test";

import { freshToken, signedOutUrl, watchSession } from "../../static/js/session.js";

class FakeSocket {
  constructor() { this.handlers = {}; this.emitted = []; this.disconnected = false; this.io = { opts: { reconnection: true } }; }
  on(event, handler) { this.handlers[event] = handler; }
  emit(event, payload, ack) { this.emitted.push([event, payload]); ack?.({ ok: true, expires_in: 5 }); }
  disconnect() { this.disconnected = true; }
  async hear(event, payload) { await this.handlers[event](payload); }
}

const answering = (status, body) => async () => ({ ok: status < 300, status, json: async () => body });

test("a warning of expiry refreshes the connection with a fresh token", async () => {
  const socket = new FakeSocket();
  const watch = watchSession(socket, { fetchFn: answering(200, { token: "t2", expires_in: 5 }), leave: () => {} });
  await socket.hear("auth_expiring", { expires_in: 1 });
  assert.deepEqual(socket.emitted, [["refresh", { token: "t2" }]]);
  assert.equal(watch.refreshes, 1);
});

test("a refused refresh sends nothing: the server ends the session when it expires", async () => {
  const socket = new FakeSocket();
  watchSession(socket, { fetchFn: answering(401, { error: { code: "unauthorized" } }), leave: () => {} });
  await socket.hear("auth_expiring", { expires_in: 1 });
  assert.deepEqual(socket.emitted, []);
  assert.equal(await freshToken(async () => { throw new Error("offline"); }), null);
});

test("an ended session stops reconnection and leaves for the signed-out page with its reason", async () => {
  const socket = new FakeSocket();
  const left = [];
  const watch = watchSession(socket, { fetchFn: answering(200, {}), leave: (url) => left.push(url), next: "/room/x" });
  await socket.hear("session_ended", { code: "revoked", message: "this session was ended" });
  assert.equal(watch.ended, "revoked");
  assert.equal(socket.io.opts.reconnection, false);
  assert.equal(socket.disconnected, true);
  assert.deepEqual(left, ["/login?ended=revoked&next=%2Froom%2Fx"]);
});

test("an unknown ending is shown as a refused identity", () => {
  assert.equal(signedOutUrl("<script>"), "/login?ended=unauthorized&next=%2F");
});
