// The connection state machine and the socket options.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CONNECTING, describe, initialConnection, nextConnection, OFFLINE, ONLINE, refusedIdentity, socketOptions,
} from "../../static/js/connection.js";

const run = (events) => events.reduce((conn, [event, attempt]) => nextConnection(conn, event, attempt), initialConnection());

test("a page starts connecting and is online after its first connect", () => {
  assert.deepEqual(initialConnection(), { status: CONNECTING, retries: 0 });
  assert.deepEqual(run([["connect"]]), { status: ONLINE, retries: 0 });
});

test("failed first attempts stay connecting and count their tries", () => {
  assert.deepEqual(run([["connect_error"], ["reconnect_attempt", 1], ["connect_error"], ["reconnect_attempt", 2]]),
                   { status: CONNECTING, retries: 2 });
});

test("a lost connection is offline while retrying, and online again on reconnect", () => {
  const lost = run([["connect"], ["disconnect"], ["reconnect_attempt", 1], ["connect_error"], ["reconnect_attempt", 2]]);
  assert.deepEqual(lost, { status: OFFLINE, retries: 2 });
  assert.deepEqual(nextConnection(lost, "connect"), { status: ONLINE, retries: 0 });
});

test("an error while online goes offline", () => {
  assert.deepEqual(run([["connect"], ["connect_error"]]), { status: OFFLINE, retries: 0 });
});

test("an unknown event changes nothing", () => {
  const conn = run([["connect"]]);
  assert.equal(nextConnection(conn, "bogus"), conn);
});

test("the words say what the state is and what waits", () => {
  assert.equal(describe({ status: ONLINE, retries: 0 }, 3).text, "Online");
  assert.equal(describe({ status: CONNECTING, retries: 0 }).text, "Connecting…");
  assert.equal(describe({ status: CONNECTING, retries: 2 }).text, "Connecting (try 2)…");
  assert.equal(describe({ status: OFFLINE, retries: 0 }, 2).text, "Offline · reconnecting · 2 waiting");
  assert.equal(describe({ status: OFFLINE, retries: 4 }).text, "Offline · reconnecting (try 4)");
});

test("the socket prefers WebSocket and falls back to polling", () => {
  assert.deepEqual(socketOptions().transports, ["websocket", "polling"]);
  assert.equal(socketOptions().tryAllTransports, true);
});

test("a refused identity is told apart from a network error", () => {
  assert.equal(refusedIdentity({ data: { code: "unauthorized" } }), true);
  assert.equal(refusedIdentity({ message: "unauthorized" }), true);
  assert.equal(refusedIdentity({ message: "xhr poll error" }), false);
  assert.equal(refusedIdentity(undefined), false);
});
