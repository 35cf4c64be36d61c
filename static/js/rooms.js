// Private rooms in the pages: the lobby's "create a private room" form, and the room settings page
// (members, invite, remove, leave, delete) over the JSON API. Nothing runs on import: chat.js wires it.
import { el } from "./render.js";
import { ROOM_RE, same } from "./room.js";

// Call the JSON API; resolve to { ok, status, body } whatever the answer (a network failure: status 0).
export async function call(method, path, payload, fetchFn = (...args) => fetch(...args)) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (payload !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  try {
    const resp = await fetchFn(path, init);
    const body = resp.status === 204 ? {} : await resp.json().catch(() => ({}));
    return { ok: resp.ok, status: resp.status, body };
  } catch {
    return { ok: false, status: 0, body: { error: { code: "unavailable", message: "The server could not be reached." } } };
  }
}

// Say why a call was refused, in a sentence for the page.
export function refusal(answer) {
  const error = answer.body?.error;
  if (answer.status === 0) return "The server could not be reached; try again.";
  return error?.message ? `${error.message[0].toUpperCase()}${error.message.slice(1)}.` : `Refused (HTTP ${answer.status}).`;
}

const roomPath = (room) => `/api/rooms/${encodeURIComponent(room)}`;

// Wire the lobby's "create a private room" form: create it, then open its settings to invite people.
export function wireCreatePrivate(form, { go = (url) => window.location.assign(url) } = {}) {
  if (!form) return;
  const input = form.querySelector("input");
  const status = form.querySelector("[data-status]");
  input.addEventListener("input", () => input.setCustomValidity(""));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim().replace(/^#/, "").toLowerCase();
    if (!ROOM_RE.test(name)) {
      input.setCustomValidity("Use a-z, 0-9, - and _ (up to 64), starting with a letter or digit.");
      input.reportValidity();
      return;
    }
    status.textContent = "Creating…";
    const answer = await call("POST", "/api/rooms", { name, private: true });
    if (answer.ok) { go(`/room/${encodeURIComponent(name)}/settings`); return; }
    status.textContent = refusal(answer);
    input.focus();
  });
}

// The room settings page: who is in the private room, and what the caller may do about it.
export function createRoomSettings({ root, me, room, go = (url) => window.location.assign(url) }) {
  const $ = (id) => root.querySelector(`#${id}`);
  const status = $("settings-status");
  const list = $("room-member-list");
  const info = { private: false, owner: null, members: [], gone: null };

  const say = (text) => { status.textContent = text; };
  const owns = () => info.owner !== null && same(info.owner, me);

  function render() {
    const known = info.private && !info.gone;
    $("private-panel").hidden = !known;
    $("public-note").hidden = info.private || Boolean(info.gone) || info.owner === undefined;
    if (!known) return;
    $("room-owner").textContent = `Owner: ${info.owner}`;
    $("member-total").textContent = String(info.members.length);
    list.replaceChildren(...info.members.map((name) => {
      const item = el("li", { "data-member": name }, [el("span", { class: "name", text: name })]);
      if (same(name, info.owner)) item.append(el("span", { class: "muted small", text: " (owner)" }));
      else if (owns()) {
        item.append(el("button", { type: "button", class: "button ghost small", "data-remove": name,
                                   "aria-label": `Remove ${name} from #${room}`, text: "Remove" }));
      }
      return item;
    }));
    $("invite-form").hidden = !owns();
    $("delete-room").hidden = !owns();
    $("leave-private").hidden = owns();
  }

  async function load() {
    const answer = await call("GET", `${roomPath(room)}/members`);
    if (answer.ok) {
      Object.assign(info, { private: answer.body.private, owner: answer.body.owner, members: answer.body.members });
    } else if (answer.status === 404 && !info.gone) {
      info.owner = undefined;  // not stored (a public room is created by joining it), or deleted
      say(refusal(answer));
    } else if (!info.gone) {
      say(refusal(answer));
    }
    render();
  }

  // The server ended the caller's membership (removed, the room deleted, or left from another tab).
  function removed(event) {
    if (event?.room !== room) return;
    const why = { removed: `${event.by} removed you from #${room}.`, deleted: `${event.by} deleted #${room}.`,
                  left: `You left #${room}.` }[event.reason] || `You are no longer in #${room}.`;
    info.gone = event.reason || "removed";
    render();
    say(why);
  }

  root.addEventListener("submit", async (event) => {
    if (event.target.id !== "invite-form") return;
    event.preventDefault();
    const input = $("invite-user");
    const user = input.value.trim().replace(/^@/, "");
    if (!user) { input.focus(); return; }
    say(`Inviting ${user}…`);
    const answer = await call("POST", `${roomPath(room)}/members`, { user });
    if (answer.ok) {
      info.members = answer.body.members;
      input.value = "";
      render();
      say(`${user} is a member of #${room} now.`);
    } else say(refusal(answer));
    input.focus();
  });

  root.addEventListener("click", async (event) => {
    const button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    if (button.dataset.remove) {
      const name = button.dataset.remove;
      const answer = await call("DELETE", `${roomPath(room)}/members/${encodeURIComponent(name)}`);
      if (answer.ok) {
        info.members = answer.body.members;
        render();
        say(`${name} was removed from #${room}.`);
        $("invite-user").focus();
      } else say(refusal(answer));
    } else if (button.id === "leave-private" || button.id === "delete-room") {
      confirmThen(button, button.id === "delete-room"
        ? `Delete #${room} for everyone? Press again to confirm.` : `Leave #${room}? Press again to confirm.`,
      async () => {
        const answer = button.id === "delete-room" ? await call("DELETE", roomPath(room))
          : await call("POST", `${roomPath(room)}/leave`);
        if (answer.ok) go("/");
        else say(refusal(answer));
      });
    }
  });

  // A second press does it: nothing is lost by one slip. The button says so, for screen readers too.
  function confirmThen(button, question, act) {
    if (button.dataset.confirm === "1") { act(); return; }
    button.dataset.confirm = "1";
    button.dataset.label = button.textContent;
    button.textContent = button.id === "delete-room" ? "Press again to delete" : "Press again to leave";
    say(question);
    const reset = () => {
      delete button.dataset.confirm;
      button.textContent = button.dataset.label;
    };
    button.addEventListener("blur", reset, { once: true });
  }

  return { load, removed, members: (event) => { if (event?.room === room) { Object.assign(info, event); render(); } }, info };
}
