"""Chaos against a real server: many clients chat steadily while connections drop and the server is SIGKILLed.

Every client behaves like the browser's: it keeps an outbox and retries each message with the same
client_id until it is acked; on every connect it re-joins its rooms with `since` = the highest seq
up to which it has every message (every other client in the handshake, `auth.join`, as the browser
client does; the rest by `join` events); it keeps what arrives by seq. At the end, every client's view of
every room must equal the database, and every acked message must be stored exactly once.

Run directly for a soak (see docs/security.md):
    .venv/bin/python -m tests.chaos.harness --seconds 1800 --kill-every 0
"""
import argparse
import collections
import contextlib
import itertools
import json
import os
import random
import socket
import sqlite3
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

from tests.servers import DEFAULT_MODE, ServerProcess, register

ACK_TIMEOUT = 10.0


@dataclass
class Pending:
    """A message in a client's outbox. Shape: sent_at is None while it waits to be (re)sent."""

    room: str
    text: str
    client_id: str
    attempts: int = 0
    sent_at: float | None = None
    sent_wall_ms: int = 0  # the wall clock at the last send, to compare with the stored ts


@dataclass
class View:
    """What one client has of one room. Shape: messages {seq: Message}; upto: all of 1..upto are here."""

    messages: dict = field(default_factory=dict)
    upto: int = 0
    deliveries: int = 0  # every arrival, repeats included
    joined: bool = False  # re-joined since the last connect

    def add(self, message):
        self.deliveries += 1
        known = self.messages.setdefault(message["seq"], message)
        if known != message:
            raise AssertionError(f"two different messages with seq {message['seq']}: {known} and {message}")
        while self.upto + 1 in self.messages:
            self.upto += 1


