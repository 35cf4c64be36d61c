// Papo's browser client: one explicit state, rendered into the page; a typed
// message is never lost (outbox in localStorage, retried with its client_id).
// Data comes from data- attributes on <body>; text goes in with textContent only.
import { createNotifications } from "./notifications.js";

const TYPING_SEND_EVERY = 2500;  // ms between two `typing: true` while typing
const TYPING_IDLE = 3000;        // ms without a key before `typing: false`
const TYPING_SHOWN = 6000;       // ms another user's "typing" stays without news
const ACK_TIMEOUT = 10000;       // ms to wait for an ack before trying again
const FLUSH_EVERY = 3000;        // ms between outbox sweeps while online
const LOBBY_EVERY = 10000;       // ms between two lobby refreshes
const DIRECT_KEEP = 200;         // direct messages kept per conversation
const BACKGROUND_KEEP = 200;     // messages kept in memory per room not on screen
const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;

const body = document.body;
const me = body.dataset.user;
const view = { page: body.dataset.page, room: body.dataset.room || null, peer: body.dataset.peer || null };
const same = (a, b) => a.toLowerCase() === b.toLowerCase();

// ---------------------------------------------------------------------------
// The state. Everything on screen is rendered from it.
//
// rooms:   name -> { name, seq: highest seq with nothing missing below it (down to the
//          first loaded), lastSeq: highest seq known, read: highest seq seen here,
//          synced: joined once (so rejoins send since), joined: joined on this connection,
//          members: [user], typing: Map(user -> expiry ms), messages: Map(seq -> Message),
//          hasOlder, filling }
// directs: peer key (lower case) -> { peer, messages: [DirectMessage] by ts, read: ts }
// outbox:  [{ client_id, kind: "room"|"direct", room|to, text, created, status: "pending"|"failed", error }]
// connection: { status: "connecting"|"online"|"offline", retries }
const state = {
  user: me,
  view,
  connection: { status: "connecting", retries: 0 },
  rooms: new Map(),
  directs: new Map(),
  outbox: [],
  lobby: { rooms: null, at: 0, error: null },
};
window.papoState = state;  // read-only handle for debugging and tests

// ---------------------------------------------------------------------------
// Persistence, per user, shared by the user's tabs: every write re-reads first.
const saved = {
  key: (name) => `papo:v1:${me.toLowerCase()}:${name}`,
  read(name, fallback) {
    try {
      const raw = localStorage.getItem(this.key(name));
      return raw ? JSON.parse(raw) : fallback;
    } catch { return fallback; }
  },
  write(name, value) {
    try { localStorage.setItem(this.key(name), JSON.stringify(value)); } catch { /* full or disabled */ }
  },
  change(name, fallback, fn) {
    const value = fn(this.read(name, fallback));
    this.write(name, value);
    return value;
  },
};

function loadSaved() {
  for (const [name, info] of Object.entries(saved.read("rooms", {}))) {
    if (ROOM_RE.test(name)) ensureRoom(name).read = info.read ?? null;
  }
  if (view.room) ensureRoom(view.room, true);
  for (const [key, conv] of Object.entries(saved.read("directs", {}))) {
    state.directs.set(key, { peer: conv.peer, messages: conv.messages || [], read: conv.read || 0 });
  }
  if (view.peer) ensureDirect(view.peer);
  state.outbox = saved.read("outbox", []);
}

function saveRooms() {
  saved.change("rooms", {}, (all) => {
    for (const room of state.rooms.values()) {
      const read = Math.max(all[room.name]?.read ?? 0, room.read ?? 0);
      all[room.name] = { read };
    }
    return all;
  });
}

function forgetRoom(name) {
  saved.change("rooms", {}, (all) => { delete all[name]; return all; });
  saved.change("outbox", [], (list) => list.filter((e) => !(e.kind === "room" && e.room === name)));
}

function saveDirect(conv) {
  saved.change("directs", {}, (all) => {
    const key = conv.peer.toLowerCase();
    const old = all[key] || { peer: conv.peer, messages: [], read: 0 };
    const byId = new Map(old.messages.map((m) => [m.id, m]));
    for (const m of conv.messages) byId.set(m.id, m);
    const messages = [...byId.values()].sort((a, b) => a.ts - b.ts).slice(-DIRECT_KEEP);
    all[key] = { peer: conv.peer, messages, read: Math.max(old.read || 0, conv.read || 0) };
    return all;
  });
}

