// Follow one room over Server-Sent Events with the browser's EventSource: no Socket.IO, no library.
// The stream starts first and the recent history is read after it, so that nothing falls between
// the two; a message both bring is shown once (by seq). EventSource reconnects by itself and sends
// the last event id, and the server resumes exactly after it.

const room = document.body.dataset.room;
const list = document.getElementById("messages");
const status = document.getElementById("connection");

function showStatus(state, text) {
  if (!status) return;
  status.dataset.status = state;
  status.querySelector(".connection-text").textContent = text;
}

function show(message) {
  let item = list.querySelector(`li[data-seq="${message.seq}"]`);
  if (!item) {
    item = document.createElement("li");
    item.className = "msg";
    item.dataset.seq = String(message.seq);
    const meta = document.createElement("div");
    meta.className = "meta";
    const author = document.createElement("span");
    author.className = "author";
    const time = document.createElement("time");
    meta.append(author, time);
    const text = document.createElement("p");
    text.className = "text";
    item.append(meta, text);
    const later = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
    list.insertBefore(item, later || null);
  }
  item.querySelector(".author").textContent = message.user;
  const time = item.querySelector("time");
  time.dateTime = new Date(message.ts).toISOString();
  time.textContent = new Date(message.ts).toLocaleTimeString();
  item.querySelector(".text").textContent = message.deleted ? "(deleted)" : message.text;
  item.dataset.rev = String(message.rev || 0);
}

function showNewer(message) {
  const item = list.querySelector(`li[data-seq="${message.seq}"]`);
  if (!item || Number(item.dataset.rev) <= (message.rev || 0)) show(message);
}

const source = new EventSource(`/api/stream?rooms=${encodeURIComponent(room)}`);
source.addEventListener("open", () => showStatus("online", "Online"));
source.addEventListener("error", () => {
  if (source.readyState === EventSource.CLOSED) showStatus("offline", "Stopped: reload the page");
  else showStatus("connecting", "Reconnecting…");
});
source.addEventListener("message", (event) => showNewer(JSON.parse(event.data)));
source.addEventListener("message_updated", (event) => showNewer(JSON.parse(event.data)));
source.addEventListener("session_ended", () => {
  source.close();
  showStatus("offline", "Signed out");
});

fetch(`/api/rooms/${encodeURIComponent(room)}/messages?limit=50`, { credentials: "same-origin" })
  .then((response) => (response.ok ? response.json() : { messages: [] }))
  .then((answer) => answer.messages.forEach(showNewer))
  .catch(() => {});
