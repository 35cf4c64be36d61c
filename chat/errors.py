"""The contract's errors: the codes, one exception type and its wire shapes."""
from typing import Any

CODES = {
    "unauthorized": 401,
    "forbidden": 403,
    "invalid_payload": 400,
    "invalid_room": 400,
    "invalid_message": 400,
    "not_in_room": 409,
    "not_found": 404,
    "rate_limited": 429,
    "too_large": 413,
    "conflict": 409,
    "unavailable": 503,
}
# Refusals that the same request meets again, however often it is retried: a client gives up on it.
FINAL = frozenset({"invalid_payload", "invalid_room", "invalid_message", "not_found", "forbidden", "too_large",
                   "conflict"})


def table() -> dict[str, dict[str, Any]]:
    """Describe every code for clients: {code: {"status": HTTP status, "final": no retry helps}}."""
    return {code: {"status": status, "final": code in FINAL} for code, status in CODES.items()}


class ChatError(Exception):
    """A refusal the client can act on: a contract error code and a readable message."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """Return the HTTP status of this refusal."""
        return CODES[self.code]

    def body(self) -> dict[str, str]:
        """Return the `error` object both transports carry."""
        return {"code": self.code, "message": self.message}

    def ack(self) -> dict[str, Any]:
        """Return the Socket.IO acknowledgement for this error."""
        answer: dict[str, Any] = {"ok": False, "error": self.body()}
        if self.retry_after is not None:
            answer["retry_after"] = self.retry_after
        return answer
