// Rendering: from the client's state to the page, batched per animation frame. Text goes in with
// textContent only. Nothing runs on import: the entry module creates the renderer.
import { describe } from "./connection.js";
import { directUnread, ensureDirect } from "./directs.js";
import { REACTIONS, same } from "./room.js";
import { linkify } from "./text.js";

const LEVELS = ["info", "success", "warning", "error"];
const TOASTS_SHOWN = 5;

// Build an element: props set attributes (data-, aria-, href...) or properties; children skip nulls.
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || ["href", "datetime", "title", "type"].includes(key)) {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// Make container's children the given keyed items, reusing nodes whose signature is unchanged.
export function syncList(container, items) {
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

export function clock(ts, seconds = false) {
  const d = new Date(ts);
  const opts = { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) };
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], opts)
    : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${d.toLocaleTimeString([], opts)}`;
}

// A message's text as nodes: text nodes, and an anchor for each http(s) link (linkify decides; no markup is parsed).
export function textNodes(text) {
  return linkify(text).map((part) => (part.href
    ? el("a", { href: part.href, rel: "noopener noreferrer nofollow", target: "_blank", class: "link", text: part.text })
    : document.createTextNode(part.text)));
}

const $ = (id) => document.getElementById(id);
const empty = (tag, text, props = {}) => [{ key: "empty", sig: "", make: () => el(tag, { class: "empty", ...props, text }) }];

const NEAR = 80;  // px from an end of the message list that count as at that end

export function createRenderer({ state, view, me, onNearTop = () => {} }) {
  const scroller = $("scroller");
  const viewingPeer = (peer) => Boolean(view.peer && same(view.peer, peer));
  let frame = 0;
  // Whether the view follows the newest message: true until the reader scrolls up, again once back down.
  let pinned = true;
  const newBelow = $("new-below");
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR;
  const toBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
    pinned = true;
    if (newBelow) newBelow.hidden = true;
  };
  if (scroller) {
    scroller.addEventListener("scroll", () => {
      pinned = atBottom();
      if (pinned && newBelow) newBelow.hidden = true;
      if (scroller.scrollTop < NEAR && !$("load-older")?.hidden) onNearTop();
    }, { passive: true });
    // The list, the composer or the screen changed size (members listed, the keyboard opened, a long
    // message wrapped): keep the newest message fully in view while the view follows it.
    const follow = new ResizeObserver(() => { if (pinned) scroller.scrollTop = scroller.scrollHeight; });
    follow.observe(scroller);
    if ($("messages")) follow.observe($("messages"));
  }
  newBelow?.addEventListener("click", () => {
    toBottom();
    $("composer-text")?.focus();  // the button is gone: keep the keyboard where the reader writes
  });

  function render() {
    if (!frame) frame = requestAnimationFrame(renderNow);
  }

  function renderNow() {
    frame = 0;
    renderConnection();
    renderSidebar();
    if (view.page === "lobby") renderLobby();
    if (view.room) renderRoom(state.rooms.get(view.room));
    if (view.peer) renderDirect(ensureDirect(state.directs, view.peer));
    renderTitle();
  }

  function renderConnection() {
    const node = $("connection");
    if (!node) return;
    const waiting = state.outbox.filter((e) => e.status === "pending").length;
    const { text, title } = describe(state.connection, waiting);
    node.dataset.status = state.connection.status;
    node.dataset.retries = String(state.connection.retries);
    node.title = title;
    node.querySelector(".connection-text").textContent = text;
  }

  // The link's name is its visible text (axe: label-content-name-mismatch) and, for screen readers, "N unread".
  function sideLink(href, shown, count, current, attributes = {}) {
    return el("li", {}, [el("a", { href, "aria-current": current ? "page" : null, ...attributes }, [
      el("span", { class: "name", text: shown }),
      count ? el("span", { class: "badge", "aria-hidden": "true", text: String(count) }) : null,
      count ? el("span", { class: "visually-hidden", text: `, ${count} unread` }) : null,
    ])]);
  }

  function renderSidebar() {
    const rooms = $("my-rooms");
    if (rooms) {
      const list = [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
      syncList(rooms, !list.length ? empty("li", "No rooms yet.") : list.map((room) => {
        const current = view.room === room.name;
        const count = current ? 0 : room.unread();
        return {
          key: `r:${room.name}`, sig: `${count}|${current}`,
          make: () => sideLink(`/room/${encodeURIComponent(room.name)}`, `# ${room.name}`, count, current),
        };
      }));
    }
    const directs = $("my-directs");
    if (directs) {
      const list = [...state.directs.values()]
        .filter((c) => c.messages.length || viewingPeer(c.peer))
        .sort((a, b) => (b.messages.at(-1)?.ts || 0) - (a.messages.at(-1)?.ts || 0));
      syncList(directs, !list.length ? empty("li", "No conversations yet.") : list.map((conv) => {
        const current = viewingPeer(conv.peer);
        const count = current ? 0 : directUnread(conv, me);
        const last = conv.preview(me);
        return {
          key: `d:${conv.peer.toLowerCase()}`, sig: `${conv.peer}|${count}|${current}|${last}`,
          make: () => {
            const item = sideLink(`/dm/${encodeURIComponent(conv.peer)}`, `@ ${conv.peer}`, count, current,
                                  { "data-peer": conv.peer, title: last || null });
            if (last) item.querySelector(".name").append(el("br"), el("span", { class: "preview muted small", text: last }));
            return item;
          },
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
      syncList(rows, [{ key: "empty", sig: "", make: () => el("tr", { class: "empty" }, [
        el("td", { colSpan: 3, text: "No rooms yet: create the first one above." })]) }]);
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
    const seqs = room.sortedSeqs();
    const deliveredIds = new Set();
    for (const seq of seqs) {
      const m = room.messages.get(seq);
      if (m.client_id && same(m.user, me)) deliveredIds.add(m.client_id);
    }
    const items = [];
    const ownLast = seqs.findLast((seq) => same(room.messages.get(seq).user, me));
    for (const seq of seqs) {
      if (seq === room.newFrom && seq !== seqs[0]) {
        items.push({ key: "new", sig: "", make: () => el("li", { class: "divider", text: "New messages" }) });
      }
      items.push(messageItem(room.messages.get(seq), `s:${seq}`, "delivered", (m) => m.user, true,
                             seq === ownLast ? seenBy(room, seq) : ""));
    }
    for (const e of state.outbox) {
      if (e.kind !== "room" || e.room !== room.name || deliveredIds.has(e.client_id)) continue;  // stored copy shown
      items.push(messageItem({ user: me, text: e.text, ts: e.created, client_id: e.client_id, error: e.error },
                             `c:${e.client_id}`, e.status, (m) => m.user));
    }
    renderMessages(items, room.hasOlder);
    renderTyping(room);
    const list = $("members");
    if (list) {
      const members = [...room.members].sort((a, b) => a.localeCompare(b));
      syncList(list, members.map((user) => ({
        key: user, sig: "",
        make: () => el("li", { class: same(user, me) ? "me-member" : null, "data-user": user,
                               text: same(user, me) ? `${user} (you)` : user }),
      })));
      $("member-count").textContent = room.joined ? `(${members.length})` : "";
      // Offline, the list is the last one known: greyed, and said so in words.
      const stale = state.connection.status !== "online";
      list.dataset.stale = String(stale);
      const status = $("members-status");
      if (status) status.textContent = state.connection.status === "offline" ? "You are offline: who is here may have changed." : "";
    }
  }

  function renderDirect(conv) {
    const seen = conv.seen(me);
    const ownLast = conv.messages.findLast((m) => same(m.from, me));
    const items = conv.messages.map((m) => messageItem(m, `m:${m.id}`, "delivered", (x) => x.from, false,
                                                       m === ownLast ? seen : ""));
    const deliveredIds = new Set(conv.messages.filter((m) => m.client_id && same(m.from, me)).map((m) => m.client_id));
    for (const e of state.outbox) {
      if (e.kind !== "direct" || !same(e.to, conv.peer) || deliveredIds.has(e.client_id)) continue;
      items.push(messageItem({ from: me, text: e.text, ts: e.created, client_id: e.client_id, error: e.error },
                             `c:${e.client_id}`, e.status, (x) => x.from));
    }
    renderMessages(items, conv.hasOlder);
  }

  // "Seen by ..." from the read receipts of the other members that reached seq.
  function seenBy(room, seq) {
    const readers = [...room.readers].filter(([user, read]) => read >= seq && !same(user, me)).map(([user]) => user);
    return readers.length ? `Seen by ${readers.sort().join(", ")}` : "";
  }

  function messageItem(m, key, status, authorOf, inRoom = false, seen = "") {
    const author = authorOf(m);
    const own = same(author, me);
    return {
      key, sig: `${status}|${m.error || ""}|${m.rev || 0}|${seen}`,
      make: () => {
        const stateText = status === "pending" ? "Sending…" : status === "failed" ? `Not sent: ${m.error || "refused"}`
          : own ? "Delivered" : "";
        const meta = el("div", { class: "meta" }, [
          el("span", { class: "author", text: own ? `${author} (you)` : author }),
          el("time", { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString(), text: clock(m.ts) }),
          stateText ? el("span", { class: "state", text: stateText }) : null,
          status === "failed"
            ? el("button", { type: "button", class: "button ghost discard", text: "Discard", "data-discard": m.client_id })
            : null,
          m.edited_at && !m.deleted
            ? el("span", { class: "edited muted small", text: "(edited)", title: `Edited ${new Date(m.edited_at).toLocaleString()}` })
            : null,
        ]);
        const text = m.deleted ? el("p", { class: "text deleted muted", text: "This message was deleted." })
          : el("p", { class: "text" }, textNodes(m.text));
        const changeable = inRoom && status === "delivered" && m.seq && !m.deleted;
        return el("li", {
          class: own ? "msg own" : "msg", "data-status": status, "data-seq": m.seq ? String(m.seq) : null,
          "data-client-id": m.client_id || null, "data-author": author, "data-deleted": m.deleted ? "true" : null,
        }, [meta, text, changeable ? reactionRow(m) : null, changeable && own ? ownActions(m) : null,
            seen ? el("p", { class: "seen muted small", text: seen }) : null]);
      },
    };
  }

  // The message's reactions as toggle buttons (count, and who in the name), and a picker for a new one.
  function reactionRow(m) {
    const chips = Object.entries(m.reactions || {}).map(([emoji, users]) => el("button", {
      type: "button", class: "button ghost reaction", "data-react": emoji,
      "aria-pressed": users.some((u) => same(u, me)) ? "true" : "false",
      "aria-label": `${emoji} ${users.length}: ${users.join(", ")}`, title: users.join(", "),
      text: `${emoji} ${users.length}`,
    }));
    const picker = el("details", { class: "react-picker" }, [
      el("summary", { class: "button ghost", text: "React", "aria-label": "React: add a reaction" }),
      ...REACTIONS.map((emoji) => el("button", {
        type: "button", class: "button ghost", "data-react": emoji, "aria-label": `React with ${emoji}`, text: emoji,
      })),
    ]);
    return el("div", { class: "reactions" }, [...chips, picker]);
  }

  function ownActions(m) {
    return el("div", { class: "actions" }, [
      el("button", { type: "button", class: "button ghost", "data-edit": "1", "aria-label": `Edit your message ${m.seq}`,
                     text: "Edit" }),
      el("button", { type: "button", class: "button ghost", "data-delete": "1",
                     "aria-label": `Delete your message ${m.seq}`, text: "Delete" }),
    ]);
  }

  function renderMessages(items, hasOlder) {
    const list = $("messages");
    if (!list) return;
    const before = list.lastElementChild?.dataset.key;
    syncList(list, items);
    const older = $("load-older");
    if (older) older.hidden = !hasOlder;
    const grew = list.lastElementChild?.dataset.key !== before;
    const ownLast = list.lastElementChild?.classList.contains("own");
    if (pinned || (grew && ownLast)) toBottom();
    else if (grew && newBelow) newBelow.hidden = false;
  }

  function renderTyping(room) {
    const node = $("typing");
    if (!node) return;
    const users = [...room.typing.keys()].sort();
    node.textContent = users.length === 0 ? "" : users.length === 1 ? `${users[0]} is typing…`
      : users.length <= 3 ? `${users.slice(0, -1).join(", ")} and ${users.at(-1)} are typing…`
        : "Several people are typing…";
  }

  function renderTitle() {
    let total = 0;
    for (const room of state.rooms.values()) if (room.name !== view.room) total += room.unread();
    for (const conv of state.directs.values()) if (!viewingPeer(conv.peer)) total += directUnread(conv, me);
    const badge = $("side-unread");
    if (badge) {
      badge.hidden = !total;
      badge.textContent = String(total);
    }
    const base = view.room ? `#${view.room}` : view.peer ? `@${view.peer}` : "Lobby";
    document.title = `${total ? `(${total}) ` : ""}${base} · Papo`;
  }

  // Show a notification from the server, or the client's own news, for a few seconds.
  function toast(n) {
    const area = $("toasts");
    if (!area) return;
    const level = LEVELS.includes(n.level) ? n.level : "info";
    const node = el("div", { class: "toast", role: level === "error" ? "alert" : "status", "data-level": level,
                             "data-id": n.id || null }, [
      el("span", { class: "title", text: String(n.title ?? "") }),
      el("button", { type: "button", class: "button ghost close", "aria-label": "Dismiss notification", text: "×" }),
      n.body ? el("p", { class: "body", text: String(n.body) }) : null,
    ]);
    node.querySelector(".close").addEventListener("click", () => node.remove());
    area.append(node);
    while (area.children.length > TOASTS_SHOWN) area.firstElementChild.remove();
    setTimeout(() => node.remove(), level === "error" ? 15000 : 8000);
  }

  return { render, renderNow, toast, scroller };
}
