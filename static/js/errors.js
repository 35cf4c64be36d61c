// Error codes: what the client does about a refusal, decided from the table the server renders
// (chat/errors.py, in <body data-errors>) rather than from a copied list. Nothing runs on import.

// The codes the client reacts to by name; tests/js checks that the server still has each one.
export const RATE_LIMITED = "rate_limited";
export const NOT_IN_ROOM = "not_in_room";
export const UNAUTHORIZED = "unauthorized";

// Read {code: {status, final}} from the page's JSON; an empty table when it is missing or broken.
export function parseErrorTable(json) {
  try {
    const table = JSON.parse(json || "{}");
    return table && typeof table === "object" && !Array.isArray(table) ? table : {};
  } catch { return {}; }
}

// Decide what to do with a refused send: "wait" (until retry_after), "rejoin" (then resend),
// "fail" (no retry helps: show it to the user) or "retry" (the server said try again later).
export function actionFor(code, table) {
  if (code === RATE_LIMITED) return "wait";
  if (code === NOT_IN_ROOM) return "rejoin";
  if (table[code]?.final) return "fail";
  return "retry";
}