class ChaosClient:
    """One user's python-socketio connection with an outbox and per-room views."""

    def __init__(self, url, name, token, rooms, transport, rate, rng, handshake_joins=False):
        self.url, self.name, self.token, self.transport = url, name, token, transport
        self.handshake_joins = handshake_joins
        self.rate = rate
        self.rng = rng
        self.views = {room: View() for room in rooms}
        self.outbox = []  # [Pending], oldest first
        self.acked = {}  # {client_id: Message}
        self.counter = itertools.count(1)
        self.next_send = time.monotonic() + rng.random() / rate
        self.connects = self.drops = self.refusals = self.resends = self.stored_before = 0
        self.lock = threading.RLock()
        self.reconnecting = threading.Lock()  # held by the harness's own disconnect-and-connect
        # [(seconds since start, what happened)], for a stuck client
        self.history: collections.deque = collections.deque(maxlen=40)
        self.started = time.monotonic()
        self.sio = socketio.Client(reconnection=True, reconnection_attempts=0, reconnection_delay=0.2,
                                   reconnection_delay_max=1.5, randomization_factor=0.5)
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("connect_error", lambda data=None: self.note(f"connect_error {str(data)[:80]}"))
        self.sio.on("message", self.on_message)
        self.sio.on("joined", self.on_joined)

    # connection life

    def connect(self):
        self.sio.connect(self.url, auth=self.auth, transports=[self.transport], wait_timeout=10, retry=True)

    def auth(self):
        """The handshake's auth: the token, and in handshake mode every room with `since`."""
        if not self.handshake_joins:
            return {"token": self.token}
        with self.lock:
            return {"token": self.token,
                    "join": [{"room": room, "since": view.upto} for room, view in self.views.items()]}

    def note(self, what):
        self.history.append((round(time.monotonic() - self.started, 2), what))

    def state(self):
        """What a client that never drained was doing: its connection, views, outbox and last events."""
        now = time.monotonic()
        with self.lock:
            return {"connected": self.sio.connected, "transport": self.transport,
                    "eio_state": getattr(self.sio.eio, "state", None), "sid": self.sio.sid,
                    "reconnecting": bool(self.sio._reconnect_task),
                    "views": {room: {"joined": v.joined, "upto": v.upto} for room, v in self.views.items()},
                    "outbox": [(p.client_id, p.attempts, None if p.sent_at is None else round(now - p.sent_at, 1))
                               for p in self.outbox[:5]],
                    "history": list(self.history)}

    def on_connect(self):
        with self.lock:
            self.note(f"connect {self.sio.sid}")
            self.connects += 1
            if self.handshake_joins:
                return  # a `joined` event answers each room asked in the handshake
            for room, view in self.views.items():
                view.joined = False
                self.sio.emit("join", {"room": room, "since": view.upto}, callback=self.joined(room))

    def joined(self, room):
        def on_ack(ack):
            with self.lock:
                self.note(f"join {room} ack ok={ack.get('ok')} {ack.get('error', {}).get('code', '')}")
                if not ack.get("ok"):
                    return  # the next connect tries again
                view = self.views[room]
                for message in ack["messages"]:
                    view.add(message)
                view.joined = not ack["truncated"]
                if ack["truncated"]:  # more than one page was missed: ask again from where it is now
                    self.sio.emit("join", {"room": room, "since": view.upto}, callback=self.joined(room))
        return on_ack

    def on_joined(self, ack):
        room = ack.get("room")
        if room in self.views:
            self.joined(room)(ack)

    def on_disconnect(self, reason=None):
        with self.lock:
            self.note(f"disconnect {reason}")
            for view in self.views.values():
                view.joined = False
            for pending in self.outbox:
                pending.sent_at = None  # its ack is lost with the connection: send it again

    def on_message(self, message):
        with self.lock:
            view = self.views.get(message["room"])
            if view is not None:
                view.add(message)

    def drop(self):
        """Break the connection as a network fault would; the client reconnects by itself.

        Only a live client is dropped: breaking one that is still connecting trips a race in
        python-socketio's client (below), which a network fault could trip too, but rarely.
        """
        self.drops += 1
        self.note("drop")
        if not self.live():
            return
        if self.transport == "websocket":
            ws = getattr(self.sio.eio, "ws", None)
            if ws is not None and ws.sock is not None:
                with contextlib.suppress(OSError):
                    ws.sock.shutdown(socket.SHUT_RDWR)
            return
        threading.Thread(target=self._reconnect, daemon=True).start()

    def live(self):
        """Whether the client is connected and its Engine.IO session is too."""
        return self.sio.connected and getattr(self.sio.eio, "state", None) == "connected"

    def stranded(self):
        """Whether python-socketio says connected over a dead Engine.IO session, with no reconnection coming.

        Its client ends so when the Engine.IO connection drops after the namespace's CONNECT ack but
        before connect() marks it connected: the drop's handler sees it not yet connected and starts
        no reconnection, then connect() marks it connected. Seen twice in 19 chaos runs.
        """
        return (self.sio.connected and getattr(self.sio.eio, "state", None) != "connected"
                and not self.sio._reconnect_task)

    def _reconnect(self):
        """Disconnect and connect again, unless another thread of the harness is doing so."""
        if not self.reconnecting.acquire(blocking=False):
            return
        try:
            self.sio.disconnect()
            time.sleep(self.rng.random() * 0.5)
            self.connect()
        except Exception:
            pass  # the next drop or the final drain reconnects
        finally:
            self.reconnecting.release()

    # sending

    def tick(self, now, generating):
        """Write a new message when due, and (re)send what waits in the outbox."""
        with self.lock:
            if generating and now >= self.next_send:
                n = next(self.counter)
                room = self.rng.choice(sorted(self.views))
                self.outbox.append(Pending(room, f"{self.name} says #{n}", f"{self.name}-{n}"))
                self.next_send = now + self.rng.expovariate(self.rate)
            if not self.sio.connected:
                return
            for pending in self.outbox:
                stale = pending.sent_at is not None and now - pending.sent_at > ACK_TIMEOUT
                if (pending.sent_at is None or stale) and self.views[pending.room].joined:
                    pending.sent_at = now
                    pending.sent_wall_ms = int(time.time() * 1000)
                    pending.attempts += 1
                    self.resends += pending.attempts > 1
                    try:
                        self.sio.emit("message", {"room": pending.room, "text": pending.text,
                                                  "client_id": pending.client_id}, callback=self.on_ack(pending))
                    except Exception:
                        pending.sent_at = None
                        return

    def on_ack(self, pending):
        def on_ack(ack):
            with self.lock:
                if ack.get("ok"):
                    message = ack["message"]
                    assert message["client_id"] == pending.client_id and message["text"] == pending.text
                    if pending.attempts > 1 and message["ts"] < pending.sent_wall_ms - 1:
                        self.stored_before += 1  # an earlier attempt was stored; its ack was lost
                    self.acked[pending.client_id] = message
                    if pending in self.outbox:
                        self.outbox.remove(pending)
                    self.views[pending.room].add(message)
                else:
                    self.refusals += 1
                    pending.sent_at = None if ack["error"]["code"] != "rate_limited" else \
                        time.monotonic() + ack.get("retry_after", 1) - ACK_TIMEOUT
        return on_ack

    def in_flight(self):
        with self.lock:
            return any(pending.sent_at is not None for pending in self.outbox)

    def close(self):
        """Disconnect, or stop reconnecting: disconnect() alone leaves a reconnecting client trying forever."""
        # First, so that the servers' stop, right after, starts no reconnection: python-socketio's
        # shutdown() aborts a reconnection only between two attempts, and an attempt under way when it
        # is called connects and ends the task, leaving a connected client that the servers' stop sends
        # back to reconnecting forever, which the session's check (tests/conftest.py) reports as an error.
        self.sio.reconnection = False
        closing = threading.Thread(target=self._shut, daemon=True)
        closing.start()
        closing.join(1)

    def _shut(self):
        self.sio.shutdown()
        if self.sio.connected:  # the attempt under way connected meanwhile
            self.sio.disconnect()


