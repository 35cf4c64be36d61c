// The account in the browser: logging out clears this user's local data (messages, directs,
// outbox, read state), after a confirm step when unsent messages would be lost. Nothing runs on import.
import { el } from "./render.js";

// Return how many messages this user wrote that the server has not stored yet (pending or failed).
export function unsentCount(storage) {
  const outbox = storage.read("outbox", []);
  return Array.isArray(outbox) ? outbox.length : 0;
}

// Say what logging out now loses, in a sentence.
export function lossWarning(count) {
  const what = count === 1 ? "1 message you wrote has" : `${count} messages you wrote have`;
  return `${what} not been sent yet. Logging out now deletes ${count === 1 ? "it" : "them"} from this browser.`;
}

// Build the accessible confirm dialog (a modal <dialog>: focus moves in, Escape cancels, focus comes back).
function confirmDialog() {
  const dialog = el("dialog", { id: "logout-confirm", class: "confirm-dialog", "aria-labelledby": "logout-confirm-title",
                                "aria-describedby": "logout-confirm-text" }, [
    el("h2", { id: "logout-confirm-title", text: "Unsent messages" }),
    el("p", { id: "logout-confirm-text" }),
    el("form", { method: "dialog", class: "input-row" }, [
      el("button", { type: "submit", class: "button primary", value: "stay", id: "logout-stay", text: "Stay signed in" }),
      el("button", { type: "submit", class: "button ghost", value: "discard", id: "logout-discard" }),
    ]),
  ]);
  document.body.append(dialog);
  return dialog;
}

// Wire the logout form: clear the user's local data first, asking when the outbox holds unsent messages.
// before() runs just before clearing (chat.js disconnects, so that nothing is written back).
export function wireLogout(form, storage, { before = () => {} } = {}) {
  if (!form) return;
  let confirmed = false;
  let dialog = null;
  const leave = () => {
    confirmed = true;
    before();
    storage.clear();
    form.submit();
  };
  // One listener for the dialog's life: a close event is a task of its own, and under load the one of
  // an earlier answer can arrive after the dialog opened again; it must not take the new opening's answer.
  const answered = () => {
    if (dialog.open) return;
    if (dialog.returnValue === "discard") leave();
    else form.querySelector("button")?.focus();
  };
  form.addEventListener("submit", (event) => {
    if (confirmed) return;
    event.preventDefault();
    const count = unsentCount(storage);
    if (!count) { leave(); return; }
    if (!dialog) {
      dialog = document.getElementById("logout-confirm") || confirmDialog();
      dialog.addEventListener("close", answered);
    }
    dialog.querySelector("#logout-confirm-text").textContent = lossWarning(count);
    dialog.querySelector("#logout-discard").textContent = `Log out and delete ${count === 1 ? "it" : `${count} messages`}`;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector("#logout-stay").focus();
  });
}
