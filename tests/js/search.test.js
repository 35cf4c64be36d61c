// Search results: snippets become text and marks, never markup.
import assert from "node:assert/strict";
import { test } from "node:test";

import { resultHref, snippetParts } from "../../static/js/search.js";

test("a snippet splits into text and marked parts, its escapes turned back into text", () => {
  assert.deepEqual(snippetParts("the &lt;b&gt;<mark>quick</mark>&lt;/b&gt; fox &amp; <mark>Quick</mark>"), [
    ["the <b>", false], ["quick", true], ["</b> fox & ", false], ["Quick", true],
  ]);
  assert.deepEqual(snippetParts(""), []);
  assert.deepEqual(snippetParts(undefined), []);
});

test("a result opens its room at its seq", () => {
  assert.equal(resultHref({ room: "a-b", seq: 12 }), "/room/a-b#seq-12");
});

test("a direct result opens its conversation with the peer", () => {
  assert.equal(resultHref({ kind: "direct", peer: "bo.b", id: "d7", from: "ana", to: "bo.b" }), "/dm/bo.b");
  assert.equal(resultHref({ kind: "direct", peer: "a b/c", id: "d8" }), "/dm/a%20b%2Fc");
  assert.equal(resultHref({ kind: "room", room: "lobby", seq: 3 }), "/room/lobby#seq-3");
});
