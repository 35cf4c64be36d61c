// The identity's lifetime in the browser: refresh it before it expires, and leave for the
// signed-out page when the server ends it (never reconnecting with a dead identity). Nothing runs on import.

export const ENDINGS = ["token_expired", "logged_out", "revoked", "disconnected_by_admin"];

// Return the page that tells the user why they were signed out, then lets them log in again.
export function signedOutUrl(code, next = "/") {
  const reason = ENDINGS.includes(code) ? code : "unauthorized";
  return `/login?ended=${reason}&next=${encodeURIComponent(next)}`;
}

// Ask the server for a new token (the session cookie is rotated with it); the token, or null when refused.
export async function freshToken(fetchFn) {
  try {
    const resp = await fetchFn("/api/tokens/refresh", {
      method: "POST", credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!resp.ok) return null;
    const answer = await resp.json();
    return typeof answer?.token === "string" ? answer.token : null;
  } catch {
    return null;
  }
}

// Wire the session events to a socket.io-client socket: `auth_expiring` refreshes the connection's
// identity in place; `session_ended` stops reconnection, disconnects and leaves with the reason.
export function watchSession(socket, { fetchFn, leave, next = "/" }) {
  const watch = { ended: null, refreshes: 0 };
  socket.on("auth_expiring", async () => {
    const token = await freshToken(fetchFn);
    if (token === null || watch.ended) return;  // the end will come, as session_ended
    socket.emit("refresh", { token }, (ack) => { if (ack?.ok) watch.refreshes += 1; });
  });
  socket.on("session_ended", (ending) => {
    watch.ended = ending?.code || "unauthorized";
    if (socket.io?.opts) socket.io.opts.reconnection = false;
    socket.disconnect();
    leave(signedOutUrl(watch.ended, next));
  });
  return watch;
}
