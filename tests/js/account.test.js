// Logging out: the user's local data is cleared, other users' stays, and the loss warning counts the unsent.
import assert from "node:assert/strict";
import { test } from "node:test";

import { lossWarning, unsentCount } from "../../static/js/account.js";
import { createStorage, memoryStorage } from "../../static/js/storage.js";

test("clear removes only this user's items, keeping the names asked for", () => {
  const backing = memoryStorage();
  const ana = createStorage("Ana", backing);
  const bo = createStorage("bo", backing);
  ana.write("rooms", { general: { read: 3 } });
  ana.write("outbox", [{ client_id: "a" }]);
  ana.write("directs", {});
  bo.write("rooms", { general: { read: 1 } });
  backing.setItem("unrelated", "x");
  assert.equal(ana.clear(["outbox"]), 2);
  assert.deepEqual(ana.read("outbox", []), [{ client_id: "a" }]);
  assert.equal(ana.clear(), 1);
  assert.equal(backing.length, 2);
  assert.deepEqual(bo.read("rooms", {}), { general: { read: 1 } });
  assert.equal(backing.getItem("unrelated"), "x");
});

test("the unsent count is the outbox's length, pending and failed alike", () => {
  const storage = createStorage("ana", memoryStorage());
  assert.equal(unsentCount(storage), 0);
  storage.write("outbox", [{ status: "pending" }, { status: "failed" }]);
  assert.equal(unsentCount(storage), 2);
  storage.write("outbox", "garbage");
  assert.equal(unsentCount(storage), 0);
});

test("the warning names how many messages would be lost", () => {
  assert.equal(lossWarning(1), "1 message you wrote has not been sent yet. Logging out now deletes it from this browser.");
  assert.equal(lossWarning(3), "3 messages you wrote have not been sent yet. Logging out now deletes them from this browser.");
});
