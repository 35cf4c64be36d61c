// Direct conversations, as the server lists them (`conversations`), loads them (`direct_history`)
// and relays them live (`direct`, `direct_read`). The server is the source of truth: nothing is
// kept in storage, and a page that opens later, or another browser, sees the same. Nothing runs on import.
import { same } from "./room.js";

export const DIRECT_KEEP = 500;   // messages kept per conversation in memory
export const CATCH_UP_ROUNDS = 20;  // `since` pages asked for at most after one reconnect

// The number of a direct message's id ("d42" -> 42); 0 for anything else.
export function idNumber(id) {
  const found = /^d?(\d+)$/.exec(String(id ?? ""));
  return found ? Number(found[1]) : 0;
}

// Return the peer of a direct message, seen from me.
export function peerOf(m, me) {
  return same(m.from, me) ? m.to : m.from;
}

// Merge messages by id, the newer copy winning; keep the latest DIRECT_KEEP in id order.
export function mergeMessages(old, messages) {
  const byId = new Map(old.map((m) => [m.id, m]));
  for (const m of messages) if (m && idNumber(m.id)) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => idNumber(a.id) - idNumber(b.id)).slice(-DIRECT_KEEP);
}

export class Conversation {
  constructor(peer) {
    this.peer = peer;
    this.messages = [];      // DirectMessage in id order, no duplicates
    this.loaded = false;     // history was loaded on this page: from the first message held on, nothing is missing
    this.hasOlder = false;   // the server has messages before the first held
    this.read = 0;           // my read mark: the id number of the last message I read
    this.peerRead = 0;       // the peer's read mark (receipts)
    this.listedUnread = 0;   // the server's unread count when it last listed the conversation...
    this.listedUpTo = 0;     // ...counting up to this id number
    this.fetching = null;    // "history" | "older" | null: the one request on its way
  }

  get lastId() { return idNumber(this.messages.at(-1)?.id); }

  // Take in messages in any order, once each; return my client_ids among them (now stored).
  add(messages, me) {
    const mine = messages.filter((m) => m && idNumber(m.id) && peerOf(m, me) && same(peerOf(m, me), this.peer));
    this.messages = mergeMessages(this.messages, mine);
    return mine.filter((m) => m.client_id && same(m.from, me)).map((m) => m.client_id);
  }

  // Take in the server's listing of this conversation: its last message and read state.
  listed(entry, me) {
    if (entry.with) this.peer = entry.with;  // the stored spelling
    if (entry.last_message) this.add([entry.last_message], me);
    this.takeState(entry);
    this.listedUnread = Math.max(0, entry.unread || 0);
    this.listedUpTo = idNumber(entry.last_message?.id);
  }

  // Take in read marks from an answer (last_read, peer_last_read); they never go back.
  takeState(answer) {
    if (Number.isInteger(answer.last_read)) this.read = Math.max(this.read, answer.last_read);
    if (Number.isInteger(answer.peer_last_read)) this.peerRead = Math.max(this.peerRead, answer.peer_last_read);
  }

  // Take in the latest page of history (no `since`): the held messages before it are dropped, since
  // what lies between them and it is unknown.
  loadedLatest(answer, me) {
    const page = answer.messages || [];
    const first = idNumber(page[0]?.id);
    if (answer.has_more && first) this.messages = this.messages.filter((m) => idNumber(m.id) >= first);
    const delivered = this.add(page, me);
    this.hasOlder = Boolean(answer.has_more);
    this.loaded = true;
    this.takeState(answer);
    return delivered;
  }

  // What a catch-up asks for: `since` the last message held, once history was loaded; null before.
  since() {
    return this.loaded ? this.lastId : null;
  }

  // Take in a read mark of mine (from an ack, another tab or device); return whether it moved.
  takeRead(lastRead) {
    if (!Number.isInteger(lastRead) || lastRead <= this.read) return false;
    this.read = lastRead;
    return true;
  }

  // The id number to tell the server as read when the conversation is on screen, or 0 when nothing is new.
  toMarkRead() {
    return this.lastId > this.read ? this.lastId : 0;
  }

  // The peer's messages after my read mark: those the last listing counted, and those held after it.
  unread(me) {
    const from = Math.max(this.read, this.listedUpTo);
    const counted = this.read >= this.listedUpTo ? 0 : this.listedUnread;
    return counted + this.messages.filter((m) => !same(m.from, me) && idNumber(m.id) > from).length;
  }

  // The last message as one short line for the conversation list.
  preview(me) {
    return preview(this, me);
  }

  // "Seen" for my last message, once the peer's read mark reached it; else "".
  seen(me) {
    const mine = this.messages.findLast((m) => same(m.from, me));
    if (!mine || same(this.peer, me) || this.peerRead < idNumber(mine.id)) return "";
    return `Seen by ${this.peer}`;
  }
}

export const PREVIEW_LENGTH = 60;  // characters of the last message shown in the conversation list

// The conversation's last message as one short line ("You: " before mine), or "".
export function preview(conv, me) {
  const last = conv.messages.at(-1);
  if (!last) return "";
  const line = String(last.text ?? "").replace(/\s+/g, " ").trim();
  const short = line.length > PREVIEW_LENGTH ? `${line.slice(0, PREVIEW_LENGTH - 1)}…` : line;
  return same(last.from, me) ? `You: ${short}` : short;
}

// conversations: peer key (lower case) -> Conversation
export function ensureDirect(conversations, peer) {
  const key = peer.toLowerCase();
  let conv = conversations.get(key);
  if (!conv) {
    conv = new Conversation(peer);
    conversations.set(key, conv);
  }
  return conv;
}

export function directUnread(conv, me) {
  return conv.unread(me);
}

// Ask for everything after `since`, page by page: fetchPage(since) resolves to a direct_history answer,
// onPage(answer) takes each page in. Resolves to whether the conversation is caught up.
export async function catchUp(conv, fetchPage, onPage, rounds = CATCH_UP_ROUNDS) {
  let since = conv.since();
  if (since === null) return false;
  for (let round = 0; round < rounds; round++) {
    const answer = await fetchPage(since);
    onPage(answer);
    const page = answer.messages || [];
    if (!answer.has_more || !page.length) return true;
    since = idNumber(page.at(-1).id);
  }
  return false;
}
