// The composer's measure of a message and the linkifier: only http(s) links, never anything else.
import assert from "node:assert/strict";
import { test } from "node:test";

import { linkify, measure, safeHref, textLength } from "../../static/js/text.js";

const links = (text) => linkify(text).filter((p) => p.href);
const joined = (text) => linkify(text).map((p) => p.text).join("");

test("length counts code points of the stripped text, as the server's len() does", () => {
  assert.equal(textLength("  hi \n"), 2);
  assert.equal(textLength("😀"), 1);
  assert.equal("😀".length, 2);  // what a textarea's maxlength would have counted
});

test("the counter shows near the limit only, and past it says by how much", () => {
  assert.deepEqual(measure("", 10), { ok: false, empty: true, over: false, length: 0, counter: "" });
  assert.equal(measure("x".repeat(8), 10).counter, "");
  assert.equal(measure("x".repeat(9), 10).counter, "1 characters left");
  assert.equal(measure("x".repeat(10), 10).ok, true);
  const over = measure("x".repeat(13), 10);
  assert.equal(over.ok, false);
  assert.equal(over.over, true);
  assert.equal(over.counter, "3 characters over the limit of 10");
  assert.equal(measure("   ", 10).empty, true);
});

test("plain text stays one plain part", () => {
  assert.deepEqual(linkify("hello world"), [{ text: "hello world" }]);
  assert.deepEqual(linkify(""), [{ text: "" }]);
});

test("an http(s) link in a sentence becomes a link part; the text is kept whole", () => {
  const text = "see https://example.com/a?b=1&c=2#x now";
  assert.deepEqual(linkify(text), [
    { text: "see " }, { text: "https://example.com/a?b=1&c=2#x", href: "https://example.com/a?b=1&c=2#x" },
    { text: " now" },
  ]);
  assert.equal(joined(text), text);
  assert.deepEqual(links("HTTP://EXAMPLE.COM").map((p) => p.href), ["http://example.com/"]);
});

test("trailing punctuation ends the sentence, not the link; balanced brackets stay", () => {
  assert.deepEqual(links("go to https://example.com/x.").map((p) => p.text), ["https://example.com/x"]);
  assert.deepEqual(links("(https://example.com/x), ok?").map((p) => p.text), ["https://example.com/x"]);
  assert.deepEqual(links("https://example.com/x?!...").map((p) => p.text), ["https://example.com/x"]);
  assert.deepEqual(links("'https://example.com/q'").map((p) => p.text), ["https://example.com/q"]);
  assert.deepEqual(links("https://en.wikipedia.org/wiki/Foo_(bar)").map((p) => p.text),
    ["https://en.wikipedia.org/wiki/Foo_(bar)"]);
  assert.equal(joined("(https://example.com/x), ok?"), "(https://example.com/x), ok?");
});

test("javascript:, data: and other schemes never become links", () => {
  for (const text of ["javascript:alert(1)", "JaVaScRiPt:alert(document.cookie)", "data:text/html,<script>x</script>",
                      "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://example.com/", "//example.com/x",
                      "java\u0000script:alert(1)", "javascript://https://example.com/%0aalert(1)"]) {
    for (const part of linkify(text)) {
      if (part.href) assert.match(part.href, /^https?:\/\//, text);
    }
    assert.equal(joined(text), text);
  }
  assert.deepEqual(links("javascript:alert(1)"), []);
  assert.deepEqual(links("data:text/html;base64,PHNjcmlwdD4="), []);
  // Glued to a word: "xhttps://" is not the start of a link, and only a real http(s) URL is taken after a scheme.
  assert.deepEqual(links("xhttps://example.com"), []);
  // After a scheme, only the http(s) URL itself is taken: the href is that URL, never the whole.
  assert.deepEqual(linkify("javascript:https://example.com"),
    [{ text: "javascript:" }, { text: "https://example.com", href: "https://example.com/" }]);
});

test("quotes and angle brackets end a link; they never reach its href", () => {
  const text = 'https://example.com/"onmouseover="alert(1) <b>x</b> https://a.example/<script>';
  for (const part of links(text)) assert.doesNotMatch(part.href, /["<>]/);
  assert.deepEqual(links(text).map((p) => p.text), ["https://example.com/", "https://a.example/"]);
  assert.equal(joined(text), text);
  assert.deepEqual(linkify("<b>x</b>"), [{ text: "<b>x</b>" }]);
});

test("a link without a host, or that does not parse, stays text", () => {
  assert.deepEqual(links("http:// nothing"), []);
  assert.deepEqual(links("https://"), []);
  assert.deepEqual(links("http://[::1"), []);
  assert.equal(safeHref("https://exa mple.com"), null);
  assert.equal(safeHref("javascript:alert(1)"), null);
});

test("two links and text between them come out in order", () => {
  const parts = linkify("a http://one.example b https://two.example/c");
  assert.deepEqual(parts.map((p) => p.href || null), [null, "http://one.example/", null, "https://two.example/c"]);
});
