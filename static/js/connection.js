// The connection's state machine: "connecting" until the first connect, then "online" or
// "offline" (retrying); retries counts the attempts since the last success. Nothing runs on import.

export const CONNECTING = "connecting";
export const ONLINE = "online";
export const OFFLINE = "offline";

export function initialConnection() {
  return { status: CONNECTING, retries: 0 };
}

// Return the state after a Socket.IO event: connect, disconnect, connect_error or reconnect_attempt (with its count).
export function nextConnection(conn, event, attempt = 0) {
  switch (event) {
    case "connect": return { status: ONLINE, retries: 0 };
    case "disconnect": return { status: OFFLINE, retries: conn.retries };
    // Never connected yet: still connecting; lost after being online: offline while retrying.
    case "connect_error": return conn.status === ONLINE ? { status: OFFLINE, retries: 0 } : conn;
    case "reconnect_attempt": return { status: conn.status === CONNECTING ? CONNECTING : OFFLINE, retries: attempt };
    default: return conn;
  }
}

// Describe a state in the page's words, with the number of messages waiting in the outbox.
export function describe(conn, waiting = 0) {
  const { status, retries } = conn;
  let text;
  if (status === ONLINE) text = "Online";
  else if (status === CONNECTING) text = retries ? `Connecting (try ${retries})…` : "Connecting…";
  else text = retries ? `Offline · reconnecting (try ${retries})` : "Offline · reconnecting";
  if (waiting && status !== ONLINE) text += ` · ${waiting} waiting`;
  const title = status === ONLINE ? "Connected to the server"
    : "Not connected; messages wait in the outbox and go out on reconnect";
  return { text, title };
}

// Return socket.io-client's options, fresh for each io() (which writes into them): WebSocket first,
// HTTP long-polling when a WebSocket cannot open.
export function socketOptions() {
  return {
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 4000,
    timeout: 8000,
  };
}

// Tell whether a connect_error means the identity was refused (so retrying cannot help).
export function refusedIdentity(err, code = "unauthorized") {
  return err?.data?.code === code || err?.message === code;
}
