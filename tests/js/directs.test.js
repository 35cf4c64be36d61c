// Direct conversations: listed by the server, loaded and caught up by id, read marks, unread counts and "Seen by".
import assert from "node:assert/strict";
import { test } from "node:test";

import { catchUp, Conversation, ensureDirect, idNumber, mergeMessages, preview, PREVIEW_LENGTH } from "../../static/js/directs.js";

const dm = (n, from = "bo", to = "ana", extra = {}) => ({ id: `d${n}`, from, to, text: `t${n}`, ts: n, client_id: null, ...extra });
const ids = (conv) => conv.messages.map((m) => idNumber(m.id));

test("ids are numbered by their digits, anything else is 0", () => {
  assert.equal(idNumber("d42"), 42);
  assert.equal(idNumber(7), 7);
  for (const bad of ["x", "d", "d-1", null, undefined, "42d"]) assert.equal(idNumber(bad), 0);
});

test("messages merge by id, once each, in id order (not by clock)", () => {
  const merged = mergeMessages([dm(10), dm(2)], [dm(9, "bo", "ana", { ts: 1 }), dm(10, "bo", "ana", { text: "new" }), { id: "x" }]);
  assert.deepEqual(merged.map((m) => m.id), ["d2", "d9", "d10"]);
  assert.equal(merged[2].text, "new");
});

test("a conversation takes only its own messages and names my delivered client_ids", () => {
  const conv = new Conversation("bo");
  const delivered = conv.add([dm(1), dm(2, "ana", "bo", { client_id: "c2" }), dm(3, "cy", "ana"), dm(4, "ana", "BO")], "ana");
  assert.deepEqual(ids(conv), [1, 2, 4]);
  assert.deepEqual(delivered, ["c2"]);
});

test("the listing gives the last message and the unread count; live messages add to it; reading clears it", () => {
  const conv = ensureDirect(new Map(), "BO");
  conv.listed({ with: "bo", last_message: dm(5), last_read: 2, unread: 3, peer_last_read: 4 }, "ana");
  assert.equal(conv.peer, "bo");
  assert.deepEqual(ids(conv), [5]);
  assert.equal(conv.unread("ana"), 3);
  assert.equal(conv.since(), null);  // not loaded: a catch-up has nothing to start from
  conv.add([dm(6), dm(7, "ana", "bo")], "ana");
  assert.equal(conv.unread("ana"), 4);  // mine never count
  assert.equal(conv.toMarkRead(), 7);
  assert.equal(conv.takeRead(7), true);
  assert.equal(conv.unread("ana"), 0);
  assert.equal(conv.takeRead(3), false);  // never back
  assert.equal(conv.read, 7);
  assert.equal(conv.toMarkRead(), 0);
  conv.listed({ with: "bo", last_message: dm(7, "ana", "bo"), last_read: 1, unread: 0, peer_last_read: 0 }, "ana");
  assert.equal(conv.read, 7);
  assert.equal(conv.peerRead, 4);
});

test("loading the latest page drops what was held before it, when older ones exist", () => {
  const conv = new Conversation("bo");
  conv.add([dm(1), dm(90)], "ana");
  conv.loadedLatest({ messages: [dm(50), dm(60, "ana", "bo", { client_id: "c" })], has_more: true, last_read: 50, peer_last_read: 0 }, "ana");
  assert.deepEqual(ids(conv), [50, 60, 90]);
  assert.equal(conv.hasOlder, true);
  assert.equal(conv.loaded, true);
  assert.equal(conv.since(), 90);
  assert.equal(conv.unread("ana"), 1);
  const all = new Conversation("bo");
  all.add([dm(1)], "ana");
  all.loadedLatest({ messages: [dm(1), dm(3)], has_more: false }, "ana");
  assert.deepEqual(ids(all), [1, 3]);
  assert.equal(all.hasOlder, false);
});

test("a catch-up asks since the last held, page by page, each message once", async () => {
  const conv = new Conversation("bo");
  conv.loadedLatest({ messages: [dm(1), dm(2)], has_more: false }, "ana");
  const server = [dm(1), dm(2), dm(3), dm(5), dm(8)];
  const asked = [];
  const done = await catchUp(conv, async (since) => {
    asked.push(since);
    const after = server.filter((m) => idNumber(m.id) > since);
    return { messages: after.slice(0, 2), has_more: after.length > 2 };
  }, (answer) => conv.add(answer.messages, "ana"));
  assert.equal(done, true);
  assert.deepEqual(asked, [2, 5]);
  assert.deepEqual(ids(conv), [1, 2, 3, 5, 8]);
  assert.equal(await catchUp(new Conversation("cy"), () => assert.fail("not loaded: nothing to ask"), () => {}), false);
});

test("Seen by shows once the peer's mark reaches my last message", () => {
  const conv = new Conversation("bo");
  conv.add([dm(1, "ana", "bo"), dm(2), dm(3, "ana", "bo")], "ana");
  conv.takeState({ peer_last_read: 2 });
  assert.equal(conv.seen("ana"), "");
  conv.takeState({ peer_last_read: 3 });
  assert.equal(conv.seen("ana"), "Seen by bo");
  conv.takeState({ peer_last_read: 1 });
  assert.equal(conv.peerRead, 3);
  const self = new Conversation("ana");
  self.add([dm(4, "ana", "ana")], "ana");
  self.takeState({ peer_last_read: 9 });
  assert.equal(self.seen("ana"), "");
});

test("the list previews the last message on one short line, mine marked", () => {
  const conv = new Conversation("bo");
  assert.equal(preview(conv, "ana"), "");
  conv.add([dm(1, "bo", "ana", { text: "hello\n  there" })], "ana");
  assert.equal(preview(conv, "ana"), "hello there");
  conv.add([dm(2, "ana", "bo", { text: "x".repeat(100) })], "ana");
  assert.equal(preview(conv, "ana"), `You: ${"x".repeat(PREVIEW_LENGTH - 1)}…`);
});

test("a conversation previews itself", () => {
  const conv = new Conversation("bo");
  conv.add([dm(1)], "ana");
  assert.equal(conv.preview("ana"), "t1");
});