// Another tab of this user changed something: take it in.
window.addEventListener("storage", (event) => {
  if (!event.key || !event.key.startsWith(saved.key(""))) return;
  const name = event.key.slice(saved.key("").length);
  if (name === "outbox") {
    state.outbox = saved.read("outbox", []);
    flush();
  } else if (name === "directs") {
    for (const [key, conv] of Object.entries(saved.read("directs", {}))) {
      const mine = ensureDirect(conv.peer);
      mergeDirects(mine, conv.messages || []);
      mine.read = Math.max(mine.read, conv.read || 0);
      state.directs.set(key, mine);
    }
  } else if (name === "rooms") {
    const all = saved.read("rooms", {});
    for (const [roomName, info] of Object.entries(all)) {
      if (!ROOM_RE.test(roomName)) continue;
      const known = state.rooms.has(roomName);
      const room = ensureRoom(roomName);
      room.read = Math.max(room.read ?? 0, info.read ?? 0);
      if (!known && socket.connected) joinRoom(room);
    }
    for (const room of [...state.rooms.values()]) {
      if (!(room.name in all) && room.name !== view.room) state.rooms.delete(room.name);
    }
  }
  render();
});

// ---------------------------------------------------------------------------
// Rooms: seq order, no duplicates, gaps filled.
function ensureRoom(name, viewing = false) {
  let room = state.rooms.get(name);
  if (!room) {
    room = {
      name, seq: 0, lastSeq: 0, read: null, synced: false, joined: false, members: [],
      typing: new Map(), messages: new Map(), hasOlder: false, filling: false, error: null,
    };
    state.rooms.set(name, room);
    if (viewing) saveRooms();
  }
  return room;
}

function addMessages(room, messages) {
  for (const m of messages) {
    if (!m || m.room !== room.name || !Number.isInteger(m.seq)) continue;
    if (!room.messages.has(m.seq)) room.messages.set(m.seq, m);
    room.lastSeq = Math.max(room.lastSeq, m.seq);
    if (m.client_id && same(m.user, me)) delivered(m.client_id);
    room.typing.delete(m.user);
  }
  while (room.messages.has(room.seq + 1)) room.seq += 1;
  if (room.name !== view.room && room.messages.size > BACKGROUND_KEEP * 1.5) {
    // Rooms not on screen keep only their latest messages; seq and unread counts stay exact.
    const keys = [...room.messages.keys()].sort((a, b) => a - b);
    for (const seq of keys.slice(0, keys.length - BACKGROUND_KEEP)) room.messages.delete(seq);
  }
  const lowest = Math.min(...room.messages.keys());
  room.hasOlder = room.messages.size > 0 && lowest > 1;
  markRead(room);
  if (room.joined && room.lastSeq > room.seq) fillGapSoon(room);
  render();
}

function fillGapSoon(room) {
  // Two broadcasts may cross on the wire; give the missing one a moment before asking.
  if (room.gapTimer) return;
  room.gapTimer = setTimeout(() => { room.gapTimer = null; fillGap(room); }, 300);
}

async function fillGap(room) {
  if (room.filling || room.seq >= room.lastSeq) return;
  room.filling = true;
  try {
    for (let rounds = 0; rounds < 50 && room.seq < room.lastSeq; rounds++) {
      const before = room.seq;
      const data = await api(`/api/rooms/${encodeURIComponent(room.name)}/messages?after=${room.seq}&limit=100`);
      addMessages(room, data.messages || []);
      if (room.seq === before || !data.has_more) break;
    }
  } catch (err) {
    console.warn("papo: could not fill a gap", room.name, err);
  } finally {
    room.filling = false;
  }
}

function markRead(room) {
  const looking = view.room === room.name && document.visibilityState === "visible";
  const before = room.read;
  // A room new to us starts read; the one on screen is read as it comes.
  if (room.read === null || (looking && room.read < room.lastSeq)) room.read = room.lastSeq;
  if (room.read !== before) saveRooms();
}

