"""The latest messages of each room, kept in memory so that a rejoin after a short drop reads no disk.

Only the process that owns a SQLite file keeps them (Store.claim): it is the only writer, so what it
committed is all there is. The writer thread adds each committed batch and loads a room the first
time it is asked for; the event loop reads. One OS lock guards both, held for a few list operations.
Shape: {room: _Window} in least-recently-used order, each window the room's latest messages
(consecutive seqs, oldest first) and its last seq.
"""
import collections
import threading
from typing import Any

PER_ROOM = 512  # a rejoin replays at most 500 messages; more than that is read from the database
TOTAL = 100_000  # messages kept over all rooms (tens of MB); the least recently used rooms go first


class _Window:
    __slots__ = ("messages", "last_seq")

    def __init__(self, messages: list[dict], last_seq: int):
        self.messages = collections.deque(messages, maxlen=PER_ROOM)
        self.last_seq = last_seq

    def first_seq(self) -> int:
        """The lowest seq this window can answer from: everything after it is here."""
        return self.messages[0]["seq"] if self.messages else self.last_seq + 1


class RecentMessages:
    """Each room's latest messages and last seq, or None where the room is not loaded or the window ends."""

    def __init__(self, lock: Any = None, per_room: int = PER_ROOM, total: int = TOTAL):
        self._lock = lock or threading.Lock()
        self._rooms: collections.OrderedDict[str, _Window] = collections.OrderedDict()
        self._count = 0
        self.per_room = per_room
        self.total = total

    def loaded(self, room: str) -> bool:
        return room in self._rooms

    def install(self, room: str, messages: list[dict], last_seq: int) -> None:
        """Keep a room's latest messages (oldest first) as read from the database by the writer."""
        with self._lock:
            old = self._rooms.pop(room, None)
            if old is not None:
                self._count -= len(old.messages)
            window = _Window(messages[-self.per_room:], last_seq)
            self._rooms[room] = window
            self._count += len(window.messages)
            while self._count > self.total and len(self._rooms) > 1:
                _, evicted = self._rooms.popitem(last=False)
                self._count -= len(evicted.messages)

    def add(self, messages: list[dict]) -> None:
        """Add committed messages, in seq order per room, to the rooms that are loaded."""
        with self._lock:
            for message in messages:
                window = self._rooms.get(message["room"])
                if window is None:
                    continue
                if message["seq"] != window.last_seq + 1:  # not the next one: forget the room, reload later
                    self._count -= len(self._rooms.pop(message["room"]).messages)
                    continue
                full = len(window.messages) == self.per_room
                window.messages.append(message)
                window.last_seq = message["seq"]
                self._count += 0 if full else 1

    def replace(self, message: dict) -> None:
        """Put a changed message (edited, deleted, reacted to) in place of its stored copy, if kept."""
        with self._lock:
            window = self._rooms.get(message["room"])
            if window is not None and window.first_seq() <= message["seq"] <= window.last_seq:
                window.messages[message["seq"] - window.first_seq()] = message

    def last_seq(self, room: str) -> int | None:
        with self._lock:
            window = self._touch(room)
            return None if window is None else window.last_seq

    def after(self, room: str, after: int, limit: int) -> list[dict] | None:
        """Messages with seq > after, oldest first, at most limit; None when the window does not reach back."""
        with self._lock:
            window = self._touch(room)
            if window is None or after + 1 < window.first_seq() and window.first_seq() > 1:
                return None
            start = max(0, after + 1 - window.first_seq())
            return [window.messages[i] for i in range(start, min(len(window.messages), start + limit))]

    def before(self, room: str, before: int | None, limit: int) -> list[dict] | None:
        """The latest messages with seq < before, oldest first, at most limit; None when not all are here."""
        with self._lock:
            window = self._touch(room)
            if window is None:
                return None
            end = window.last_seq + 1 if before is None else min(before, window.last_seq + 1)
            begin = max(1, end - limit)
            if begin < window.first_seq():
                return None
            first = window.first_seq()
            return [window.messages[i] for i in range(max(0, begin - first), max(0, end - first))]

    def _touch(self, room):
        window = self._rooms.get(room)
        if window is not None:
            self._rooms.move_to_end(room)
        return window


class RoomCounters:
    """Each room's last_rev and each user's read mark per room, as the exclusive store last wrote them.

    Both only ever grow, so a value read from the database is kept as the larger of it and what the
    writer set meanwhile; a read that started before the table was cleared is not kept at all.
    Loaded whole at claim (`load`), the tables are complete: a room or mark missing from them is 0,
    as in the database, until a table overflows and is cleared.
    Shape: revs {room: last_rev}; marks {(room, username key): last_read}; generation, bumped by clear.
    """

    def __init__(self, lock: Any = None, size: int = TOTAL):
        self._lock = lock or threading.Lock()
        self.revs: dict[str, int] = {}
        self.marks: dict[tuple[str, str], int] = {}
        self.size = size
        self.generation = 0
        self.complete = False

    def load(self, revs: dict[str, int], marks: dict[tuple[str, str], int]) -> bool:
        """Hold every room's last_rev and every read mark (keys lowercased) read before any write; False: too many."""
        if len(revs) > self.size or len(marks) > self.size:
            return False
        with self._lock:
            self.revs, self.marks, self.complete = dict(revs), dict(marks), True
        return True

    def last_rev(self, room: str) -> int | None:
        return self.revs.get(room, 0 if self.complete else None)

    def last_read(self, room: str, user: str) -> int | None:
        return self.marks.get((room, user.lower()), 0 if self.complete else None)

    def keep_rev(self, room: str, rev: int, generation: int | None = None) -> None:
        """Keep a room's last_rev (the writer's, or one read when generation is still the one given)."""
        self._keep(self.revs, room, rev, generation)

    def keep_read(self, room: str, user: str, last_read: int, generation: int | None = None) -> None:
        """Keep a user's read mark in a room (the writer's, or one read when generation still holds)."""
        self._keep(self.marks, (room, user.lower()), last_read, generation)

    def _keep(self, table: dict[Any, int], key: Any, value: int, generation: int | None) -> None:
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            if len(table) >= self.size:
                table.clear()
                self.generation += 1
                self.complete = False
            table[key] = max(value, table.get(key, value))
