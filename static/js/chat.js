// Papo's browser client, the entry module: it reads the page (data- attributes on <body>), builds
// the state from the modules beside it, and wires the socket, the forms and the timers. It is the
// only module that runs anything on import. A typed message is never lost: the outbox keeps it in
// localStorage and retries it with its client_id until the server acknowledges it.
import { initialConnection, nextConnection, refusedIdentity, socketOptions } from "./connection.js";
import { catchUp, ensureDirect, peerOf } from "./directs.js";
import { actionFor, parseErrorTable, UNAUTHORIZED } from "./errors.js";
import { createNotifications } from "./notifications.js";
import { Outbox } from "./outbox.js";
import { createRenderer } from "./render.js";
import { fillGap, JOINING, RoomChannel, ROOM_RE, same } from "./room.js";
import { watchSession } from "./session.js";
import { createSearch, showLinkedMessage } from "./search.js";
import { createStorage } from "./storage.js";
import { wireLogout } from "./account.js";
import { createRoomSettings, wireCreatePrivate } from "./rooms.js";
import { MAX_TEXT, measure } from "./text.js";

const TYPING_SEND_EVERY = 2500;  // ms between two `typing: true` while typing
const TYPING_IDLE = 3000;        // ms without a key before `typing: false`
const TYPING_SHOWN = 6000;       // ms another user's "typing" stays without news
const ACK_TIMEOUT = 10000;       // ms to wait for an ack before trying again
const HANDSHAKE_JOINS = 100;     // rooms a handshake may ask for (docs/protocol.md)
const FLUSH_EVERY = 3000;        // ms between outbox sweeps while online
const LOBBY_EVERY = 10000;       // ms between two lobby refreshes
const GAP_WAIT = 300;            // ms for a crossing broadcast to arrive before a gap is fetched
const USER_RE = /^[A-Za-z0-9_.-]{1,32}$/;

const body = document.body;
const me = body.dataset.user;
const view = { page: body.dataset.page, room: body.dataset.room || null, peer: body.dataset.peer || null };
const errorTable = parseErrorTable(body.dataset.errors);
const storage = createStorage(me);
const outbox = new Outbox(storage);

// Everything on screen is rendered from this. rooms: name -> RoomChannel; directs: see directs.js.
const state = {
  user: me,
  view,
  connection: initialConnection(),
  rooms: new Map(),
  directs: new Map(),
  get outbox() { return outbox.entries; },
  lobby: { rooms: null, at: 0, error: null },
};
window.papoState = state;  // read-only handle for debugging and tests

const { render, renderNow, toast, scroller } = createRenderer({
  state, view, me, onNearTop: () => loadOlder(state.rooms.get(view.room)),
});
const socket = io({ ...socketOptions(), auth: (answer) => answer({ join: handshakeJoins() }) });
state.session = watchSession(socket, {
  fetchFn: (...args) => fetch(...args), leave: (url) => window.location.assign(url), next: location.pathname,
});
const notifications = createNotifications({ user: me, toast });

// ---------------------------------------------------------------------------
// Rooms
function ensureRoom(name, viewing = false) {
  let room = state.rooms.get(name);
  if (!room) {
    room = new RoomChannel(name);
    state.rooms.set(name, room);
    if (viewing) saveRooms();
  }
  return room;
}

function saveRooms() {
  storage.change("rooms", {}, (all) => {
    for (const room of state.rooms.values()) all[room.name] = { read: Math.max(all[room.name]?.read ?? 0, room.read ?? 0) };
    return all;
  });
}

function forgetRoom(name) {
  storage.change("rooms", {}, (all) => { delete all[name]; return all; });
  outbox.forgetRoom(name);
}

function looking(name) {
  return view.room === name && document.visibilityState === "visible";
}

function addMessages(room, messages) {
  for (const clientId of room.add(messages, me)) outbox.delivered(clientId);
  if (room.name !== view.room) room.trim();
  markRead(room);
  if (room.hasGap()) fillGapSoon(room);
  render();
}

// Mark what is on screen read, here, in the other tabs (storage) and on the server (every device).
function markRead(room) {
  if (room.markRead(looking(room.name))) saveRooms();
  syncRead(room);
}

const readSent = new Map();  // room name -> the highest seq told to the server as read on this connection

function syncRead(room) {
  if (!socket.connected || !room.joined || !(room.read > (readSent.get(room.name) || 0))) return;
  readSent.set(room.name, room.read);
  socket.emit("read", { room: room.name, seq: room.read }, () => {});
}

