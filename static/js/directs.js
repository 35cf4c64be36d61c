// Direct conversations: kept in storage per user (the server relays them live), merged by id,
// ordered by time. Nothing runs on import.
import { same } from "./room.js";

export const DIRECT_KEEP = 200;  // direct messages kept per conversation

// conversations: peer key (lower case) -> { peer, messages: [DirectMessage] by ts, read: ts }
export function ensureDirect(conversations, peer) {
  const key = peer.toLowerCase();
  let conv = conversations.get(key);
  if (!conv) {
    conv = { peer, messages: [], read: 0 };
    conversations.set(key, conv);
  }
  return conv;
}

// Merge messages by id, the newer copy winning; keep the latest DIRECT_KEEP in time order.
export function mergeMessages(old, messages) {
  const byId = new Map(old.map((m) => [m.id, m]));
  for (const m of messages) if (m && m.id) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => a.ts - b.ts).slice(-DIRECT_KEEP);
}

// Return the peer of a direct message, seen from me.
export function peerOf(m, me) {
  return same(m.from, me) ? m.to : m.from;
}

export function directUnread(conv, me) {
  return conv.messages.filter((m) => !same(m.from, me) && m.ts > conv.read).length;
}

// Store a conversation, merged with what another tab may have stored meanwhile.
export function saveDirect(storage, conv) {
  storage.change("directs", {}, (all) => {
    const key = conv.peer.toLowerCase();
    const old = all[key] || { peer: conv.peer, messages: [], read: 0 };
    all[key] = { peer: conv.peer, messages: mergeMessages(old.messages, conv.messages),
                 read: Math.max(old.read || 0, conv.read || 0) };
    return all;
  });
}