def database_rooms(db_url):
    """{room: [(seq, id, author, text, client_id)] by seq} and {room: last_seq}, read from the database."""
    conn: Any
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(f"file:{db_url.removeprefix('sqlite:///')}?mode=ro", uri=True)
    else:
        import psycopg

        conn = psycopg.connect(db_url)
    try:
        rows = conn.execute("SELECT r.name, m.seq, m.id, m.author, m.text, m.client_id FROM messages m "
                            "JOIN rooms r ON r.id = m.room_id ORDER BY r.name, m.seq").fetchall()
        last = dict(conn.execute("SELECT name, last_seq FROM rooms").fetchall())
    finally:
        conn.close()
    stored: dict[str, list] = {}
    for room, seq, row_id, author, text, client_id in rows:
        stored.setdefault(room, []).append((seq, str(row_id), author, text, client_id))
    return stored, last


@dataclass
class Report:
    seconds: float
    clients: int
    rooms: int
    kills: int
    drops: int
    reconnects: int
    generated: int
    acked: int
    stored: int
    lost: int
    duplicated: int
    gaps: int
    view_mismatches: int
    redeliveries: int
    resends: int
    stored_before: int
    refusals: int
    rss_mb: list
    phases: dict = field(default_factory=dict)  # {phase: seconds}: set up, chaos, drain, catch-up

    def line(self):
        return (f"chaos: {self.seconds:.0f} s, {self.clients} clients in {self.rooms} rooms, "
                f"{self.kills} server kills, "
                f"{self.drops} dropped connections, {self.reconnects} reconnects; {self.generated} written, "
                f"{self.acked} acked, {self.stored} stored; lost = {self.lost}, duplicated = {self.duplicated}, "
                f"seq gaps = {self.gaps}, views differing from the database = {self.view_mismatches} "
                f"({self.redeliveries} repeated deliveries, {self.resends} resends of which "
                f"{self.stored_before} found stored already, {self.refusals} refusals); seconds per phase: "
                + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.phases.items()))


