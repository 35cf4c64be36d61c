"""A subscription's place in the chat: rooms' seq and rev, the user's stored notifications; cursors and replay.

A Feed is what GET /api/stream follows, with no transport in here. Its cursor names, per room, the
last seq and the last rev delivered and the last stored notification delivered: numbers the database
assigns, so any process can resume a cursor another one (or a killed one) gave out. Events go in
through accept(), from the live broadcasts or from a replay read off the store, and come out exactly
once and in order: a room's messages in seq order, its changes in rev order, both counters being
gap-free; what arrives ahead of a missing one waits until it comes or catch_up() reads it.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from .errors import ChatError
from .ports import Store
from .service import ROOM_NAME, ChatService, room_channel, user_channel, valid_room

PAGE = 500  # rows per read of a replay
MAX_CURSOR = 8192  # characters of a cursor, far over what MAX_ROOMS_PER_CONNECTION rooms need
MAX_NUMBER = 2**53
SEEN_NOTES = 256  # stored notifications remembered as delivered: a replay's and the live ones' overlap
EVENTS = ("message", "message_updated", "notification")
Event = tuple[str, dict[str, Any], str]  # (event, data, the cursor once it is delivered)


class Feed:
    """One subscription's rooms, whether it wants notifications, and where it stands in each.

    Shapes: seq, rev = {room: last delivered}; held = {room: {seq or ("rev", rev): Message}}, what came
    ahead of a gap; note = last stored notification number delivered (None: no notifications).
    """

    def __init__(self, user: str, rooms: list[str], notifications: bool) -> None:
        self.user = user
        self.rooms = rooms
        self.notifications = notifications
        self.seq: dict[str, int] = {}
        self.rev: dict[str, int] = {}
        self.note: int | None = None
        self.floor = 0  # the stored notification the feed started after
        self.held: dict[str, dict[Any, dict[str, Any]]] = {room: {} for room in rooms}
        self._seen: collections.deque[int] = collections.deque(maxlen=SEEN_NOTES)

    def channels(self) -> list[str]:
        """The broadcast channels whose events this feed takes."""
        return [room_channel(room) for room in self.rooms] + ([user_channel(self.user)] if self.notifications else [])

    def cursor(self) -> str:
        """The opaque id of the position now: `room.seq.rev` per room, then `~note`, comma-separated."""
        parts = [f"{room}.{self.seq.get(room, 0)}.{self.rev.get(room, 0)}" for room in self.rooms]
        if self.notifications:
            parts.append(f"~{self.note or 0}")
        return ",".join(parts)

    def holding(self) -> bool:
        """Whether anything waits for a missing seq or rev."""
        return any(self.held.values())

    def accept(self, event: str, data: Any) -> list[Event]:
        """Take one event, live or replayed; the events to send now, in order (none for a repeat)."""
        if not isinstance(data, dict):
            return []
        if event == "notification":
            return self._note(data)
        room = data.get("room")
        if event not in ("message", "message_updated") or room not in self.held:
            return []
        held = self.held[room]
        if event == "message":
            seq = data.get("seq")
            if not isinstance(seq, int) or seq <= self.seq.get(room, 0):
                return []
            held[seq] = data
        else:
            rev = data.get("rev")
            if not isinstance(rev, int) or rev <= self.rev.get(room, 0):
                return []
            held[("rev", rev)] = data
        return self._release(room)

    def _release(self, room: str) -> list[Event]:
        """Deliver what is next in line in the room, messages before changes; skip what is behind."""
        held, out = self.held[room], []
        while True:
            following = self.seq.get(room, 0) + 1
            if following in held:
                self.seq[room] = following
                out.append(("message", held.pop(following), self.cursor()))
                continue
            following = self.rev.get(room, 0) + 1
            if ("rev", following) in held:
                self.rev[room] = following
                out.append(("message_updated", held.pop(("rev", following)), self.cursor()))
                continue
            break
        for key in [key for key in held if _behind(key, self.seq.get(room, 0), self.rev.get(room, 0))]:
            del held[key]
        return out

    def _note(self, data: dict[str, Any]) -> list[Event]:
        if not self.notifications:
            return []
        number = note_number(data.get("id"))
        if number is None:  # a room's or everyone's notification: not stored, live only
            room = data.get("room")
            return [("notification", data, self.cursor())] if room is None or room in self.held else []
        if number in self._seen:
            return []
        if number <= self.floor:
            return []  # at or before where the feed started: delivered before, or before the start
        self._seen.append(number)
        self.note = max(self.note or 0, number)
        return [("notification", data, self.cursor())]

    def resync(self, room: str, last_rev: int, messages: Iterable[dict], changes: Iterable[dict]) -> list[Event]:
        """Take what a catch-up read (see catch_up): the room's messages and changes, then every rev up to last_rev."""
        out: list[Event] = []
        for message in messages:  # consecutive seqs from the feed's on
            if message["seq"] > self.seq.get(room, 0):
                self.seq[room] = message["seq"]
                out.append(("message", message, self.cursor()))
        for message in changes:  # rev order, with gaps where the changed message is among those read
            if message["rev"] > self.rev.get(room, 0):
                self.rev[room] = message["rev"]
                out.append(("message_updated", message, self.cursor()))
        if last_rev > self.rev.get(room, 0):
            self.rev[room] = last_rev  # every change up to it is in the messages read or the changes
        return out + self._release(room)