function unread(room) {
  return Math.max(0, room.lastSeq - (room.read ?? room.lastSeq));
}

// ---------------------------------------------------------------------------
// Direct messages: kept in localStorage (the server relays them live).
function ensureDirect(peer) {
  const key = peer.toLowerCase();
  let conv = state.directs.get(key);
  if (!conv) {
    conv = { peer, messages: [], read: 0 };
    state.directs.set(key, conv);
  }
  return conv;
}

function mergeDirects(conv, messages) {
  const byId = new Map(conv.messages.map((m) => [m.id, m]));
  for (const m of messages) if (m && m.id) byId.set(m.id, m);
  conv.messages = [...byId.values()].sort((a, b) => a.ts - b.ts).slice(-DIRECT_KEEP);
}

function addDirect(m) {
  const peer = same(m.from, me) ? m.to : m.from;
  const conv = ensureDirect(peer);
  if (!same(conv.peer, peer) || conv.peer !== peer) conv.peer = peer;  // take the canonical spelling
  mergeDirects(conv, [m]);
  if (m.client_id && same(m.from, me)) delivered(m.client_id);
  if (same(m.from, me)) conv.read = Math.max(conv.read, m.ts);
  markDirectRead(conv);
  saveDirect(conv);
  render();
}

function markDirectRead(conv) {
  const looking = view.peer && same(view.peer, conv.peer) && document.visibilityState === "visible";
  const last = conv.messages.length ? conv.messages[conv.messages.length - 1].ts : 0;
  if (looking && conv.read < last) {
    conv.read = last;
    saveDirect(conv);
  }
}

function directUnread(conv) {
  return conv.messages.filter((m) => !same(m.from, me) && m.ts > conv.read).length;
}

// ---------------------------------------------------------------------------
// The outbox: what the user typed, until the server has acknowledged it.
const inflight = new Set();  // client_ids sent on this connection and not answered yet

function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function enqueue(entry) {
  entry = { client_id: newClientId(), created: Date.now(), status: "pending", error: null, ...entry };
  state.outbox = saved.change("outbox", [], (list) => [...list, entry]);
  render();
  flush();
}

function delivered(clientId) {
  inflight.delete(clientId);
  if (!state.outbox.some((e) => e.client_id === clientId)) return;
  state.outbox = saved.change("outbox", [], (list) => list.filter((e) => e.client_id !== clientId));
}

function failEntry(clientId, error) {
  inflight.delete(clientId);
  state.outbox = saved.change("outbox", [], (list) =>
    list.map((e) => (e.client_id === clientId ? { ...e, status: "failed", error: error.message || error.code } : e)));
  render();
}

function discard(clientId) {
  delivered(clientId);
  render();
}

let holdUntil = 0;  // rate limited: send nothing before this time

// Send the oldest pending entry of each conversation, one at a time so that order holds.
function flush() {
  if (!socket.connected || Date.now() < holdUntil) return;
  const busy = new Set();
  for (const entry of state.outbox) {
    const target = entry.kind === "room" ? `#${entry.room}` : `@${entry.to.toLowerCase()}`;
    if (entry.status !== "pending" || busy.has(target)) continue;
    busy.add(target);
    if (inflight.has(entry.client_id)) continue;
    if (entry.kind === "room") {
      const room = ensureRoom(entry.room);
      if (!room.joined) { if (!room.joining) joinRoom(room); continue; }
      send(entry, "message", { room: entry.room, text: entry.text, client_id: entry.client_id },
           (message) => addMessages(room, [message]));
    } else {
      send(entry, "direct", { to: entry.to, text: entry.text, client_id: entry.client_id }, addDirect);
    }
  }
}

