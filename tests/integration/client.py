"""A python-socketio chat client that behaves like the browser's: it re-joins every room with `since` on connect."""
import itertools
import threading
import time

import socketio

_client_ids = itertools.count(1)


class ChatClient:
    """One user's Socket.IO connection; records what arrives and keeps the highest seq per room.

    Shape: rooms {room: highest seq seen}, received {room: [Message] in arrival order, duplicates kept},
    joins [(room, since sent, join ack)] in the order their acks came back.
    """

    def __init__(self, url, token, transports=("websocket",), reconnection=False, handshake_joins=False, **options):
        self.url = url
        self.token = token
        self.transports = list(transports)
        self.handshake_joins = handshake_joins  # re-join in the handshake (`auth.join`), as the browser does
        self.asked = {}  # {room: since} the last handshake asked to join
        self.sio = socketio.Client(reconnection=reconnection, **options)
        self.rooms = {}
        self.received = {}
        self.joins = []
        self.events = []  # [(name, payload)] of every other server event
        self.connects = 0
        self._lock = threading.Condition()
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("message", self._on_message)
        self.sio.on("joined", self._on_joined)
        self.sio.on("*", self._on_other)

    def connect(self, timeout=10):
        self.sio.connect(self.url, auth=self._auth, transports=self.transports, wait_timeout=timeout)
        return self

    def close(self, wait=0.5):
        """Disconnect, or stop reconnecting, waiting at most `wait` seconds: over WebSocket the client
        library waits up to 3 s for the server to end the TCP connection, which gevent and the
        development server do not. (disconnect() alone leaves a client that is reconnecting trying
        forever, in a thread of the test process, after its server has gone.)"""
        closing = threading.Thread(target=self.sio.shutdown, daemon=True)
        closing.start()
        closing.join(wait)

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    @property
    def transport(self):
        return self.sio.transport()

    # what the browser client does

    def _auth(self):
        """The handshake's auth: the token, and in handshake mode every room with the last seq held."""
        if not self.handshake_joins:
            return {"token": self.token}
        with self._lock:
            self.asked = dict(self.rooms)
        return {"token": self.token, "join": [{"room": room, "since": since} for room, since in self.asked.items()]}

    def _on_connect(self):
        """Re-join every room the client is in (but those asked in the handshake), asking for what came after
        the last seq it has."""
        with self._lock:
            self.connects += 1
            rooms = {room: since for room, since in self.rooms.items() if room not in self.asked}
            self._lock.notify_all()
        for room, since in rooms.items():
            self.sio.emit("join", {"room": room, "since": since}, callback=self._joined_callback(room, since))

    def _on_disconnect(self, reason=None):
        with self._lock:
            self._lock.notify_all()

    def _joined_callback(self, room, since):
        def joined(ack):
            with self._lock:
                self.joins.append((room, since, ack))
                if ack.get("ok"):
                    for message in ack["messages"]:
                        self._record(message)
                self._lock.notify_all()
        return joined

    def _on_joined(self, ack):
        with self._lock:
            self.joins.append((ack.get("room"), self.asked.get(ack.get("room")), ack))
            if ack.get("ok"):
                for message in ack["messages"]:
                    self._record(message)
            self._lock.notify_all()

    def _on_message(self, message):
        with self._lock:
            self._record(message)
            self._lock.notify_all()

    def _on_other(self, event, *args):
        with self._lock:
            self.events.append((event, args[0] if args else None))
            self._lock.notify_all()

    def _record(self, message):
        room = message["room"]
        self.received.setdefault(room, []).append(message)
        self.rooms[room] = max(self.rooms.get(room, 0), message["seq"])

    # calls

    def call(self, event, payload, timeout=10):
        return self.sio.call(event, payload, timeout=timeout)

    def join(self, room, since=None):
        payload = {"room": room} if since is None else {"room": room, "since": since}
        ack = self.call("join", payload)
        assert ack["ok"], ack
        with self._lock:
            self.joins.append((room, since, ack))
            self.rooms.setdefault(room, 0)
            for message in ack["messages"]:
                self._record(message)
            self.rooms[room] = max(self.rooms[room], ack["last_seq"])
        return ack

    def send(self, room, text, client_id=None):
        """Send a message; the ack."""
        client_id = client_id or f"c{next(_client_ids)}-{time.monotonic_ns()}"
        return self.call("message", {"room": room, "text": text, "client_id": client_id})

    # waiting

    def wait_until(self, condition, timeout=10):
        """Wait until condition(self) holds (checked under the client's lock); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))  # some conditions change without a notify
        return True

    def seqs(self, room):
        with self._lock:
            return [m["seq"] for m in self.received.get(room, [])]
