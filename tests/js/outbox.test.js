// The outbox: persistence shared by tabs, one send at a time per conversation, holds and failures.
import assert from "node:assert/strict";
import { test } from "node:test";

import { conversationOf, newClientId, Outbox } from "../../static/js/outbox.js";
import { createStorage, memoryStorage } from "../../static/js/storage.js";

function outboxes(count = 1) {
  const shared = memoryStorage();
  let clock = 1000;
  let ids = 0;
  const make = () => new Outbox(createStorage("Ana", shared), { now: () => clock, newId: () => `c${++ids}` });
  return { boxes: Array.from({ length: count }, make), shared, tick: (ms) => { clock += ms; } };
}

test("client ids are 32 hex digits and differ", () => {
  const a = newClientId();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, newClientId());
});

test("an added entry is pending, stored, and survives a reload", () => {
  const { boxes: [box], shared } = outboxes();
  const entry = box.add({ kind: "room", room: "general", text: "hi" });
  assert.deepEqual(entry, { client_id: "c1", created: 1000, status: "pending", error: null, kind: "room",
                            room: "general", text: "hi" });
  const reloaded = new Outbox(createStorage("ana", shared));
  assert.deepEqual(reloaded.load(), [entry]);
});

test("only the oldest pending entry of each conversation is due, and not twice", () => {
  const { boxes: [box] } = outboxes();
  const first = box.add({ kind: "room", room: "a", text: "1" });
  box.add({ kind: "room", room: "a", text: "2" });
  const direct = box.add({ kind: "direct", to: "Bo", text: "3" });
  box.add({ kind: "direct", to: "bo", text: "4" });
  assert.deepEqual(box.due().map((e) => e.text), ["1", "3"]);
  box.sending(first.client_id);
  box.sending(direct.client_id);
  assert.deepEqual(box.due(), []);
  box.delivered(first.client_id);
  assert.deepEqual(box.due().map((e) => e.text), ["2"]);
});

test("a failed entry stays, out of the way of the next one", () => {
  const { boxes: [box] } = outboxes();
  const bad = box.add({ kind: "room", room: "a", text: "x".repeat(5000) });
  box.add({ kind: "room", room: "a", text: "fine" });
  box.fail(bad.client_id, { code: "invalid_message", message: "text must be 1 to 4000 characters" });
  assert.equal(box.entries[0].status, "failed");
  assert.equal(box.entries[0].error, "text must be 1 to 4000 characters");
  assert.deepEqual(box.due().map((e) => e.text), ["fine"]);
  assert.equal(box.pending(), 1);
});

test("a rate limit holds every send until retry_after has passed", () => {
  const { boxes: [box], tick } = outboxes();
  box.add({ kind: "room", room: "a", text: "1" });
  assert.equal(box.hold(2), 2000);
  assert.deepEqual(box.due(), []);
  tick(1999);
  assert.deepEqual(box.due(), []);
  tick(1);
  assert.equal(box.due().length, 1);
});

test("a dropped connection sends its in-flight entries again", () => {
  const { boxes: [box] } = outboxes();
  const entry = box.add({ kind: "room", room: "a", text: "1" });
  box.sending(entry.client_id);
  assert.deepEqual(box.due(), []);
  box.dropped();
  assert.deepEqual(box.due(), [entry]);
});

test("two tabs share one outbox: a delivery in one is seen by the other", () => {
  const { boxes: [one, two] } = outboxes(2);
  const entry = one.add({ kind: "room", room: "a", text: "1" });
  assert.equal(two.load().length, 1);
  two.add({ kind: "room", room: "b", text: "2" });
  assert.equal(two.delivered(entry.client_id), true);
  assert.deepEqual(one.load().map((e) => e.text), ["2"]);
  assert.equal(one.delivered("unknown"), false);
});

test("leaving a room forgets its entries only", () => {
  const { boxes: [box] } = outboxes();
  box.add({ kind: "room", room: "a", text: "1" });
  box.add({ kind: "room", room: "b", text: "2" });
  box.add({ kind: "direct", to: "a", text: "3" });
  box.forgetRoom("a");
  assert.deepEqual(box.entries.map(conversationOf), ["#b", "@a"]);
});

test("broken or missing storage reads as empty", () => {
  const broken = { getItem() { throw new Error("denied"); }, setItem() { throw new Error("full"); } };
  const box = new Outbox(createStorage("ana", broken));
  assert.deepEqual(box.load(), []);
  const shared = memoryStorage();
  shared.setItem("papo:v1:ana:outbox", "{not json");
  assert.deepEqual(new Outbox(createStorage("ana", shared)).load(), []);
});