let linkShown = false;  // the message the address names (#seq-N) was brought into view
const gapTimers = new Map();  // room name -> timer of a gap fill about to start

function fillGapSoon(room) {
  // Two broadcasts may cross on the wire; give the missing one a moment before asking.
  if (gapTimers.has(room.name)) return;
  gapTimers.set(room.name, setTimeout(() => { gapTimers.delete(room.name); fillRoomGap(room); }, GAP_WAIT));
}

function fillRoomGap(room) {
  const page = (after, limit) => api(`/api/rooms/${encodeURIComponent(room.name)}/messages?after=${after}&limit=${limit}`);
  fillGap(room, page, (messages) => addMessages(room, messages))
    .catch((err) => console.warn("papo: could not fill a gap", room.name, err));
}

function joinPayload(room) {
  const payload = room.join();
  if (room.name === view.room) payload.receipts = true;  // "Seen by" from the marks already made, not only live ones
  return payload;
}

// The rooms the page holds, asked for in the handshake (`auth.join`, the room on screen first, at most
// HANDSHAKE_JOINS): each is answered by a `joined` event right after the connect, a round trip sooner
// than a `join` sent after it; the connect handler joins any others by the event.
let askedInHandshake = new Set();
function handshakeJoins() {
  const rooms = [...state.rooms.values()].sort((a, b) => (b.name === view.room) - (a.name === view.room))
    .slice(0, HANDSHAKE_JOINS);
  askedInHandshake = new Set(rooms.map((room) => room.name));
  return rooms.map(joinPayload);
}

function joinRoom(room) {
  if (!socket.connected) return;
  const conn = socket.id;
  socket.timeout(ACK_TIMEOUT).emit("join", joinPayload(room), (err, ack) => {
    if (socket.id !== conn) return;
    if (err) { setTimeout(() => joinRoom(room), 1000); return; }
    joined(room, ack);
  });
}

// Take in a join's answer: the `join` event's ack or a `joined` event.
function joined(room, ack) {
  if (!ack?.ok) {
    room.refuse(ack?.error);
    if (room.error.code === "invalid_room") state.rooms.delete(room.name);
    else setTimeout(() => joinRoom(room), 3000);
    render();
    return;
  }
  for (const clientId of room.accept(ack, me)) outbox.delivered(clientId);
  for (const [reader, mark] of Object.entries(ack.readers || {})) {
    if (Number.isInteger(mark)) room.readers.set(reader, Math.max(room.readers.get(reader) || 0, mark));
  }
  if (room.newFrom === null) {  // the first join of this page: a "new messages" divider above the first unread
    const unread = looking(room.name) && room.read !== null && room.read < room.lastSeq;
    room.newFrom = unread ? room.read + 1 : 0;
  }
  addMessages(room, []);  // what accept() took in: trim, read state, render
  if (ack.truncated || room.hasGap()) fillRoomGap(room);
  if (room.moreUpdates) joinRoom(room);  // the rest of the changes missed
  if (room.name === view.room && location.hash && !linkShown) {  // opened from a search result
    renderNow();
    linkShown = showLinkedMessage(location.hash);
  }
  flush();
}

function loadOlder(room) {
  if (!socket.connected || !room || room.fetching) return;
  room.fetching = "older";
  socket.timeout(ACK_TIMEOUT).emit("history", { room: room.name, before: room.lowest(), limit: 50 }, (err, ack) => {
    room.fetching = null;
    if (err || !ack?.ok) return;
    const keepFrom = scroller ? scroller.scrollHeight - scroller.scrollTop : 0;
    addMessages(room, ack.messages);
    room.hasOlder = ack.has_more;
    renderNow();
    if (scroller) scroller.scrollTop = scroller.scrollHeight - keepFrom;
  });
}

// ---------------------------------------------------------------------------
// Direct messages: the server lists the conversations on every connect; the one on screen loads its
// history once, then catches up with `since` after each reconnect; read marks go to the server, which
// tells this user's other tabs and devices, and the peer (receipts).
function addDirect(m) {
  const conv = ensureDirect(state.directs, peerOf(m, me));
  conv.peer = peerOf(m, me);  // take the canonical spelling
  takeDirects(conv, [m]);
}

function takeDirects(conv, messages) {
  for (const clientId of conv.add(messages, me)) outbox.delivered(clientId);
  markDirectRead(conv);
  render();
}

const directReadSent = new Map();  // peer key -> the highest id number told to the server as read on this connection

