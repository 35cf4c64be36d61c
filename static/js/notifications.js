// Notifications in the page: chat.js hands over each `notification` and `notifications_read`
// event; this module decides whether to toast it (once per id: the server replays a user's
// unread ones on every connect), keeps an unread badge on a bell in the top bar, lists the
// recent ones in a panel (opening it marks them read, on the server too), and shows the
// browser's own notification when the user allowed it and the tab is hidden.
// Text goes in with textContent only.

const KEEP = 50;  // notifications remembered per user in localStorage
const LEVELS = ["info", "success", "warning", "error"];

// notes: [{ id, title, body, level, ts, room?, user?, read }] oldest first, shared by the user's tabs.
export function createNotifications({ user, toast }) {
  const key = `papo:v1:${user.toLowerCase()}:notifications`;
  let notes = load();
  const ui = makeBell();

  function load() {
    try {
      const saved = JSON.parse(localStorage.getItem(key) || "[]");
      return Array.isArray(saved) ? saved.filter((n) => n && typeof n.id === "string") : [];
    } catch { return []; }
  }

  function save() {
    notes = notes.slice(-KEEP);
    try { localStorage.setItem(key, JSON.stringify(notes)); } catch { /* full or disabled */ }
  }

  // A notification arrived (live, or replayed on connect): true when it is news to this user here.
  function received(n) {
    if (!n || typeof n.id !== "string" || !n.id) return false;
    notes = load();
    const known = notes.find((x) => x.id === n.id);
    if (known) {
      if (n.read && !known.read) { known.read = true; save(); render(); }
      return false;
    }
    const note = { id: n.id, title: String(n.title ?? ""), body: String(n.body ?? ""),
                   level: LEVELS.includes(n.level) ? n.level : "info", ts: n.ts || Date.now(),
                   room: n.room || null, user: n.user || null, read: Boolean(n.read) };
    notes.push(note);
    save();
    render();
    if (note.read) return false;
    toast(note);
    desktop(note);
    return true;
  }

  // The server says these were read (in another tab or device).
  function read(r) {
    const ids = new Set(Array.isArray(r?.ids) ? r.ids : []);
    notes = load();
    let changed = false;
    for (const n of notes) if (ids.has(n.id) && !n.read) { n.read = true; changed = true; }
    if (changed) { save(); render(); }
  }

  function desktop(note) {
    if (document.visibilityState !== "hidden" || !("Notification" in window)) return;
    if (Notification.permission !== "granted") return;
    try {
      const shown = new Notification(note.title, { body: note.body, tag: note.id });
      shown.onclick = () => { window.focus(); shown.close(); };
    } catch { /* some browsers allow it only from a service worker */ }
  }

  async function markAllRead() {
    notes = load();
    const unread = notes.filter((n) => !n.read);
    if (!unread.length) return;
    for (const n of unread) n.read = true;
    save();
    render();
    const stored = unread.map((n) => /^n(\d+)$/.exec(n.id)).filter(Boolean).map((m) => Number(m[1]));
    if (!stored.length) return;
    try {
      await fetch("/api/notifications/read", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ up_to: `n${Math.max(...stored)}` }),
      });
    } catch { /* the server replays them on the next connect; harmless */ }
  }

  function render() {
    const count = notes.filter((n) => !n.read).length;
    ui.badge.textContent = String(count);
    ui.badge.hidden = count === 0;
    ui.bell.dataset.unread = String(count);
    ui.bell.setAttribute("aria-label", count ? `Notifications, ${count} unread` : "Notifications");
    if (!ui.panel.hidden) renderPanel();
  }

  function renderPanel() {
    const items = [...notes].reverse().map((n) => {
      const li = document.createElement("li");
      li.className = n.read ? "note" : "note unread";
      li.dataset.level = n.level;
      li.dataset.id = n.id;
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = n.title;
      const when = document.createElement("time");
      when.dateTime = new Date(n.ts).toISOString();
      when.textContent = new Date(n.ts).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      li.append(title, when);
      if (n.body) {
        const body = document.createElement("p");
        body.className = "body";
        body.textContent = n.body;
        li.append(body);
      }
      if (n.room) {
        const where = document.createElement("span");
        where.className = "where";
        where.textContent = `# ${n.room}`;
        li.append(where);
      }
      return li;
    });
    if (!items.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No notifications yet.";
      items.push(empty);
    }
    ui.list.replaceChildren(...items);
    ui.allow.hidden = !("Notification" in window) || Notification.permission !== "default";
  }

  function makeBell() {
    const host = document.querySelector(".topbar-right");
    const wrap = document.createElement("div");
    wrap.className = "notes";
    const bell = document.createElement("button");
    bell.type = "button";
    bell.id = "notes-bell";
    bell.className = "button ghost notes-bell";
    bell.setAttribute("aria-expanded", "false");
    bell.setAttribute("aria-controls", "notes-panel");
    const icon = bellIcon();
    const badge = document.createElement("span");
    badge.className = "badge notes-badge";
    badge.id = "notes-badge";
    badge.hidden = true;
    bell.append(icon, badge);
    const panel = document.createElement("section");
    panel.id = "notes-panel";
    panel.className = "notes-panel";
    panel.hidden = true;
    panel.setAttribute("aria-label", "Notifications");
    const heading = document.createElement("h2");
    heading.textContent = "Notifications";
    const allow = document.createElement("button");
    allow.type = "button";
    allow.className = "button ghost notes-allow";
    allow.textContent = "Show them on the desktop too";
    allow.hidden = true;
    const list = document.createElement("ol");
    list.className = "notes-list";
    panel.append(heading, allow, list);
    wrap.append(bell, panel);
    if (host) host.prepend(wrap);

    bell.addEventListener("click", () => {
      const opening = panel.hidden;
      panel.hidden = !opening;
      bell.setAttribute("aria-expanded", String(opening));
      if (opening) { renderPanel(); markAllRead(); }
    });
    allow.addEventListener("click", async () => {
      try { await Notification.requestPermission(); } catch { /* older promise-less API */ }
      renderPanel();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !panel.hidden) { panel.hidden = true; bell.setAttribute("aria-expanded", "false"); bell.focus(); }
    });
    document.addEventListener("click", (event) => {
      if (!panel.hidden && !wrap.contains(event.target)) { panel.hidden = true; bell.setAttribute("aria-expanded", "false"); }
    });
    return { bell, badge, panel, list, allow };
  }

  // Another tab of this user changed the list.
  window.addEventListener("storage", (event) => {
    if (event.key === key) { notes = load(); render(); }
  });

  render();
  return { received, read };
}

// A bell drawn in the text colour (an emoji may have no font to show it).
function bellIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: "18", height: "18", fill: "none",
    stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" })) {
    svg.setAttribute(name, value);
  }
  for (const d of ["M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9", "M10.3 21a1.94 1.94 0 0 0 3.4 0"]) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
