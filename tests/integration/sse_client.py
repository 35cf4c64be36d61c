"""A Server-Sent Events client with nothing but the standard library, as a backend or a shell would follow Papo."""
import contextlib
import http.client
import json
import socket
import threading
import time
from urllib.parse import urlencode, urlsplit


class EventStream:
    """GET /api/stream on one connection; a thread parses the events (spec parsing, as EventSource does).

    events: [{"event", "id", "data"}] in arrival order; last_id: the last id seen, an id-only block's
    included; comments: how many comment lines came; ended: set once the server closed the stream.
    status and error: the answer when it is not 200.
    """

    def __init__(self, url, token=None, rooms=(), notifications=False, last_event_id=None, query_id=False,
                 cookie=None, timeout=10.0):
        parts = urlsplit(url)
        query = {}
        if rooms:
            query["rooms"] = ",".join(rooms)
        if notifications:
            query["notifications"] = "1"
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            if query_id:
                query["last_event_id"] = last_event_id
            else:
                headers["Last-Event-ID"] = last_event_id
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = cookie
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", "/api/stream?" + urlencode(query), headers=headers)
        self.sock = self.conn.sock  # http.client lets go of it when the answer has no length
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.events = []
        self.comments = 0
        self.retry = None
        self.last_id = last_event_id
        self.ended = threading.Event()
        self.error = None
        self._changed = threading.Condition()
        if self.status != 200:
            self.error = json.loads(self.response.read() or b"null")
            self.ended.set()
            self.conn.close()
            return
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        block = {}
        data = []
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    self._dispatch(block, data)
                    block, data = {}, []
                    continue
                if line.startswith(":"):
                    with self._changed:
                        self.comments += 1
                        self._changed.notify_all()
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field == "retry" and value.isdigit():
                    self.retry = int(value)
                elif field in ("event", "id"):
                    block[field] = value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # AttributeError: closed meanwhile
            pass
        finally:
            with self._changed:
                self.ended.set()
                self._changed.notify_all()

    def _dispatch(self, block, data):
        with self._changed:
            if "id" in block:
                self.last_id = block["id"]
            if data:
                self.events.append({"event": block.get("event", "message"), "id": block.get("id", self.last_id),
                                    "data": json.loads("\n".join(data))})
            self._changed.notify_all()

    def wait_until(self, condition, timeout=10.0):
        """Wait until condition(self) holds; AssertionError with what came if it does not within timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stream never got there: events={self.events[-5:]} "
                                         f"ended={self.ended.is_set()}")
                self._changed.wait(left)
        return self

    def of(self, name, room=None):
        """The data of the events called name (in one room), in order."""
        return [e["data"] for e in self.events
                if e["event"] == name and (room is None or e["data"].get("room") == room)]

    def seqs(self, room):
        return [m["seq"] for m in self.of("message", room)]

    def close(self):
        """Drop the connection, as a client that goes away would."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.conn.close()
        self.sock.close()
        self.ended.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
