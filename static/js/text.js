// Message text: how long the server counts it, what the composer says near the limit, and the
// http(s) links in it. Pure functions over strings; nothing touches the page. Nothing runs on import.

export const MAX_TEXT = 4000;  // the contract's limit; the page's data-max-text wins when present
export const COUNTER_FROM = 0.9;  // show the counter from this share of the limit on

// Count as the server does: Python's len() of the stripped text, one per code point (an emoji is 1).
export function textLength(text) {
  return [...text.trim()].length;
}

// What the composer should say about text: {ok, empty, over, counter} (counter "" when far from the limit).
export function measure(text, max = MAX_TEXT) {
  const length = textLength(text);
  const over = length > max;
  const near = length >= Math.floor(max * COUNTER_FROM);
  const counter = over ? `${length - max} characters over the limit of ${max}`
    : near ? `${max - length} characters left` : "";
  return { ok: length > 0 && !over, empty: length === 0, over, length, counter };
}

// A candidate: "http://" or "https://" not glued to a word before it, up to white space or a
// character that never belongs in a link written in prose (< > " ` and control characters).
const CANDIDATE = /(?<![\p{L}\p{N}_])https?:\/\/[^\s<>"`\u0000-\u001f\u007f]+/giu;
const TRAILING = /[.,:;!?'*_~]$/;
const CLOSERS = { ")": "(", "]": "[", "}": "{" };

// Drop trailing punctuation that ends the sentence rather than the link; keep a closing bracket
// that closes one opened inside the link (https://en.wikipedia.org/wiki/Foo_(bar)).
function trimEnd(raw) {
  let s = raw;
  for (;;) {
    const last = s.at(-1);
    if (TRAILING.test(s)) s = s.slice(0, -1);
    else if (last in CLOSERS && count(s, last) > count(s, CLOSERS[last])) s = s.slice(0, -1);
    else return s;
  }
}

function count(s, ch) {
  return s.split(ch).length - 1;
}

// The safe href for a candidate, or null: it must parse as an absolute http(s) URL with a host.
export function safeHref(raw) {
  let url;
  try { url = new URL(raw); } catch { return null; }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) return null;
  return url.href;
}

// Split text into parts, in order: {text} for plain text and {text, href} for a link. Joined, the
// parts' text is the input unchanged. Only http(s) URLs ever become links.
export function linkify(text) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const raw = trimEnd(match[0]);
    const href = safeHref(raw);
    if (!href) continue;
    if (match.index > at) parts.push({ text: text.slice(at, match.index) });
    parts.push({ text: raw, href });
    at = match.index + raw.length;
  }
  if (at < text.length || !parts.length) parts.push({ text: text.slice(at) });
  return parts;
}