def _behind(key: Any, seq: int, rev: int) -> bool:
    return key[1] <= rev if isinstance(key, tuple) else key <= seq


def note_number(note_id: Any) -> int | None:
    """The number of a stored notification's id ("n42"), None for another."""
    if isinstance(note_id, str) and note_id[:1] == "n" and note_id[1:].isdigit() and len(note_id) < 20:
        return int(note_id[1:])
    return None


def parse_cursor(text: Any) -> tuple[dict[str, tuple[int, int]], int | None]:
    """({room: (seq, rev)}, note or None) of a cursor Feed.cursor() gave; invalid_payload for anything else."""
    refused = ChatError("invalid_payload", "last_event_id is not an event id this server gave")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_CURSOR:
        raise refused
    rooms: dict[str, tuple[int, int]] = {}
    note = None
    for part in text.split(","):
        if part[:1] == "~" and note is None:
            note = _number(part[1:], refused)
            continue
        name, _, numbers = part.partition(".")
        seq, _, rev = numbers.partition(".")
        if not ROOM_NAME.fullmatch(name) or name in rooms:
            raise refused
        rooms[name] = (_number(seq, refused), _number(rev, refused))
    return rooms, note


def _number(text: str, refused: ChatError) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or int(text) > MAX_NUMBER:
        raise refused
    return int(text)


def parse_rooms(text: Any, limit: int | None) -> list[str]:
    """The rooms of `rooms=a,b`, in order, each once; invalid_room for a bad name, forbidden past the limit."""
    if text is None or text == "":
        return []
    if not isinstance(text, str):
        raise ChatError("invalid_room", "rooms must be comma-separated room names")
    rooms: list[str] = []
    for name in text.split(","):
        room = valid_room(name)
        if room not in rooms:
            rooms.append(room)
        if limit is not None and len(rooms) > limit:
            raise ChatError("forbidden", f"a stream may follow at most {limit} rooms")
    return rooms


def parse_flag(name: str, value: Any) -> bool:
    """A query flag: absent, 0 or false is off; 1 or true is on."""
    if value in (None, "", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ChatError("invalid_payload", f"{name} must be 1 or 0")


def open_feed(service: ChatService, user: str, rooms: list[str], notifications: bool) -> Feed:
    """A feed of the rooms the user may read; forbidden for a private room the user is not in."""
    for room in rooms:
        service.readable(user, room)
    if not rooms and not notifications:
        raise ChatError("invalid_payload", "follow at least one room (rooms=a,b) or notifications=1")
    return Feed(user, rooms, notifications)


def start(feed: Feed, store: Store, cursor: str | None) -> tuple[str, list[Event]]:
    """Place a feed subscribed a moment ago after the cursor, or at the present; (that place's cursor, what it missed).

    Call it once the feed hears live events (they wait meanwhile and go through accept() after):
    what is read here and heard live too comes out once.
    """
    rooms, note = parse_cursor(cursor) if cursor else ({}, None)
    for room in feed.rooms:
        if room in rooms:
            feed.seq[room], feed.rev[room] = rooms[room]
        else:
            feed.rev[room] = store.last_rev(room)  # before the seq: a change since is heard live
            feed.seq[room] = store.last_seq(room)
    replay_notes = feed.notifications and note is not None
    if feed.notifications and note is None:
        latest = store.notifications(feed.user, None, 1)
        note = (note_number(latest[-1]["id"]) or 0) if latest else 0
    feed.note, feed.floor = note, note or 0
    initial = feed.cursor()
    out: list[Event] = []
    for room in feed.rooms:
        if room in rooms:
            out += catch_up(feed, store, room)
    after = note
    while replay_notes:
        page = store.notifications(feed.user, after, PAGE)
        for found in page:
            out += feed.accept("notification", found)
        replay_notes = len(page) == PAGE
        after = note_number(page[-1]["id"]) if page else after
    return initial, out


def catch_up(feed: Feed, store: Store, room: str) -> list[Event]:
    """Read off the store what the feed lacks in a room: messages after its seq, changes after its rev."""
    last_rev = store.last_rev(room)  # before the reads: a later change is in them or still on its way
    messages: list[dict] = []
    while True:
        page = store.messages_after(room, feed.seq.get(room, 0) if not messages else messages[-1]["seq"], PAGE)
        messages += page
        if len(page) < PAGE:
            break
    since, changes = feed.seq.get(room, 0), []
    revs_since = feed.rev.get(room, 0)
    while True:
        page = store.changed_since(room, since, revs_since, PAGE)
        changes += page
        if len(page) < PAGE:
            break
        revs_since = page[-1]["rev"]
    return feed.resync(room, last_rev, messages, changes)