function markDirectRead(conv) {
  const upTo = conv.toMarkRead();
  const key = conv.peer.toLowerCase();
  if (!view.peer || !same(view.peer, conv.peer) || document.visibilityState !== "visible" || !socket.connected
      || !conv.loaded || !(upTo > (directReadSent.get(key) || 0))) return;
  directReadSent.set(key, upTo);
  socket.emit("direct_read", { with: conv.peer, id: upTo }, (ack) => {
    if (ack?.ok) { conv.takeState(ack); render(); }
  });
}

function listConversations() {
  const conn = socket.id;
  socket.timeout(ACK_TIMEOUT).emit("conversations", {}, (err, ack) => {
    if (socket.id !== conn) return;
    if (err || !ack?.ok) { setTimeout(() => { if (socket.id === conn) listConversations(); }, 2000); return; }
    for (const entry of ack.conversations || []) ensureDirect(state.directs, entry.with).listed(entry, me);
    render();
  });
}

function directHistory(payload) {
  return new Promise((resolve, reject) => {
    socket.timeout(ACK_TIMEOUT).emit("direct_history", payload, (err, ack) => {
      if (err || !ack?.ok) reject(err || new Error(ack?.error?.code || "refused"));
      else resolve(ack);
    });
  });
}

// Load the conversation on screen: its latest messages the first time, what came since on a reconnect.
async function loadDirect(conv) {
  if (!socket.connected || conv.fetching) return;
  const conn = socket.id;
  let failed = false;
  conv.fetching = "history";
  try {
    if (conv.since() === null) {
      const ack = await directHistory({ with: conv.peer });
      for (const clientId of conv.loadedLatest(ack, me)) outbox.delivered(clientId);
      takeDirects(conv, []);
    } else {
      failed = !await catchUp(conv, (since) => directHistory({ with: conv.peer, since }), (ack) => {
        conv.takeState(ack);
        takeDirects(conv, ack.messages || []);
      });
    }
  } catch (err) {
    console.warn("papo: could not load the conversation", conv.peer, err);
    failed = true;
  } finally {
    conv.fetching = null;
  }
  // Dropped meanwhile, or not answered: the connection that is up now asks again (with `since`).
  if (failed || socket.id !== conn) setTimeout(() => loadDirect(conv), failed ? 2000 : 0);
}

function loadOlderDirect(conv) {
  if (!socket.connected || conv.fetching || !conv.messages.length) return;
  conv.fetching = "older";
  directHistory({ with: conv.peer, before: conv.messages[0].id, limit: 50 }).then((ack) => {
    const keepFrom = scroller ? scroller.scrollHeight - scroller.scrollTop : 0;
    takeDirects(conv, ack.messages || []);
    conv.hasOlder = Boolean(ack.has_more);
    renderNow();
    if (scroller) scroller.scrollTop = scroller.scrollHeight - keepFrom;
  }).catch(() => {}).finally(() => { conv.fetching = null; });
}

// ---------------------------------------------------------------------------
// The outbox on the wire
function enqueue(fields) {
  outbox.add(fields);
  render();
  flush();
}

function flush() {
  if (!socket.connected) return;
  for (const entry of outbox.due()) {
    if (entry.kind === "room") {
      const room = ensureRoom(entry.room);
      if (!room.joined) { if (room.state !== "joining") joinRoom(room); continue; }
      send(entry, "message", { room: entry.room, text: entry.text, client_id: entry.client_id },
           (message) => addMessages(room, [message]));
    } else {
      send(entry, "direct", { to: entry.to, text: entry.text, client_id: entry.client_id }, addDirect);
    }
  }
}

function send(entry, event, payload, onStored) {
  outbox.sending(entry.client_id);
  const conn = socket.id;
  socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, ack) => {
    if (socket.id !== conn) return;  // answered on an old connection: the new one resends
    outbox.answered(entry.client_id);
    if (err) { setTimeout(flush, 500); return; }  // no answer in time: try again
    if (ack?.ok) {
      onStored(ack.message);
      outbox.delivered(entry.client_id);
      render();
      flush();
      return;
    }
    refused(entry, ack?.error, ack?.retry_after);
  });
}

function refused(entry, error, retryAfter) {
  switch (actionFor(error?.code, errorTable)) {
    case "wait":
      setTimeout(flush, outbox.hold(retryAfter) + 50);
      break;
    case "rejoin": {
      const room = ensureRoom(entry.room);
      room.drop();
      joinRoom(room);
      break;
    }
    case "fail":
      outbox.fail(entry.client_id, error);
      toast({ level: "error", title: "Message not sent", body: error.message || error.code });
      render();
      break;
    default:
      setTimeout(flush, 2000);  // unavailable or unknown: the server said try again
  }
}