def run(db_url, seconds=60.0, clients=50, rooms=5, rooms_per_client=2, rate=0.6, kill_every=15.0,
        drop_every=1.0, polling_share=0.2, mode=DEFAULT_MODE, seed=1, env=None, processes=1, log=print):
    """Run the chaos for `seconds`, drain, verify; a Report (assertions are the caller's).

    With several `processes` (sharing a PostgreSQL db_url and the REDIS_URL in env), client n holds
    to process n mod processes: every room has members on each, so every message crosses, and a
    kill takes down one process with its clients.
    """
    rng = random.Random(seed)
    room_names = [f"chaos-{n}" for n in range(rooms)]
    servers = [ServerProcess(mode, db_url, env=env) for _ in range(processes)]
    people: list[ChaosClient] = []
    rss: list[float] = []
    phases = {}
    began = time.monotonic()

    def phase(name):
        nonlocal began
        now = time.monotonic()
        phases[name] = now - began
        began = now

    try:
        for server in servers:  # one at a time: the first creates the schema
            server.start()
        tokens = sign_up(servers[0].url, [f"chaos{n}" for n in range(clients)])
        for n in range(clients):
            name = f"chaos{n}"
            mine = [room_names[(n + k) % rooms] for k in range(rooms_per_client)]
            transport = "polling" if n < clients * polling_share else "websocket"
            people.append(ChaosClient(servers[n % processes].url, name, tokens[name], mine, transport, rate,
                                      random.Random(seed + n), handshake_joins=n % 2 == 1))
        for person in people:
            person.connect()
        log(f"chaos: {clients} clients connected to {servers!r}; running {seconds:.0f} s")
        phase("set up")
        kills = make_chaos(servers, people, rng, seconds, kill_every, drop_every, rss)
        phase("chaos")
        try:
            drain(people, deadline=time.monotonic() + 60, log=log)
        except AssertionError as error:
            logs = "\n".join(f"log of {server!r}:\n{server.log_tail(60)}" for server in servers)
            raise AssertionError(f"{error}\n{logs}") from None
        phase("drain")
        stored, last = database_rooms(db_url)
        catch_up(people, last, deadline=time.monotonic() + 60)
        phase("catch-up")
        rss.append(resident_mb(servers))
        return verify(people, stored, last, phases, kills, rss)
    finally:
        for person in people:
            person.close()
        for server in servers:
            server.close()


def resident_mb(servers):
    """The servers' resident memory together, in MB."""
    return round(sum(server.rss() for server in servers) / 2**20, 1)


def sign_up(url, names):
    """Register every name side by side; {name: token}."""
    tokens = {}
    lock = threading.Lock()

    def one(name):
        token = register(url, name)
        with lock:
            tokens[name] = token

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tokens


def make_chaos(servers, people, rng, seconds, kill_every, drop_every, rss):
    """Let the clients chat for `seconds` while connections drop and a server is killed; the kills."""
    began = time.monotonic()
    next_kill = began + kill_every if kill_every else float("inf")
    next_drop = began + drop_every
    next_sample = began
    kills = 0
    while (now := time.monotonic()) < began + seconds:
        for person in people:
            person.tick(now, generating=True)
        if now >= next_drop:
            drop_some(people, rng)
            next_drop = now + rng.expovariate(1 / drop_every)
        if now >= next_kill:
            wait_for_sending(people, timeout=1.0)  # kill with messages in flight
            server = rng.choice(servers)
            server.kill()
            kills += 1
            for person in people:
                person.note(f"server {server.port} killed")
            time.sleep(rng.random())
            server.start()
            for person in people:
                person.note(f"server {server.port} started")
            next_kill = time.monotonic() + kill_every * (0.5 + rng.random())
        if now >= next_sample:
            rss.append(resident_mb(servers))
            next_sample = now + max(5.0, seconds / 60)
        time.sleep(0.02)
    return kills


def drop_some(people, rng):
    """Break one to three connections, often one with a message in flight, so that its ack is lost."""
    sending = [person for person in people if person.in_flight()]
    victims = rng.sample(people, k=rng.randint(1, 3))
    if sending and rng.random() < 0.5:  # lose an ack: the message may be stored, or not
        victims[0] = rng.choice(sending)
    for person in set(victims):
        person.drop()


