// The outbox: what the user typed, kept in storage until the server has acknowledged it, and
// handed out oldest first, one at a time per conversation, so that order holds. Nothing runs on import.
//
// entries: [{ client_id, kind: "room"|"direct", room|to, text, created, status: "pending"|"failed", error }]

export function newClientId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Name the conversation an entry belongs to: "#room" or "@user" (lower case).
export function conversationOf(entry) {
  return entry.kind === "room" ? `#${entry.room}` : `@${entry.to.toLowerCase()}`;
}

export class Outbox {
  constructor(storage, { now = Date.now, newId = newClientId } = {}) {
    this.storage = storage;
    this.now = now;
    this.newId = newId;
    this.entries = [];
    this.inflight = new Set();  // client_ids sent on this connection and not answered yet
    this.holdUntil = 0;         // rate limited: send nothing before this time (ms)
  }

  // Take in what storage holds (at start, and when another tab changed it).
  load() {
    this.entries = this.storage.read("outbox", []);
    return this.entries;
  }

  add(fields) {
    const entry = { client_id: this.newId(), created: this.now(), status: "pending", error: null, ...fields };
    this.update((list) => [...list, entry]);
    return entry;
  }

  // Forget an entry the server stored (or the user gave up on); return whether it was there.
  delivered(clientId) {
    this.inflight.delete(clientId);
    if (!this.entries.some((e) => e.client_id === clientId)) return false;
    this.update((list) => list.filter((e) => e.client_id !== clientId));
    return true;
  }

  // Keep an entry the server refused for good, marked failed with the reason.
  fail(clientId, error) {
    this.inflight.delete(clientId);
    const reason = error?.message || error?.code || "refused";
    this.update((list) => list.map((e) => (e.client_id === clientId ? { ...e, status: "failed", error: reason } : e)));
  }

  forgetRoom(room) {
    this.update((list) => list.filter((e) => !(e.kind === "room" && e.room === room)));
  }

  // Return the entries to send now: the oldest pending one of each conversation, unless it is already in flight.
  due() {
    if (this.now() < this.holdUntil) return [];
    const busy = new Set();
    const due = [];
    for (const entry of this.entries) {
      const conversation = conversationOf(entry);
      if (entry.status !== "pending" || busy.has(conversation)) continue;
      busy.add(conversation);
      if (!this.inflight.has(entry.client_id)) due.push(entry);
    }
    return due;
  }

  sending(clientId) { this.inflight.add(clientId); }

  answered(clientId) { this.inflight.delete(clientId); }

  // Send whatever was in flight again, on the next connection.
  dropped() { this.inflight.clear(); }

  // Hold every send for this many seconds (rate limited); return the ms until sends resume.
  hold(seconds) {
    this.holdUntil = this.now() + 1000 * (seconds || 1);
    return this.holdUntil - this.now();
  }

  pending() {
    return this.entries.filter((e) => e.status === "pending").length;
  }

  update(fn) {
    this.entries = this.storage.change("outbox", [], fn);
  }
}