function send(entry, event, payload, onStored) {
  inflight.add(entry.client_id);
  const conn = socket.id;
  socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, ack) => {
    if (socket.id !== conn) return;  // answered on an old connection: the new one resends
    inflight.delete(entry.client_id);
    if (err) { setTimeout(flush, 500); return; }  // no answer in time: try again
    if (ack && ack.ok) {
      onStored(ack.message);
      delivered(entry.client_id);
      render();
      flush();
      return;
    }
    const code = ack?.error?.code;
    if (code === "rate_limited") {
      holdUntil = Date.now() + 1000 * (ack.retry_after || 1);
      setTimeout(flush, holdUntil - Date.now() + 50);
    } else if (code === "not_in_room") {
      const room = ensureRoom(entry.room);
      room.joined = false;
      joinRoom(room);
    } else if (["invalid_message", "too_large", "invalid_room", "not_found", "forbidden", "invalid_payload"].includes(code)) {
      failEntry(entry.client_id, ack.error);
      toast({ level: "error", title: "Message not sent", body: ack.error.message || code });
    } else {
      setTimeout(flush, 2000);  // unavailable or unknown: the server said try again
    }
  });
}

setInterval(flush, FLUSH_EVERY);

// ---------------------------------------------------------------------------
// The connection. One path for the first connect and every reconnect.
const socket = io({ reconnectionDelay: 500, reconnectionDelayMax: 4000, timeout: 8000 });

socket.on("connect", () => {
  state.connection = { status: "online", retries: 0 };
  for (const room of state.rooms.values()) joinRoom(room);
  render();
  flush();
});

socket.on("disconnect", () => {
  inflight.clear();
  socket.sendBuffer = [];  // resend from the outbox instead, once joined again
  for (const room of state.rooms.values()) {
    room.joined = false;
    room.joining = false;
    room.typing.clear();
  }
  state.connection = { status: "offline", retries: state.connection.retries };
  render();
});

socket.on("connect_error", (err) => {
  if (err?.data?.code === "unauthorized" || err?.message === "unauthorized") {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  // Never connected yet: still "connecting"; lost after being online: "offline" while retrying.
  if (state.connection.status === "online") state.connection = { status: "offline", retries: 0 };
  render();
});

socket.io.on("reconnect_attempt", (attempt) => {
  state.connection = { status: state.connection.status === "connecting" ? "connecting" : "offline", retries: attempt };
  render();
});

function joinRoom(room) {
  if (!socket.connected) return;
  const payload = { room: room.name };
  if (room.synced) payload.since = room.seq;
  room.joining = true;
  const conn = socket.id;
  socket.timeout(ACK_TIMEOUT).emit("join", payload, (err, ack) => {
    if (socket.id !== conn) return;
    room.joining = false;
    if (err) { setTimeout(() => joinRoom(room), 1000); return; }
    if (!ack?.ok) {
      room.error = ack?.error || { code: "unavailable", message: "could not join" };
      if (room.error.code === "invalid_room") state.rooms.delete(room.name);
      else setTimeout(() => joinRoom(room), 3000);
      render();
      return;
    }
    if (!room.synced && ack.messages.length) room.seq = ack.messages[0].seq - 1;
    else if (!room.synced) room.seq = ack.last_seq;
    room.synced = true;
    room.joined = true;
    room.error = null;
    room.members = ack.members || [];
    room.lastSeq = Math.max(room.lastSeq, ack.last_seq || 0);
    addMessages(room, ack.messages || []);
    if (ack.truncated || room.lastSeq > room.seq) fillGap(room);
    flush();
  });
}

function loadOlder(room) {
  if (!socket.connected || room.loadingOlder) return;
  const before = Math.min(...room.messages.keys());
  room.loadingOlder = true;
  socket.timeout(ACK_TIMEOUT).emit("history", { room: room.name, before, limit: 50 }, (err, ack) => {
    room.loadingOlder = false;
    if (err || !ack?.ok) return;
    const keepFrom = scroller ? scroller.scrollHeight - scroller.scrollTop : 0;
    addMessages(room, ack.messages);
    room.hasOlder = ack.has_more;
    renderNow();
    if (scroller) scroller.scrollTop = scroller.scrollHeight - keepFrom;
  });
}

socket.on("message", (m) => {
  const room = state.rooms.get(m?.room);
  if (room) addMessages(room, [m]);
});

socket.on("presence", (p) => {
  const room = state.rooms.get(p?.room);
  if (room && Array.isArray(p.members)) {
    room.members = p.members;
    if (p.action === "leave") room.typing.delete(p.user);
    render();
  }
  refreshLobbySoon();
});

socket.on("typing", (t) => {
  const room = state.rooms.get(t?.room);
  if (!room || same(t.user, me)) return;
  if (t.typing) room.typing.set(t.user, Date.now() + TYPING_SHOWN);
  else room.typing.delete(t.user);
  render();
});

socket.on("direct", (m) => { if (m && m.id) addDirect(m); });

// Notifications: notifications.js toasts each once, keeps the unread badge and the desktop alerts.
const notifications = createNotifications({ user: me, toast });
socket.on("notification", (n) => notifications.received(n));
socket.on("notifications_read", (r) => notifications.read(r));

// Expire "is typing" lines that got no news.
setInterval(() => {
  const now = Date.now();
  let changed = false;
  for (const room of state.rooms.values()) {
    for (const [user, until] of room.typing) {
      if (until <= now) { room.typing.delete(user); changed = true; }
    }
  }
  if (changed) render();
}, 1000);

// ---------------------------------------------------------------------------
// HTTP
async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (resp.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    throw new Error("unauthorized");
  }
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return resp.json();
}

