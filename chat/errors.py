"""The contract's errors: one exception type and its two wire shapes."""

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


class ChatError(Exception):
    """A refusal the client can act on: a contract error code and a readable message."""

    def __init__(self, code, message, retry_after=None):
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self):
        return CODES[self.code]

    def body(self):
        """The `error` object both transports carry."""
        return {"code": self.code, "message": self.message}

    def ack(self):
        """The Socket.IO acknowledgement for this error."""
        answer = {"ok": False, "error": self.body()}
        if self.retry_after is not None:
            answer["retry_after"] = self.retry_after
        return answer