// ---------------------------------------------------------------------------
// The connection. One path for the first connect and every reconnect.
function connectionEvent(event, attempt) {
  state.connection = nextConnection(state.connection, event, attempt);
  render();
}

socket.on("connect", () => {
  connectionEvent("connect");
  readSent.clear();
  directReadSent.clear();
  for (const room of state.rooms.values()) if (!askedInHandshake.has(room.name)) joinRoom(room);
  const conn = socket.id;
  setTimeout(() => {  // a server that does not know `auth.join` (an older one mid-upgrade) answered nothing
    if (socket.id !== conn) return;
    for (const room of state.rooms.values()) if (room.state === JOINING) joinRoom(room);
  }, ACK_TIMEOUT);
  listConversations();
  if (view.peer) loadDirect(ensureDirect(state.directs, view.peer));
  flush();
});

socket.on("joined", (ack) => {
  const room = state.rooms.get(ack?.room);
  if (room) joined(room, ack);
});

socket.on("disconnect", () => {
  outbox.dropped();
  socket.sendBuffer = [];  // resend from the outbox instead, once joined again
  for (const room of state.rooms.values()) room.drop();
  connectionEvent("disconnect");
});

socket.on("connect_error", (err) => {
  if (refusedIdentity(err, UNAUTHORIZED)) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  connectionEvent("connect_error");
});

socket.io.on("reconnect_attempt", (attempt) => connectionEvent("reconnect_attempt", attempt));

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

socket.on("direct", (m) => { if (m && m.id && m.from && m.to) addDirect(m); });

// A direct conversation's read mark: mine from another tab or device, or the peer's (a receipt).
socket.on("direct_read", (r) => {
  if (!r || !Number.isInteger(r.last_read) || typeof r.user !== "string" || typeof r.with !== "string") return;
  if (same(r.user, me)) {
    const conv = ensureDirect(state.directs, r.with);
    const key = conv.peer.toLowerCase();
    directReadSent.set(key, Math.max(directReadSent.get(key) || 0, r.last_read));
    if (conv.takeRead(r.last_read)) render();
  } else {
    const conv = ensureDirect(state.directs, r.user);
    if (r.last_read > conv.peerRead) { conv.peerRead = r.last_read; render(); }
  }
});

socket.on("message_updated", (m) => {
  const room = state.rooms.get(m?.room);
  if (room) { room.update(m); render(); }
});

// A read mark: this user's, from another tab or device, moves the unread count; others' are receipts.
socket.on("read", (r) => {
  const room = state.rooms.get(r?.room);
  if (!room || !Number.isInteger(r.last_read)) return;
  if (!same(r.user || "", me)) {
    room.readers.set(r.user, Math.max(room.readers.get(r.user) || 0, r.last_read));
    render();
    return;
  }
  if (r.last_read > (room.read ?? 0)) {
    room.read = r.last_read;
    readSent.set(room.name, Math.max(readSent.get(room.name) || 0, r.last_read));
    saveRooms();
    render();
  }
});

// Edit, delete and react: answered at once, or a toast says why not (they wait in no outbox).
function change(event, payload) {
  const room = state.rooms.get(payload.room);
  if (!socket.connected) {
    toast({ level: "warning", title: "You are offline", body: "Try again once connected." });
    return;
  }
  socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, ack) => {
    if (!err && ack?.ok) { room?.update(ack.message); render(); return; }
    toast({ level: "error", title: "Could not change the message", body: err ? "No answer" : ack?.error?.message });
  });
}

// Private rooms: an invitation shows in the lobby; a membership ended elsewhere (removed by the
// owner, the room deleted, left in another tab) takes the room off this page at once.
const settingsRoot = document.querySelector("[data-settings-room]");
const settings = settingsRoot
  ? createRoomSettings({ root: settingsRoot, me, room: settingsRoot.dataset.settingsRoom }) : null;

socket.on("invited", (invite) => {
  if (!invite?.room) return;
  toast({ level: "info", title: `You were invited to #${invite.room}`, body: `by ${invite.by}` });
  refreshLobbySoon();
});

socket.on("room_members", (event) => settings?.members(event));