let lobbyTimer = null;
async function refreshLobby() {
  if (view.page !== "lobby") return;
  try {
    const data = await api("/api/rooms");
    state.lobby = { rooms: data.rooms || [], at: Date.now(), error: null };
  } catch (err) {
    state.lobby = { ...state.lobby, error: String(err.message || err) };
  }
  render();
}

function refreshLobbySoon() {
  if (view.page !== "lobby" || lobbyTimer) return;
  lobbyTimer = setTimeout(() => { lobbyTimer = null; refreshLobby(); }, 300);
}

// ---------------------------------------------------------------------------
// Rendering: from the state to the page, batched per frame.
const $ = (id) => document.getElementById(id);
const scroller = $("scroller");
let frame = 0;

function render() {
  if (!frame) frame = requestAnimationFrame(renderNow);
}

function renderNow() {
  frame = 0;
  renderConnection();
  renderSidebar();
  if (view.page === "lobby") renderLobby();
  if (view.room) renderRoom(state.rooms.get(view.room));
  if (view.peer) renderDirect(ensureDirect(view.peer));
  renderTitle();
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "href" || key === "datetime" || key === "title" || key === "type") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// Make container's children the given keyed items, reusing nodes whose signature is unchanged.
function syncList(container, items) {
  const old = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key) old.set(child.dataset.key, child);
    else child.remove();
  }
  const wanted = items.map((item) => {
    const node = old.get(item.key);
    if (node && node.dataset.sig === item.sig) {
      old.delete(item.key);
      return node;
    }
    const fresh = item.make();
    fresh.dataset.key = item.key;
    fresh.dataset.sig = item.sig;
    return fresh;
  });
  for (const node of old.values()) node.remove();
  let cursor = container.firstElementChild;
  for (const node of wanted) {
    if (node === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
  }
}

function renderConnection() {
  const node = $("connection");
  if (!node) return;
  const { status, retries } = state.connection;
  const waiting = state.outbox.filter((e) => e.status === "pending").length;
  let text = status === "online" ? "Online" : status === "connecting"
    ? (retries ? `Connecting (try ${retries})…` : "Connecting…")
    : (retries ? `Offline · reconnecting (try ${retries})` : "Offline · reconnecting");
  if (waiting && status !== "online") text += ` · ${waiting} waiting`;
  node.dataset.status = status;
  node.dataset.retries = String(retries);
  node.title = status === "online" ? "Connected to the server" : "Not connected; messages wait in the outbox and go out on reconnect";
  node.querySelector(".connection-text").textContent = text;
}

