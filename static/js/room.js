// A room channel: its one lifecycle state, and its messages kept in seq order without duplicates,
// with the gaps between them found and filled. Nothing runs on import.

export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const BACKGROUND_KEEP = 200;  // messages kept in memory per room not on screen
export const GAP_PAGE = 100;         // messages asked for per request while filling a gap
export const GAP_ROUNDS = 50;        // requests at most per gap
export const UPDATES_LIMIT = 500;    // changed messages a join answers with at most
// The reactions the server takes (docs/protocol.md), one grapheme each.
export const REACTIONS = ["👍", "👎", "❤️", "😂", "😮", "😢", "🎉", "🙏", "👀", "🔥", "✅", "🚀"];

export const same = (a, b) => a.toLowerCase() === b.toLowerCase();

// The lifecycle. "new": never joined, so the first join asks for the latest messages;
// "joining": a join is on its way; "joined": on this connection; "idle": joined before but not on
// this connection (a rejoin sends `since`); "failed": the server refused the join (error says why).
export const NEW = "new";
export const JOINING = "joining";
export const JOINED = "joined";
export const IDLE = "idle";
export const FAILED = "failed";

export class RoomChannel {
  constructor(name) {
    this.name = name;
    this.state = NEW;
    this.seq = null;       // highest seq with nothing missing below it (down to the first loaded); null before a join
    this.lastSeq = 0;      // highest seq known
    this.read = null;      // highest seq seen on screen; null: not known yet
    this.rev = null;       // highest rev with every change below it taken in; null before a join said where
    this.revsAhead = new Set();  // revs taken in above this.rev, waiting for the ones between
    this.moreUpdates = false;    // the last join's `updated` was cut at its limit: join again for the rest
    this.readers = new Map();    // other member -> the highest seq they told the server they read (receipts)
    this.newFrom = null;         // the first seq that was unread when the room came on screen: the divider
    this.members = [];
    this.typing = new Map();    // user -> expiry (ms)
    this.messages = new Map();  // seq -> Message
    this.hasOlder = false;
    this.error = null;
    this.fetching = null;  // the one request for messages on its way: "gap" | "older" | null
  }

  get joined() { return this.state === JOINED; }

  // Start a join: its payload, with `since` once the room knows where it stands.
  join() {
    this.state = JOINING;
    if (this.seq === null) return { room: this.name };
    return this.rev === null ? { room: this.name, since: this.seq }
      : { room: this.name, since: this.seq, revs_since: this.rev };
  }

  // Take in the join's ack, members and messages; return the own client_ids now stored.
  accept(ack, me) {
    if (this.seq === null) this.seq = ack.messages?.length ? ack.messages[0].seq - 1 : (ack.last_seq || 0);
    this.state = JOINED;
    this.error = null;
    this.members = ack.members || [];
    this.lastSeq = Math.max(this.lastSeq, ack.last_seq || 0);
    if (Number.isInteger(ack.last_read) && ack.last_read > (this.read ?? 0)) this.read = ack.last_read;
    const delivered = this.add(ack.messages || [], me);
    const updated = Array.isArray(ack.updated) ? ack.updated : [];
    for (const m of updated) this.update(m);
    this.moreUpdates = updated.length >= UPDATES_LIMIT;
    if (this.moreUpdates) this.takeRev(updated.at(-1).rev, true);
    else if (Number.isInteger(ack.last_rev)) this.takeRev(ack.last_rev, true);
    return delivered;
  }

  // Take in a changed message (edited, deleted, reacted to) unless what is held is as new.
  update(m) {
    if (!m || m.room !== this.name || !Number.isInteger(m.seq) || !Number.isInteger(m.rev)) return;
    const held = this.messages.get(m.seq);
    if (held && (held.rev || 0) <= m.rev) this.messages.set(m.seq, m);
    this.takeRev(m.rev, false);
  }

  // Count a rev as taken in; `all`: every rev up to it is (a join's answer said so).
  takeRev(rev, all) {
    if (this.rev === null) {
      if (!all) return;  // before the first join: that join's answer covers it
      this.rev = rev;
    } else if (all) this.rev = Math.max(this.rev, rev);
    else if (rev > this.rev) this.revsAhead.add(rev);
    while (this.revsAhead.has(this.rev + 1)) this.revsAhead.delete(++this.rev);
    for (const ahead of this.revsAhead) if (ahead <= this.rev) this.revsAhead.delete(ahead);
  }

  refuse(error) {
    this.state = FAILED;
    this.error = error || { code: "unavailable", message: "could not join" };
  }

  // Forget the connection that dropped; the next connect rejoins.
  drop() {
    this.state = this.seq === null ? NEW : IDLE;
    this.typing.clear();
  }

  // Take in messages in any order, once each; return the own client_ids among them (now stored).
  add(messages, me) {
    const delivered = [];
    for (const m of messages) {
      if (!m || m.room !== this.name || !Number.isInteger(m.seq)) continue;
      if (!this.messages.has(m.seq)) this.messages.set(m.seq, m);
      this.lastSeq = Math.max(this.lastSeq, m.seq);
      if (m.client_id && me && same(m.user, me)) delivered.push(m.client_id);
      this.typing.delete(m.user);
    }
    if (this.seq !== null) while (this.messages.has(this.seq + 1)) this.seq += 1;
    this.hasOlder = this.messages.size > 0 && this.lowest() > 1;
    return delivered;
  }

  // Keep only the latest messages of a room not on screen; seq and unread counts stay exact.
  trim(keep = BACKGROUND_KEEP) {
    if (this.messages.size <= keep * 1.5) return;
    const seqs = this.sortedSeqs();
    for (const seq of seqs.slice(0, seqs.length - keep)) this.messages.delete(seq);
    this.hasOlder = this.messages.size > 0 && this.lowest() > 1;
  }

  // Tell whether messages are missing between what is held in order and the highest seq known.
  hasGap() {
    return this.joined && this.seq !== null && this.lastSeq > this.seq;
  }

  lowest() { return Math.min(...this.messages.keys()); }

  sortedSeqs() { return [...this.messages.keys()].sort((a, b) => a - b); }

  // Mark what is on screen read (a room new to us starts read); return whether `read` changed.
  markRead(looking) {
    const before = this.read;
    if (this.read === null || (looking && this.read < this.lastSeq)) this.read = this.lastSeq;
    return this.read !== before;
  }

  unread() {
    return Math.max(0, this.lastSeq - (this.read ?? this.lastSeq));
  }

  // Expire the "is typing" of users without news; return whether anyone's expired.
  expireTyping(now) {
    let changed = false;
    for (const [user, until] of this.typing) {
      if (until <= now) { this.typing.delete(user); changed = true; }
    }
    return changed;
  }
}

// Ask for the missing messages page by page until none is missing:
// fetchPage(after, limit) resolves to {messages, has_more}; onPage(messages) takes each page in.
export async function fillGap(room, fetchPage, onPage) {
  if (room.fetching || !room.hasGap()) return;
  room.fetching = "gap";
  try {
    for (let rounds = 0; rounds < GAP_ROUNDS && room.seq < room.lastSeq; rounds++) {
      const before = room.seq;
      const data = await fetchPage(room.seq, GAP_PAGE);
      onPage(data.messages || []);
      if (room.seq === before || !data.has_more) break;
    }
  } finally {
    room.fetching = null;
  }
}