socket.on("room_removed", (event) => {
  if (!event?.room) return;
  settings?.removed(event);
  const room = state.rooms.get(event.room);
  if (room) {
    state.rooms.delete(event.room);
    forgetRoom(event.room);
  }
  refreshLobbySoon();
  if (view.room !== event.room) { render(); return; }
  const why = { removed: `${event.by} removed you from #${event.room}.`, deleted: `${event.by} deleted #${event.room}.`,
                left: `You left #${event.room}.` }[event.reason] || `You are no longer in #${event.room}.`;
  const notice = document.getElementById("room-removed") || document.createElement("p");
  notice.id = "room-removed";
  notice.className = "form-error";
  notice.setAttribute("role", "alert");
  notice.textContent = `${why} `;
  const back = document.createElement("a");
  back.href = "/";
  back.textContent = "Back to the lobby";
  notice.append(back);
  const composer = document.getElementById("composer");
  composer?.before(notice);
  for (const control of composer?.querySelectorAll("textarea, button") || []) control.disabled = true;
  render();
});

// Notifications: notifications.js toasts each once, keeps the unread badge and the desktop alerts.
socket.on("notification", (n) => notifications.received(n));
socket.on("notifications_read", (r) => notifications.read(r));

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
// What this user's other tabs stored, at start and whenever they change it.
function loadSaved() {
  for (const [name, info] of Object.entries(storage.read("rooms", {}))) {
    if (ROOM_RE.test(name)) ensureRoom(name).read = info.read ?? null;
  }
  if (view.room) ensureRoom(view.room, true);
  if (view.peer) ensureDirect(state.directs, view.peer);
  try { localStorage.removeItem(storage.key("directs")); } catch { /* the server holds direct messages now */ }
  outbox.load();
}

function takeStored(name) {
  if (name === "outbox") {
    outbox.load();
    flush();
  } else if (name === "rooms") {
    const all = storage.read("rooms", {});
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
}

// ---------------------------------------------------------------------------
// User input
function wireNameForm(selector, parse, pattern, hint, path) {
  for (const form of document.querySelectorAll(selector)) {
    const input = form.querySelector("input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = parse(input.value.trim());
      if (!pattern.test(name)) {
        input.setCustomValidity(hint);
        input.reportValidity();
        return;
      }
      window.location.assign(`${path}${encodeURIComponent(name)}`);
    });
    input.addEventListener("input", () => input.setCustomValidity(""));
  }
}

