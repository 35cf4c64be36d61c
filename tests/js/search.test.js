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
