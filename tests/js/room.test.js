// A room channel: its lifecycle state, seq order without duplicates, gaps found and filled.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FAILED, fillGap, IDLE, JOINED, JOINING, NEW, RoomChannel } from "../../static/js/room.js";

const msg = (seq, user = "bo", extra = {}) => ({ id: `m${seq}`, room: "r", seq, user, text: `t${seq}`, ts: seq, client_id: null, ...extra });
const seqs = (room) => room.sortedSeqs();

test("the first join asks for the latest, every later one sends since", () => {
  const room = new RoomChannel("r");
  assert.equal(room.state, NEW);
  assert.deepEqual(room.join(), { room: "r" });
  assert.equal(room.state, JOINING);
  room.accept({ members: ["ana"], last_seq: 12, messages: [msg(11), msg(12)] }, "ana");
  assert.equal(room.state, JOINED);
  assert.equal(room.joined, true);
  assert.equal(room.seq, 12);
  room.drop();
  assert.equal(room.state, IDLE);
  assert.deepEqual(room.join(), { room: "r", since: 12 });
});

test("a join to an empty room starts from its last seq", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 0, messages: [] }, "ana");
  assert.equal(room.seq, 0);
  assert.equal(room.hasGap(), false);
});

test("a drop before any join keeps the room new", () => {
  const room = new RoomChannel("r");
  room.join();
  room.drop();
  assert.equal(room.state, NEW);
});

test("a refused join is failed with its error, and a drop lets the next connect retry", () => {
  const room = new RoomChannel("r");
  room.join();
  room.refuse({ code: "forbidden", message: "private" });
  assert.equal(room.state, FAILED);
  assert.equal(room.error.code, "forbidden");
  room.drop();
  assert.deepEqual(room.join(), { room: "r" });
});

test("messages in any order are kept once each, in seq order", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 0, messages: [] }, "ana");
  room.add([msg(3), msg(1)], "ana");
  assert.equal(room.seq, 1);
  assert.equal(room.hasGap(), true);
  room.add([msg(2), msg(3, "bo", { text: "again" }), { room: "other", seq: 4 }, null, { room: "r", seq: "5" }], "ana");
  assert.deepEqual(seqs(room), [1, 2, 3]);
  assert.equal(room.messages.get(3).text, "t3");
  assert.equal(room.seq, 3);
  assert.equal(room.lastSeq, 3);
  assert.equal(room.hasGap(), false);
});

test("own messages with a client_id are reported delivered, case-insensitively", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 0, messages: [] }, "Ana");
  const delivered = room.add([msg(1, "ana", { client_id: "c1" }), msg(2, "bo", { client_id: "c2" })], "ANA");
  assert.deepEqual(delivered, ["c1"]);
});

test("a gap is filled page by page until nothing is missing", async () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 250, messages: [msg(1)] }, "ana");
  assert.equal(room.hasGap(), true);
  const asked = [];
  const server = Array.from({ length: 250 }, (_, i) => msg(i + 1));
  const page = async (after, limit) => {
    asked.push(after);
    const found = server.filter((m) => m.seq > after);
    return { messages: found.slice(0, limit), has_more: found.length > limit };
  };
  await fillGap(room, page, (messages) => room.add(messages, "ana"));
  assert.deepEqual(asked, [1, 101, 201]);
  assert.equal(room.seq, 250);
  assert.equal(room.fetching, null);
  assert.equal(room.messages.size, 250);
});

test("a gap fill stops when the server has nothing newer, and runs once at a time", async () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 5, messages: [msg(1)] }, "ana");
  let calls = 0;
  const stuck = async () => { calls += 1; return { messages: [], has_more: true }; };
  const first = fillGap(room, stuck, (messages) => room.add(messages, "ana"));
  await fillGap(room, stuck, (messages) => room.add(messages, "ana"));  // already fetching: returns at once
  await first;
  assert.equal(calls, 1);
  assert.equal(room.seq, 1);
});

test("a failed gap fill frees the room for the next try", async () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 3, messages: [msg(1)] }, "ana");
  await assert.rejects(fillGap(room, async () => { throw new Error("HTTP 503"); }, () => {}));
  assert.equal(room.fetching, null);
});

test("a room off screen keeps its latest messages, with exact counts", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 0, messages: [] }, "ana");
  room.markRead(false);
  room.add(Array.from({ length: 400 }, (_, i) => msg(i + 1)), "ana");
  room.trim(200);
  assert.equal(room.messages.size, 200);
  assert.deepEqual(seqs(room).slice(0, 1), [201]);
  assert.equal(room.hasOlder, true);
  assert.equal(room.seq, 400);
  assert.equal(room.unread(), 400);
});

test("a room new to the reader starts read; the one on screen is read as it comes", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 7, messages: [msg(7)] }, "ana");
  assert.equal(room.markRead(false), true);
  assert.equal(room.unread(), 0);
  room.add([msg(8), msg(9)], "ana");
  assert.equal(room.unread(), 2);
  assert.equal(room.markRead(false), false);
  assert.equal(room.markRead(true), true);
  assert.equal(room.unread(), 0);
});

test("typing lines expire without news, and a message ends its author's", () => {
  const room = new RoomChannel("r");
  room.typing.set("bo", 100);
  room.typing.set("cy", 300);
  assert.equal(room.expireTyping(200), true);
  assert.deepEqual([...room.typing.keys()], ["cy"]);
  room.join();
  room.accept({ members: [], last_seq: 0, messages: [] }, "ana");
  room.add([msg(1, "cy")], "ana");
  assert.equal(room.typing.size, 0);
});

test("a join after the first sends revs_since once the server told the last rev", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 2, last_rev: 7, last_read: 1, messages: [msg(1), msg(2)] }, "ana");
  assert.equal(room.rev, 7);
  assert.equal(room.read, 1);
  room.drop();
  assert.deepEqual(room.join(), { room: "r", since: 2, revs_since: 7 });
});

test("changes replace held messages unless older, and revs count only without holes", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 2, last_rev: 3, messages: [msg(1), msg(2)] }, "ana");
  room.update(msg(1, "bo", { text: "new", rev: 5 }));
  assert.equal(room.messages.get(1).text, "new");
  assert.equal(room.rev, 3);  // rev 4 has not come yet
  room.update(msg(1, "bo", { text: "older", rev: 4 }));
  assert.equal(room.messages.get(1).text, "new");
  assert.equal(room.rev, 5);
  room.update(msg(9, "bo", { rev: 6 }));  // a message not held still counts
  assert.equal(room.rev, 6);
  assert.equal(room.messages.has(9), false);
});

test("a rejoin takes in `updated` and asks again when it was cut at the limit", () => {
  const room = new RoomChannel("r");
  room.join();
  room.accept({ members: [], last_seq: 1, last_rev: 0, messages: [msg(1)] }, "ana");
  room.drop();
  room.join();
  const updated = Array.from({ length: 500 }, (_, i) => msg(1, "bo", { text: `v${i + 1}`, rev: i + 1 }));
  room.accept({ members: [], last_seq: 1, last_rev: 900, messages: [], updated }, "ana");
  assert.equal(room.messages.get(1).text, "v500");
  assert.equal(room.rev, 500);
  assert.equal(room.moreUpdates, true);
});