function wireForms() {
  wireNameForm('form[data-form="join-room"]', (v) => v.replace(/^#/, "").toLowerCase(), ROOM_RE,
               "Use a-z, 0-9, - and _ (up to 64), starting with a letter or digit.", "/room/");
  wireNameForm('form[data-form="open-direct"]', (v) => v.replace(/^@/, ""), USER_RE,
               "Usernames are 1 to 32 of A-Z, a-z, 0-9, ., - and _.", "/dm/");
}

function wireComposer() {
  const form = document.getElementById("composer");
  if (!form) return;
  const box = document.getElementById("composer-text");
  const hint = document.getElementById("composer-hint");
  const hintText = hint?.textContent || "";
  const max = Number(box.dataset.maxText) || MAX_TEXT;  // the server's limit, from the page
  const counter = document.getElementById("composer-count");
  const feedback = document.getElementById("composer-feedback");
  // The counter near the limit; the feedback line says why a send was refused until the text changes.
  const checkLength = () => {
    const m = measure(box.value, max);
    if (counter) {
      counter.textContent = m.counter;
      counter.dataset.over = String(m.over);
    }
    if (m.over) box.setAttribute("aria-invalid", "true");
    else box.removeAttribute("aria-invalid");
    return m;
  };
  const refuse = (why) => {
    if (feedback) feedback.textContent = why;
    box.focus();
  };
  let typingSent = 0;
  let idleTimer = null;
  let editing = null;  // the seq of the own message being edited in the composer, or null

  const edit = (seq) => {
    const m = state.rooms.get(view.room)?.messages.get(seq);
    if (!m || m.deleted || !same(m.user, me)) return;
    editing = seq;
    box.value = m.text;
    if (hint) hint.textContent = "Editing your message · Enter saves · Escape cancels";
    box.focus();
  };
  const stopEditing = () => {
    editing = null;
    box.value = "";
    checkLength();
    if (hint) hint.textContent = hintText;
  };

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
    const length = checkLength();
    if (length.empty) { refuse("Nothing to send: type a message first."); return; }
    if (length.over) {
      refuse(`Not sent: a message holds at most ${max} characters; this one has ${length.length}. `
             + `Shorten it by ${length.length - max}.`);
      return;
    }
    if (feedback) feedback.textContent = "";
    if (editing !== null) {
      change("edit", { room: view.room, seq: editing, text });
      stopEditing();
      return;
    }
    if (view.room) enqueue({ kind: "room", room: view.room, text });
    else enqueue({ kind: "direct", to: view.peer, text });
    box.value = "";
    checkLength();
    grow();
    stopTyping();
    box.focus();
    scroller.scrollTop = scroller.scrollHeight;
  });

  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape" && editing !== null) {
      event.preventDefault();
      stopEditing();
    } else if (event.key === "ArrowUp" && !box.value && view.room) {  // edit the last own message
      const room = state.rooms.get(view.room);
      const last = room?.sortedSeqs().reverse().find((seq) => {
        const m = room.messages.get(seq);
        return same(m.user, me) && !m.deleted;
      });
      if (last !== undefined) { event.preventDefault(); edit(last); }
    }
  });

  box.addEventListener("input", () => {
    grow();
    if (!checkLength().over && feedback) feedback.textContent = "";
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

  document.getElementById("messages").addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("button") : null;
    const id = target?.dataset?.discard;
    if (id) { outbox.delivered(id); render(); return; }
    const seq = Number(target?.closest("li[data-seq]")?.dataset.seq);
    if (!target || !view.room || !Number.isInteger(seq)) return;
    if (target.dataset.edit) edit(seq);
    else if (target.dataset.delete === "1") {  // a second press deletes: nothing goes by one slip
      target.dataset.delete = "2";
      target.textContent = "Delete for everyone?";
      target.setAttribute("aria-label", `Delete for everyone? Confirm: delete your message ${seq} for everyone`);
    } else if (target.dataset.delete === "2") {
      change("delete", { room: view.room, seq });
    } else if (target.dataset.react) {
      const users = state.rooms.get(view.room)?.messages.get(seq)?.reactions?.[target.dataset.react] || [];
      change("react", { room: view.room, seq, emoji: target.dataset.react, on: !users.some((u) => same(u, me)) });
      target.closest("details")?.removeAttribute("open");
    }
  });
  document.getElementById("load-older")?.addEventListener("click", () => {
    if (view.peer) loadOlderDirect(ensureDirect(state.directs, view.peer));
    else loadOlder(state.rooms.get(view.room));
  });
  document.getElementById("leave-room")?.addEventListener("click", () => {
    const name = view.room;
    const go = () => { forgetRoom(name); window.location.assign("/"); };
    if (!socket.connected) { go(); return; }
    socket.timeout(3000).emit("leave", { room: name }, go);
  });
}

// On a narrow screen the lists fold away in a conversation; on a wide one they are always open.
function wireSidebar() {
  const details = document.getElementById("side-details");
  if (!details) return;
  const narrow = window.matchMedia("(max-width: 820px)");
  const apply = () => { details.open = !narrow.matches || view.page === "lobby"; };
  narrow.addEventListener("change", apply);
  apply();
}

window.addEventListener("storage", (event) => {
  const name = storage.nameOf(event.key);
  if (name === null) return;
  takeStored(name);
  render();
});

window.addEventListener("hashchange", () => { linkShown = showLinkedMessage(location.hash); });

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  for (const room of state.rooms.values()) markRead(room);
  for (const conv of state.directs.values()) markDirectRead(conv);
  render();
});

setInterval(flush, FLUSH_EVERY);
setInterval(() => {  // expire "is typing" lines that got no news
  const now = Date.now();
  let changed = false;
  for (const room of state.rooms.values()) changed = room.expireTyping(now) || changed;
  if (changed) render();
}, 1000);

// A page that signed this user out elsewhere (logged out in another tab) leaves no data behind either.
socket.on("session_ended", (ending) => { if (ending?.code === "logged_out") storage.clear(["outbox"]); });

loadSaved();
wireSidebar();
wireLogout(document.querySelector('form[data-form="logout"]'), storage, { before: () => {
  socket.io.opts.reconnection = false;
  socket.disconnect();
} });
wireCreatePrivate(document.querySelector('form[data-form="create-private"]'));
settings?.load();
if (document.getElementById("side-details")) createSearch({ container: document.getElementById("side-details"), api });
wireForms();
wireComposer();
if (view.page === "lobby") {
  refreshLobby();
  setInterval(refreshLobby, LOBBY_EVERY);
}
if (view.peer) markDirectRead(ensureDirect(state.directs, view.peer));
renderNow();