function renderSidebar() {
  const rooms = $("my-rooms");
  if (rooms) {
    const list = [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (!list.length) syncList(rooms, [{ key: "empty", sig: "", make: () => el("li", { class: "empty", text: "No rooms yet." }) }]);
    else syncList(rooms, list.map((room) => {
      const count = view.room === room.name ? 0 : unread(room);
      return {
        key: `r:${room.name}`, sig: `${count}|${view.room === room.name}`,
        make: () => el("li", {}, [el("a", {
          href: `/room/${encodeURIComponent(room.name)}`, "aria-current": view.room === room.name ? "page" : null,
          "aria-label": count ? `${room.name}, ${count} unread` : room.name,
        }, [el("span", { class: "name", text: `# ${room.name}` }), count ? el("span", { class: "badge", text: String(count) }) : null])]),
      };
    }));
  }
  const directs = $("my-directs");
  if (directs) {
    const list = [...state.directs.values()]
      .filter((c) => c.messages.length || (view.peer && same(view.peer, c.peer)))
      .sort((a, b) => (b.messages.at(-1)?.ts || 0) - (a.messages.at(-1)?.ts || 0));
    if (!list.length) syncList(directs, [{ key: "empty", sig: "", make: () => el("li", { class: "empty", text: "No conversations yet." }) }]);
    else syncList(directs, list.map((conv) => {
      const current = Boolean(view.peer && same(view.peer, conv.peer));
      const count = current ? 0 : directUnread(conv);
      return {
        key: `d:${conv.peer.toLowerCase()}`, sig: `${conv.peer}|${count}|${current}`,
        make: () => el("li", {}, [el("a", {
          href: `/dm/${encodeURIComponent(conv.peer)}`, "aria-current": current ? "page" : null,
          "aria-label": count ? `${conv.peer}, ${count} unread` : conv.peer, "data-peer": conv.peer,
        }, [el("span", { class: "name", text: `@ ${conv.peer}` }), count ? el("span", { class: "badge", text: String(count) }) : null])]),
      };
    }));
  }
}

function renderLobby() {
  const rows = $("room-rows");
  if (!rows) return;
  const { rooms, at, error } = state.lobby;
  if (!rooms) return;
  // Rooms we joined that the server lists not yet (no message in them so far) show from our own state.
  const listed = new Set(rooms.map((r) => r.name));
  const mine = [...state.rooms.values()].filter((r) => r.joined && !listed.has(r.name))
    .map((r) => ({ name: r.name, members: r.members.length, last_seq: r.lastSeq }));
  const sorted = [...rooms, ...mine].sort((a, b) => b.members - a.members || a.name.localeCompare(b.name));
  if (!sorted.length) {
    syncList(rows, [{ key: "empty", sig: "", make: () => el("tr", { class: "empty" }, [el("td", { colSpan: 3, text: "No rooms yet: create the first one above." })]) }]);
  } else {
    syncList(rows, sorted.map((r) => {
      const joined = state.rooms.has(r.name);
      return {
        key: r.name, sig: `${r.members}|${r.last_seq}|${joined}`,
        make: () => el("tr", { "data-room": r.name }, [
          el("td", {}, [el("a", { href: `/room/${encodeURIComponent(r.name)}`, text: `# ${r.name}` }),
                        joined ? el("span", { class: "joined", text: "joined" }) : null]),
          el("td", { class: "num online", "data-members": String(r.members) }, [
            el("span", { class: r.members ? "online-dot" : "online-dot none", "aria-hidden": "true" }),
            document.createTextNode(String(r.members))]),
          el("td", { class: "num", text: String(r.last_seq) }),
        ]),
      };
    }));
  }
  const updated = $("rooms-updated");
  if (updated) updated.textContent = error ? `Could not refresh: ${error}` : at ? `Updated ${clock(at, true)}` : "";
}

function renderRoom(room) {
  if (!room) return;
  const pending = state.outbox.filter((e) => e.kind === "room" && e.room === room.name);
  const seqs = [...room.messages.keys()].sort((a, b) => a - b);
  const deliveredIds = new Set();
  for (const seq of seqs) {
    const m = room.messages.get(seq);
    if (m.client_id && same(m.user, me)) deliveredIds.add(m.client_id);
  }
  const items = seqs.map((seq) => messageItem(room.messages.get(seq), `s:${seq}`, "delivered", m => m.user));
  for (const e of pending) {
    if (deliveredIds.has(e.client_id)) continue;  // the stored copy is already on screen
    items.push(messageItem({ user: me, text: e.text, ts: e.created, client_id: e.client_id, error: e.error },
                           `c:${e.client_id}`, e.status, m => m.user));
  }
  renderMessages(items, room.hasOlder);
  renderTyping(room);
  const list = $("members");
  if (list) {
    const members = [...room.members].sort((a, b) => a.localeCompare(b));
    syncList(list, members.map((user) => ({
      key: user, sig: "",
      make: () => el("li", { class: same(user, me) ? "me-member" : null, text: same(user, me) ? `${user} (you)` : user, "data-user": user }),
    })));
    $("member-count").textContent = room.joined ? `(${members.length})` : "";
  }
}

function renderDirect(conv) {
  const items = conv.messages.map((m) => messageItem(m, `m:${m.id}`, "delivered", x => x.from));
  const deliveredIds = new Set(conv.messages.filter((m) => m.client_id && same(m.from, me)).map((m) => m.client_id));
  for (const e of state.outbox) {
    if (e.kind !== "direct" || !same(e.to, conv.peer) || deliveredIds.has(e.client_id)) continue;
    items.push(messageItem({ from: me, text: e.text, ts: e.created, client_id: e.client_id, error: e.error },
                           `c:${e.client_id}`, e.status, x => x.from));
  }
  renderMessages(items, false);
}

function messageItem(m, key, status, authorOf) {
  const author = authorOf(m);
  const own = same(author, me);
  return {
    key, sig: `${status}|${m.error || ""}`,
    make: () => {
      const stateText = status === "pending" ? "Sending…" : status === "failed" ? `Not sent: ${m.error || "refused"}` : own ? "Delivered" : "";
      const meta = el("div", { class: "meta" }, [
        el("span", { class: "author", text: own ? `${author} (you)` : author }),
        el("time", { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString(), text: clock(m.ts) }),
        stateText ? el("span", { class: "state", text: stateText }) : null,
        status === "failed" ? el("button", { type: "button", class: "button ghost discard", text: "Discard", "data-discard": m.client_id }) : null,
      ]);
      return el("li", {
        class: own ? "msg own" : "msg", "data-status": status, "data-seq": m.seq ? String(m.seq) : null,
        "data-client-id": m.client_id || null, "data-author": author,
      }, [meta, el("p", { class: "text", text: m.text })]);
    },
  };
}

function renderMessages(items, hasOlder) {
  const list = $("messages");
  if (!list) return;
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const before = list.lastElementChild?.dataset.key;
  syncList(list, items);
  const older = $("load-older");
  if (older) older.hidden = !hasOlder;
  const grew = list.lastElementChild?.dataset.key !== before;
  const ownLast = list.lastElementChild?.classList.contains("own");
  if (grew && (nearBottom || ownLast)) scroller.scrollTop = scroller.scrollHeight;
}

function renderTyping(room) {
  const node = $("typing");
  if (!node) return;
  const users = [...room.typing.keys()].sort();
  node.textContent = users.length === 0 ? "" : users.length === 1 ? `${users[0]} is typing…`
    : users.length <= 3 ? `${users.slice(0, -1).join(", ")} and ${users.at(-1)} are typing…` : "Several people are typing…";
}

function renderTitle() {
  let total = 0;
  for (const room of state.rooms.values()) if (room.name !== view.room) total += unread(room);
  for (const conv of state.directs.values()) if (!(view.peer && same(view.peer, conv.peer))) total += directUnread(conv);
  const badge = $("side-unread");
  if (badge) {
    badge.hidden = !total;
    badge.textContent = String(total);
  }
  const base = view.room ? `#${view.room}` : view.peer ? `@${view.peer}` : "Lobby";
  document.title = `${total ? `(${total}) ` : ""}${base} · Papo`;
}

function clock(ts, seconds = false) {
  const d = new Date(ts);
  const opts = { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) };
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], opts) : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${d.toLocaleTimeString([], opts)}`;
}

// ---------------------------------------------------------------------------
// Toasts: notifications from the server, and the client's own news.
function toast(n) {
  const area = $("toasts");
  if (!area) return;
  const level = ["info", "success", "warning", "error"].includes(n.level) ? n.level : "info";
  const node = el("div", { class: "toast", role: level === "error" ? "alert" : "status", "data-level": level, "data-id": n.id || null }, [
    el("span", { class: "title", text: String(n.title ?? "") }),
    el("button", { type: "button", class: "button ghost close", "aria-label": "Dismiss notification", text: "×" }),
    n.body ? el("p", { class: "body", text: String(n.body) }) : null,
  ]);
  node.querySelector(".close").addEventListener("click", () => node.remove());
  area.append(node);
  while (area.children.length > 5) area.firstElementChild.remove();
  setTimeout(() => node.remove(), level === "error" ? 15000 : 8000);
}

// ---------------------------------------------------------------------------
// User input
function wireForms() {
  for (const form of document.querySelectorAll('form[data-form="join-room"]')) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = form.querySelector("input");
      const name = input.value.trim().replace(/^#/, "").toLowerCase();
      if (!ROOM_RE.test(name)) {
        input.setCustomValidity("Use a-z, 0-9, - and _ (up to 64), starting with a letter or digit.");
        input.reportValidity();
        return;
      }
      window.location.assign(`/room/${encodeURIComponent(name)}`);
    });
    form.querySelector("input").addEventListener("input", (e) => e.target.setCustomValidity(""));
  }
  for (const form of document.querySelectorAll('form[data-form="open-direct"]')) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = form.querySelector("input");
      const peer = input.value.trim().replace(/^@/, "");
      if (!USER_RE.test(peer)) {
        input.setCustomValidity("Usernames are 1 to 32 of A-Z, a-z, 0-9, ., - and _.");
        input.reportValidity();
        return;
      }
      window.location.assign(`/dm/${encodeURIComponent(peer)}`);
    });
    form.querySelector("input").addEventListener("input", (e) => e.target.setCustomValidity(""));
  }
}

function wireComposer() {
  const form = $("composer");
  if (!form) return;
  const box = $("composer-text");
  let typingSent = 0;
  let idleTimer = null;

  const stopTyping = () => {
    clearTimeout(idleTimer);
    if (typingSent && view.room && socket.connected) socket.emit("typing", { room: view.room, typing: false }, () => {});
    typingSent = 0;
  };
  const grow = () => {
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight + 2, 192)}px`;
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    if (text.length > 4000) {
      toast({ level: "warning", title: "Too long", body: "A message holds at most 4000 characters." });
      return;
    }
    if (view.room) enqueue({ kind: "room", room: view.room, text });
    else enqueue({ kind: "direct", to: view.peer, text });
    box.value = "";
    grow();
    stopTyping();
    box.focus();
    scroller.scrollTop = scroller.scrollHeight;
  });

  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  box.addEventListener("input", () => {
    grow();
    if (!view.room) return;
    if (!box.value.trim()) { stopTyping(); return; }
    const now = Date.now();
    if (socket.connected && now - typingSent > TYPING_SEND_EVERY) {
      socket.emit("typing", { room: view.room, typing: true }, () => {});
      typingSent = now;
    }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, TYPING_IDLE);
  });

  $("messages").addEventListener("click", (event) => {
    const id = event.target?.dataset?.discard;
    if (id) discard(id);
  });
  $("load-older")?.addEventListener("click", () => loadOlder(state.rooms.get(view.room)));
  $("leave-room")?.addEventListener("click", () => {
    const name = view.room;
    const go = () => { forgetRoom(name); window.location.assign("/"); };
    if (!socket.connected) { go(); return; }
    socket.timeout(3000).emit("leave", { room: name }, go);
  });
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  for (const room of state.rooms.values()) markRead(room);
  for (const conv of state.directs.values()) markDirectRead(conv);
  render();
});

// On a narrow screen the lists fold away in a conversation; on a wide one they are always open.
function wireSidebar() {
  const details = $("side-details");
  if (!details) return;
  const narrow = window.matchMedia("(max-width: 820px)");
  const apply = () => { details.open = !narrow.matches || view.page === "lobby"; };
  narrow.addEventListener("change", apply);
  apply();
}

loadSaved();
wireSidebar();
wireForms();
wireComposer();
if (view.page === "lobby") {
  refreshLobby();
  setInterval(refreshLobby, LOBBY_EVERY);
}
if (view.peer) markDirectRead(ensureDirect(view.peer));
renderNow();