def wait_for_sending(people, timeout):
    """Return as soon as some client has a message on the wire (or after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        for person in people:
            person.tick(now, generating=True)
            if person.in_flight():
                return
        time.sleep(0.001)


def drain(people, deadline, log=print, slow=10.0):
    """Stop writing and let every outbox empty (all acked); raise if one never does.

    A drain slower than `slow` seconds logs, once, the state of each client still waiting: a slow
    drain that passes is a loss of progress too, and needs its cause.
    """
    told = time.monotonic() + slow
    while time.monotonic() < deadline:
        now = time.monotonic()
        waiting = 0
        for person in people:
            polling_down = person.transport == "polling" and not person.sio.connected and not person.sio._reconnect_task
            if polling_down or person.stranded():
                person._reconnect()
            person.tick(now, generating=False)
            waiting += len(person.outbox)
        if not waiting:
            return
        if told is not None and now > told:
            told = None
            slow_ones = {p.name: p.state() for p in people if p.outbox}
            log(f"chaos: still draining after {slow:.0f} s: {json.dumps(slow_ones, default=str)[:6000]}")
        time.sleep(0.05)
    stuck = {p.name: p.state() for p in people if p.outbox}
    raise AssertionError(f"outboxes never drained: {json.dumps(stuck, default=str)[:6000]}")


def catch_up(people, last, deadline):
    """Re-join each room with since, as a reconnecting client would, until each view reaches the last seq."""
    for person in people:
        for room, view in person.views.items():
            while view.upto < last.get(room, 0) and time.monotonic() < deadline:
                try:
                    ack = person.sio.call("join", {"room": room, "since": view.upto}, timeout=10)
                except Exception:  # reconnecting: its own re-join will bring the messages too
                    time.sleep(0.2)
                    continue
                with person.lock:
                    for message in ack.get("messages", ()):
                        view.add(message)


def verify(people, stored, last, phases, kills, rss):
    """Compare every acked message and every client's view with the database."""
    gaps = duplicated = lost = mismatches = 0
    by_client_id: dict[tuple, list] = {}
    texts: dict[str, int] = {}
    for room, rows in stored.items():
        seqs = [row[0] for row in rows]
        if seqs != list(range(1, len(seqs) + 1)) or last.get(room) != len(seqs):
            gaps += 1
        for seq, row_id, author, text, client_id in rows:
            by_client_id.setdefault((author, client_id), []).append((room, seq, row_id))
            texts[text] = texts.get(text, 0) + 1
    duplicated = sum(count - 1 for count in texts.values() if count > 1)
    duplicated += sum(len(found) - 1 for found in by_client_id.values() if len(found) > 1)
    acked = 0
    for person in people:
        for client_id, message in person.acked.items():
            acked += 1
            found = by_client_id.get((person.name, client_id), [])
            if found != [(message["room"], message["seq"], message["id"])]:
                lost += 1
        for room, view in person.views.items():
            expected = [(seq, row_id, author, text, client_id) for seq, row_id, author, text, client_id
                        in stored.get(room, [])]
            seen = [(m["seq"], m["id"], m["user"], m["text"], m["client_id"])
                    for _, m in sorted(view.messages.items())]
            if seen != expected:
                mismatches += 1
    return Report(
        seconds=phases["chaos"], clients=len(people), rooms=len({room for p in people for room in p.views}),
        kills=kills,
        drops=sum(p.drops for p in people), reconnects=sum(p.connects - 1 for p in people),
        generated=sum(next(p.counter) - 1 for p in people), acked=acked, stored=sum(len(r) for r in stored.values()),
        lost=lost, duplicated=duplicated, gaps=gaps, view_mismatches=mismatches,
        redeliveries=sum(v.deliveries - len(v.messages) for p in people for v in p.views.values()),
        resends=sum(p.resends for p in people), stored_before=sum(p.stored_before for p in people),
        refusals=sum(p.refusals for p in people),
        rss_mb=rss, phases=phases)


def memory_is_flat(rss_mb, warm_share=0.25):
    """Whether the server's RSS after warm-up grew by less than max(20 MB, 15 %); (flat, growth MB)."""
    if len(rss_mb) < 4:
        return True, 0.0
    warm = rss_mb[max(1, int(len(rss_mb) * warm_share)):]
    start = statistics.median(warm[:max(1, len(warm) // 4)])
    end = statistics.median(warm[-max(1, len(warm) // 4):])
    growth = end - start
    return growth < max(20.0, 0.15 * start), round(growth, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--kill-every", type=float, default=15, help="seconds between server kills (0: never)")
    parser.add_argument("--mode", default=DEFAULT_MODE)
    parser.add_argument("--db", default="/tmp/papo-chaos.db")
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    report = run(f"sqlite:///{os.path.abspath(args.db)}", seconds=args.seconds, clients=args.clients,
                 kill_every=args.kill_every, mode=args.mode)
    print(report.line())
    flat, growth = memory_is_flat(report.rss_mb)
    print(f"server RSS MB every sample: {report.rss_mb}; growth after warm-up {growth} MB: "
          f"{'flat' if flat else 'GROWING'}")


if __name__ == "__main__":
    main()
