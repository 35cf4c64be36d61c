"""The chat domain: rooms, messages, presence, direct messages, long polls. No transport in here."""
import heapq
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .async_modes import short_lock
from .errors import ChatError
from .ports import Broadcaster, DirectMessage, Message, Notification, Presence, RateLimiter, Store, UserRow

ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_TEXT = 4000
MAX_CLIENT_ID = 64
REPLAY_LIMIT = 500
RECENT_LIMIT = 50
HISTORY_LIMIT = 100
MAX_POLL_SECONDS = 30
MAX_INT = 2**53
LEVELS = ("info", "success", "warning", "error")
MAX_TITLE = 200
MAX_BODY = 4000
NOTIFICATION_PAGE = 50
NOTIFICATION_LIMIT = 100
MAX_READ_IDS = 500
MAX_USERNAME = 32
# The reactions a message can carry: one grapheme each (the contract lets the server choose the set).
REACTIONS = ("👍", "👎", "❤️", "😂", "😮", "😢", "🎉", "🙏", "👀", "🔥", "✅", "🚀")
READERS_LIMIT = 100  # read marks a join ack with `receipts` carries at most
CONVERSATIONS_LIMIT = 100
MAX_CONVERSATIONS_LIMIT = 500
MAX_QUERY = 200
SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
Answer = dict[str, Any]  # the fields an adapter adds to its `ok` answer


def room_channel(room: str) -> str:
    """The broadcast channel of a chat room."""
    return "room:" + room


def user_channel(user: str) -> str:
    """The broadcast channel that reaches every connection of one user."""
    return "user:" + user


class RoomSignals:
    """Wakes long polls when a room gets a message. Shape: {room: threading.Event of the current wait}."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = short_lock()

    def current(self, room: str) -> threading.Event:
        """Return the event the room's next message sets."""
        with self._lock:
            return self._events.setdefault(room, threading.Event())

    def notify(self, room: str) -> None:
        """Wake the long polls waiting on the room."""
        with self._lock:
            event = self._events.pop(room, None)
        if event:
            event.set()

    def notify_all(self) -> None:
        """Wake every waiting poll, for when wake-ups may have been missed."""
        with self._lock:
            events, self._events = list(self._events.values()), {}
        for event in events:
            event.set()


class ChatService:
    """Join, leave, post, history, direct; assigns seq through the store and tells the broadcaster."""

    def __init__(self, store: Store, presence: Presence, broadcaster: Broadcaster, limiter: RateLimiter,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.presence = presence
        self.broadcaster = broadcaster
        self.limiter = limiter
        self.clock = clock
        self.signals = RoomSignals()
        self.max_rooms: int | None = None  # rooms one connection may be in at once; None: no limit

    def now_ms(self) -> int:
        """Return the server's time in milliseconds since the epoch, as messages carry it."""
        return int(self.clock() * 1000)

    # connections and rooms

    def connect(self, sid: str, user: str) -> None:
        """Register a connection and replay its user's unread notifications to it."""
        self.presence.connect(sid, user)
        self.broadcaster.enter(sid, user_channel(user))
        for note in self.store.unread_notifications(user, NOTIFICATION_LIMIT):
            self.broadcaster.emit("notification", note, to=sid)

    def disconnect(self, sid: str) -> None:
        """Forget a connection; announce the rooms its user has now left."""
        user = self.presence.user_of(sid)
        for room in self.presence.disconnect(sid):
            self._announce(room, user, "leave")

    def join(self, sid: str, room: Any, since: Any = None, revs_since: Any = None, receipts: Any = None) -> Answer:
        """Enter a room; the ack has its members, last seq and rev, the messages and changes the client is missing.

        With receipts, the ack also has the read marks of the other users who read the furthest (`readers`).
        """
        room = valid_room(room)
        since = _optional_int("since", since, 0)
        revs_since = _optional_int("revs_since", revs_since, 0)
        if receipts not in (None, True, False):
            raise ChatError("invalid_payload", "receipts must be true or false")
        user = self._user_of(sid)
        self._admit(user, room)
        self.store.ensure_room(room)
        joined = self.presence.rooms_of(sid)
        if self.max_rooms is not None and len(joined) >= self.max_rooms and room not in joined:
            raise ChatError("forbidden", f"a connection may be in at most {self.max_rooms} rooms; leave one first")
        self.broadcaster.enter(sid, room_channel(room))
        if self.presence.join(sid, room):
            self._announce(room, user, "join")
        if self.store.room_privacy(room) != (False, None):  # removed while joining: out again
            try:
                self._admit(user, room)
            except ChatError:
                self.leave(sid, room)
                raise
        last_rev = self.store.last_rev(room)  # before the reads: a later change is in them or broadcast
        if since is None:
            messages, truncated = self.store.messages_before(room, None, RECENT_LIMIT), False
        else:
            messages = self.store.messages_after(room, since, REPLAY_LIMIT + 1)
            truncated = len(messages) > REPLAY_LIMIT
            messages = messages[:REPLAY_LIMIT]
        last_seq = self.store.last_seq(room)
        last_read = self.store.last_read(room, user)
        answer = {"room": room, "members": self.presence.members(room), "last_seq": last_seq,
                  "messages": messages, "truncated": truncated, "last_rev": last_rev, "last_read": last_read,
                  "unread": max(0, last_seq - last_read)}
        if since is not None and revs_since is not None:
            answer["updated"] = self.store.changed_since(room, since, revs_since, REPLAY_LIMIT)
        if receipts:
            readers = self.store.room_readers(room, READERS_LIMIT + 1)
            answer["readers"] = {name: mark for name, mark in readers.items() if name.lower() != user.lower()}
            if len(answer["readers"]) > READERS_LIMIT:
                answer["readers"].popitem()
        return answer

    def leave(self, sid: str, room: Any) -> None:
        """Take the connection out of a room; announce it when its user has left entirely."""
        room = valid_room(room)
        self.broadcaster.exit(sid, room_channel(room))
        if self.presence.leave(sid, room):
            self._announce(room, self.presence.user_of(sid), "leave")

    def _announce(self, room, user, action):
        self.broadcaster.emit("presence", {"room": room, "user": user, "action": action,
                                           "members": self.presence.members(room)}, to=room_channel(room))

    def typing(self, sid: str, room: Any, typing: Any) -> None:
        """Tell the room's other members that the user is typing, or stopped."""
        room = self._joined_room(sid, room)
        if not isinstance(typing, bool):
            raise ChatError("invalid_payload", "typing must be true or false")
        user = self._user_of(sid)
        self.broadcaster.emit("typing", {"room": room, "user": user, "typing": typing},
                              to=room_channel(room), skip=self.presence.sids_of(user, room))

    def _user_of(self, sid: str) -> str:
        """Return the user of a signed-in connection."""
        user = self.presence.user_of(sid)
        if user is None:
            raise ChatError("unauthorized", "this connection is not signed in")
        return user

    def _joined_room(self, sid, room):
        room = valid_room(room)
        if not self.presence.is_member(sid, room):
            raise ChatError("not_in_room", f"join {room} first")
        return room

    # messages

    def send(self, sid: str, room: Any, text: Any, client_id: Any) -> tuple[Message, bool]:
        """Post from a connection, which must have joined the room."""
        return self.queue_send(sid, room, text, client_id)()

    def queue_send(self, sid: str, room: Any, text: Any, client_id: Any) -> Callable[[], tuple[Message, bool]]:
        """Check and queue a connection's message; the call returned waits for its commit, as send does."""
        room = self._joined_room(sid, room)
        return self.queue_post(self._user_of(sid), room, text, client_id)

    def post(self, user: str, room: Any, text: Any, client_id: Any) -> tuple[Message, bool]:
        """Store a message and broadcast it once; (message, created). A repeated client_id is harmless."""
        return self.queue_post(user, room, text, client_id)()

    def queue_post(self, user: str, room: Any, text: Any, client_id: Any) -> Callable[[], tuple[Message, bool]]:
        """Check and queue a message; the call returned waits for its commit, broadcasts it, and answers as post.

        Messages queued one after another take seqs in that order.
        """
        room = valid_room(room)
        self._admit(user, room)
        text = valid_text(text)
        client_id = valid_client_id(client_id)
        self._spend(user)
        pending = self.store.queue_append(room, user, text, self.now_ms(), client_id)

        def committed() -> tuple[Message, bool]:
            message, created = pending.result()
            if created:
                self.broadcaster.emit("message", message, to=room_channel(room))
                self.signals.notify(room)
            return message, created

        return committed

    def _spend(self, user):
        wait = self.limiter.take(user)
        if wait:
            raise ChatError("rate_limited", "too many messages; slow down",
                            retry_after=max(1, math.ceil(wait)))

    def history(self, room: Any, before: Any = None, limit: Any = None, user: str | None = None) -> Answer:
        """Older messages, oldest first, and whether there are more before them."""
        room = valid_room(room)
        self._admit(user, room)
        before = _optional_int("before", before, 1)
        limit = _optional_int("limit", limit, 1, HISTORY_LIMIT)
        limit = RECENT_LIMIT if limit is None else limit
        found = self.store.messages_before(room, before, limit + 1)
        return {"messages": found[-limit:], "has_more": len(found) > limit}

    def messages_after(self, room: Any, after: Any = None, before: Any = None, limit: Any = None,
                       user: str | None = None) -> Answer:
        """Messages between after and before, oldest first, for HTTP readers."""
        room = valid_room(room)
        self._admit(user, room)
        after = _optional_int("after", after, 0)
        before = _optional_int("before", before, 1)
        limit = _optional_int("limit", limit, 1, REPLAY_LIMIT)
        limit = HISTORY_LIMIT if limit is None else limit
        if after is None:
            return self.history(room, before, min(limit, HISTORY_LIMIT), user)
        found = self.store.messages_after(room, after, limit + 1)
        if before is not None:
            found = [m for m in found if m["seq"] < before]
        return {"messages": found[:limit], "has_more": len(found) > limit}

    def wait_for_messages(self, room: Any, after: Any, timeout: Any, user: str | None = None) -> Answer:
        """A long poll: the messages after `after`, waiting up to `timeout` seconds for the first."""
        room = valid_room(room)
        self._admit(user, room)
        after = _optional_int("after", after, 0) or 0
        timeout = _optional_number("timeout", timeout, 0, MAX_POLL_SECONDS)
        deadline = time.monotonic() + (MAX_POLL_SECONDS if timeout is None else timeout)
        while True:
            wake = self.signals.current(room)
            found = self.store.messages_after(room, after, REPLAY_LIMIT)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return {"messages": found}
            wake.wait(remaining)

    def rooms(self, user: str | None = None) -> list[dict[str, Any]]:
        """The public rooms and the private ones the user belongs to, with the user's read state in each."""
        sizes = self.presence.room_sizes()
        marks = self.store.read_marks(user) if user else None
        listed = []
        for name, last_seq, private in self.store.visible_rooms(user):
            listed.append({"name": name, "members": sizes.get(name, 0), "last_seq": last_seq})
            if private:
                listed[-1]["private"] = True
            if marks is not None:
                last_read = marks.get(name, 0)
                listed[-1].update(last_read=last_read, unread=max(0, last_seq - last_read))
        return listed

    # changes to stored messages: each takes the room's next rev and reaches the room as `message_updated`

    def edit(self, user: str, room: Any, seq: Any, text: Any) -> Message:
        """Replace the text of one's own message; editing it to the same text again changes nothing."""
        room = self._readable(user, room)
        seq = _required_int("seq", seq, 1)
        text = valid_text(text)
        self._spend(user)
        now = self.now_ms()

        def change(message: Message) -> dict[str, Any] | None:
            if message["user"].lower() != user.lower():
                raise ChatError("forbidden", "only its author can edit a message")
            _not_deleted(message)
            return None if message["text"] == text else {"text": text, "edited_at": now}

        return self._change(room, seq, change)

    def delete(self, user: str, room: Any, seq: Any) -> Message:
        """Take a message back (its author, or the owner of the private room): it keeps its seq, its text goes."""
        room = self._readable(user, room)
        seq = _required_int("seq", seq, 1)
        private, owner = self.store.room_privacy(room) or (False, None)
        may_moderate = private and owner is not None and owner.lower() == user.lower()

        def change(message: Message) -> dict[str, Any] | None:
            if message["user"].lower() != user.lower() and not may_moderate:
                raise ChatError("forbidden", "only its author or the private room's owner can delete a message")
            return None if message["deleted"] else {"deleted": True, "text": "", "reactions": {}}

        return self._change(room, seq, change)

    def react(self, user: str, room: Any, seq: Any, emoji: Any, on: Any) -> Message:
        """Add (on) or take back the user's reaction to a message; a repeat changes nothing."""
        room = self._readable(user, room)
        seq = _required_int("seq", seq, 1)
        if not isinstance(emoji, str) or emoji not in REACTIONS:
            raise ChatError("invalid_payload", f"emoji must be one of {' '.join(REACTIONS)}")
        if not isinstance(on, bool):
            raise ChatError("invalid_payload", "on must be true or false")

        def change(message: Message) -> dict[str, Any] | None:
            _not_deleted(message)
            users = message["reactions"].get(emoji, [])
            if (user in users) == on:
                return None
            reactions = {key: value for key, value in message["reactions"].items() if key != emoji}
            users = [*users, user] if on else [name for name in users if name != user]
            if users:
                reactions[emoji] = users
            return {"reactions": reactions}

        return self._change(room, seq, change)

    def _readable(self, user: str, room: Any) -> str:
        room = valid_room(room)
        self._admit(user, room)
        return room

    def readable(self, user: str, room: Any) -> str:
        """Return the room's name when the user may read it; invalid_room or forbidden otherwise (streams)."""
        return self._readable(user, room)

    def _change(self, room: str, seq: int, change: Callable[[Message], dict[str, Any] | None]) -> Message:
        outcome = self.store.change_message(room, seq, change)
        if outcome is None:
            raise ChatError("not_found", f"{room} has no message {seq}")
        message, changed = outcome
        if changed:
            self.broadcaster.emit("message_updated", message, to=room_channel(room))
        return message

    # read state

    def read(self, user: str, room: Any, seq: Any) -> Answer:
        """Mark the room read up to seq (never back); the user's other connections and the room hear `read`."""
        room = self._readable(user, room)
        seq = _required_int("seq", seq, 0)
        outcome = self.store.mark_room_read(room, user, seq)
        if outcome is None:
            raise ChatError("not_found", f"there is no room named {room}")
        receipt = {"room": room, "user": user, "last_read": outcome[0]}
        self.broadcaster.emit("read", receipt, to=room_channel(room))
        self.broadcaster.emit("read", receipt, to=user_channel(user), skip=self.presence.sids_of(user, room))
        return {"room": room, "last_read": outcome[0]}

    # search

    def search(self, user: str, q: Any, room: Any = None, limit: Any = None, peer: Any = None) -> Answer:
        """Messages matching q, newest first, in the rooms the user may read and the user's direct conversations.

        room limits it to that room, peer to the direct conversation with that user (not both).
        """
        if not isinstance(q, str) or not 1 <= len(q) <= MAX_QUERY:
            raise ChatError("invalid_payload", f"q must be 1 to {MAX_QUERY} characters")
        room = None if room in (None, "") else self._readable(user, room)
        peer = None if peer in (None, "") else self._find_user("peer", peer).username
        if room is not None and peer is not None:
            raise ChatError("invalid_payload", "give room or peer, not both")
        limit = _optional_int("limit", limit, 1, MAX_SEARCH_LIMIT) or SEARCH_LIMIT
        rooms = [] if peer is not None else [{"kind": "room", **m} for m in self.store.search(user, q, room, limit)]
        directs = [] if room is not None else self.store.search_directs(user, q, peer, limit)
        results = list(heapq.merge(rooms, directs, key=lambda m: -m["ts"]))  # each list is newest first already
        return {"results": results[:limit]}

    # private rooms

    def _admit(self, user: str | None, room: str) -> None:
        """forbidden unless the room is public (or does not exist yet) or the user is one of its members."""
        privacy = self.store.room_privacy(room)
        if privacy and privacy[0] and privacy[1] is None:
            raise ChatError("not_found", f"the room {room} was deleted")
        if privacy and privacy[0] and not (user and self.store.is_room_member(room, user)):
            raise ChatError("forbidden", f"{room} is a private room; its owner can invite you")

    def create_room(self, user: str, room: Any, private: Any = True) -> Answer:
        """Create a room owned by the user, private unless told otherwise; conflict when the name is in use."""
        room = valid_room(room)
        if not isinstance(private, bool):
            raise ChatError("invalid_payload", "private must be true or false")
        if any(member.lower() != user.lower() for member in self.presence.members(room)):
            raise ChatError("conflict", f"{room} is in use; pick another name")
        if not self.store.create_room(room, user, private, self.now_ms()):
            raise ChatError("conflict", f"a room named {room} exists already; pick another name")
        return {"room": room, "private": private, "owner": user, "members": [user]}

    def invite(self, user: str, room: Any, invitee: Any) -> Answer:
        """Let another user into the user's private room; the invitee's connections hear `invited`."""
        room = valid_room(room)
        privacy = self.store.room_privacy(room)
        if privacy is None:
            raise ChatError("not_found", f"there is no room named {room}")
        private, owner = privacy
        if not private or owner is None or owner.lower() != user.lower():
            raise ChatError("forbidden", f"only the owner of the private room {room} can invite")
        found = self._find_user("user", invitee)
        if self.store.add_room_member(room, found.username, self.now_ms()):
            self.broadcaster.emit("invited", {"room": room, "by": owner}, to=user_channel(found.username))
            self._members_changed(room, owner)
        return {"room": room, "members": self.store.room_members(room)}

    def _members_changed(self, room: str, owner: str | None) -> None:
        self.broadcaster.emit("room_members", {"room": room, "owner": owner, "members": self.store.room_members(room)},
                              to=room_channel(room))

    def _private_room(self, user: str, room: Any) -> tuple[str, str]:
        """(room, owner) of a live private room the user belongs to; invalid_room, not_found or forbidden otherwise."""
        room = valid_room(room)
        privacy = self.store.room_privacy(room)
        if privacy is None:
            raise ChatError("not_found", f"there is no room named {room}")
        self._admit(user, room)
        private, owner = privacy
        if not private or owner is None:
            raise ChatError("forbidden", f"{room} is a public room: it has no members to leave or remove")
        return room, owner

    def leave_room(self, user: str, room: Any) -> Answer:
        """End the user's membership of a private room they do not own; their connections leave it at once."""
        room, owner = self._private_room(user, room)
        if owner.lower() == user.lower():
            raise ChatError("forbidden", f"you own {room}: delete it instead of leaving")
        if self.store.remove_room_member(room, user):
            self._end_membership(room, user, user, "left")
            self._members_changed(room, owner)
        return {"room": room, "left": True}

    def remove_member(self, user: str, room: Any, member: Any) -> Answer:
        """Take a member out of the user's private room (one's own name: leave it); they hear `room_removed`."""
        room, owner = self._private_room(user, room)
        found = self._find_user("user", member)
        if found.username.lower() == user.lower():
            self.leave_room(user, room)
            return {"room": room, "members": self.store.room_members(room)}
        if owner.lower() != user.lower():
            raise ChatError("forbidden", f"only the owner of {room} can remove its members")
        if found.username.lower() == owner.lower():
            raise ChatError("forbidden", "the owner cannot be removed; delete the room instead")
        if not self.store.remove_room_member(room, found.username):
            raise ChatError("not_found", f"{found.username} is not a member of {room}")
        self._end_membership(room, found.username, user, "removed")
        self._members_changed(room, owner)
        return {"room": room, "members": self.store.room_members(room)}

    def delete_room(self, user: str, room: Any) -> Answer:
        """Delete the user's private room: every member hears `room_removed` and every connection leaves it."""
        room, owner = self._private_room(user, room)
        if owner.lower() != user.lower():
            raise ChatError("forbidden", f"only the owner of {room} can delete it")
        for member in self.store.close_room(room):
            self._end_membership(room, member, user, "deleted", announce=False)
        self.signals.notify(room)
        return {"room": room, "deleted": True}

    def _end_membership(self, room: str, member: str, by: str, reason: str, announce: bool = True) -> None:
        """Take every connection of the member out of the room, on every process, and tell them why."""
        for sid in self.presence.sids_of(member, room):
            self.broadcaster.exit(sid, room_channel(room))
            if self.presence.leave(sid, room) and announce:
                self._announce(room, member, "leave")
        self.broadcaster.emit("room_removed", {"room": room, "by": by, "reason": reason}, to=user_channel(member))

    def room_members(self, user: str | None, room: Any) -> Answer:
        """The invited members of a private room (every member may ask); public rooms have none."""
        room = valid_room(room)
        self._admit(user, room)
        privacy = self.store.room_privacy(room)
        if privacy is None:
            raise ChatError("not_found", f"there is no room named {room}")
        return {"room": room, "private": privacy[0], "owner": privacy[1],
                "members": self.store.room_members(room) if privacy[0] else []}

    # direct messages

    def direct(self, user: str, to: Any, text: Any, client_id: Any) -> tuple[DirectMessage, bool]:
        """Send a direct message to every connection of both its users."""
        text = valid_text(text)
        client_id = valid_client_id(client_id)
        found = self._find_user("to", to)
        self._spend(user)
        message, created = self.store.add_direct(user, found.username, text, self.now_ms(), client_id)
        if created:
            for name in {user, found.username}:
                self.broadcaster.emit("direct", message, to=user_channel(name))
        return message, created

    def direct_history(self, user: str, peer: Any, before: Any = None, limit: Any = None, since: Any = None) -> Answer:
        """The direct messages between the user and one peer, oldest first: only those two ever see them.

        Without since, the latest (before an id, if given); with since, those after that id, for a client
        catching up (`has_more`: more came after them). The answer has the conversation's read state too.
        """
        found = self._find_user("with", peer)
        before = _direct_number("before", before)
        since = _direct_number("since", since, 0)
        if since is not None and before is not None:
            raise ChatError("invalid_payload", "give since or before, not both")
        if since is None:
            limit = _optional_int("limit", limit, 1, HISTORY_LIMIT) or RECENT_LIMIT
            page = self.store.directs_between(user, found.username, before, limit + 1)
            answer = {"messages": page[-limit:], "has_more": len(page) > limit}
        else:
            limit = _optional_int("limit", limit, 1, REPLAY_LIMIT) or REPLAY_LIMIT
            page = self.store.directs_after(user, found.username, since, limit + 1)
            answer = {"messages": page[:limit], "has_more": len(page) > limit}
        return {"with": found.username, **answer, **self.store.direct_state(user, found.username)}

    def read_direct(self, user: str, peer: Any, upto: Any) -> Answer:
        """Mark the conversation with peer read up to a message id (never back); both users' connections hear it."""
        found = self._find_user("with", peer)
        upto = _required_direct_number("id", upto)
        last_read = self.store.mark_direct_read(user, found.username, upto)
        receipt = {"user": user, "with": found.username, "last_read": last_read}
        for name in {user.lower(): user, found.username.lower(): found.username}.values():
            self.broadcaster.emit("direct_read", receipt, to=user_channel(name))
        return {"with": found.username, **self.store.direct_state(user, found.username)}

    def conversations(self, user: str, limit: Any = None) -> Answer:
        """The user's direct conversations, the latest message's first, with their read state."""
        limit = _optional_int("limit", limit, 1, MAX_CONVERSATIONS_LIMIT) or CONVERSATIONS_LIMIT
        found = self.store.conversations(user, limit + 1)
        return {"conversations": found[:limit], "has_more": len(found) > limit}

    def user_named(self, name: Any) -> str:
        """The stored spelling of a username; not_found when there is no such user."""
        return self._find_user("user", name).username

    def _find_user(self, field: str, name: Any) -> UserRow:
        """Return the stored user a payload's field names; invalid_payload or not_found otherwise."""
        if not isinstance(name, str) or not name:
            raise ChatError("invalid_payload", f"{field} must be a username")
        found = self.store.find_user(name) if len(name) <= MAX_USERNAME and storable(name) else None
        if found is None:
            raise ChatError("not_found", f"no user named {name}")
        return found

    # notifications

    def notify(self, title: Any, body: Any, level: Any = None, room: Any = None,
               user: Any = None) -> tuple[Notification, int]:
        """Notify a room's members, one user (stored until read) or everyone; (notification, recipients).

        recipients: the room's members now, 1 for a user, the open connections for everyone.
        """
        note = valid_notification(title, body, level)
        if room is not None and user is not None:
            raise ChatError("invalid_payload", "address a room or a user, not both")
        if user is not None:
            found = self._find_user("user", user)
            note = self.store.add_notification(found.username, **note, ts=self.now_ms())
            self.broadcaster.emit("notification", note, to=user_channel(found.username))
            return note, 1
        note = {"id": "b" + uuid.uuid4().hex, **note, "ts": self.now_ms()}
        if room is not None:
            note["room"] = valid_room(room)
            self.broadcaster.emit("notification", note, to=room_channel(room))
            return note, len(self.presence.members(room))
        self.broadcaster.emit("notification", note, to=None)
        return note, self.presence.connection_count()

    def notifications(self, user: str, after: Any = None, limit: Any = None) -> Answer:
        """The user's stored notifications oldest first (after an id, else the latest) and the unread count."""
        after = _notification_number("after", after)
        limit = _optional_int("limit", limit, 1, NOTIFICATION_LIMIT) or NOTIFICATION_PAGE
        found = self.store.notifications(user, after, limit + 1)
        page = found[:limit] if after is not None else found[-limit:]
        return {"notifications": page, "has_more": len(found) > limit, "unread": self.store.unread_count(user)}

    def mark_read(self, user: str, ids: Any = None, up_to: Any = None) -> Answer:
        """Mark notifications read, listed or every one up to an id; the user's connections hear of it."""
        if (ids is None) == (up_to is None):
            raise ChatError("invalid_payload", "give either ids (a list of notification ids) or up_to (an id)")
        if ids is not None:
            if not isinstance(ids, list) or len(ids) > MAX_READ_IDS or None in ids:
                raise ChatError("invalid_payload", f"ids must be a list of at most {MAX_READ_IDS} notification ids")
            ids = [_notification_number("ids", one) for one in ids]
        else:
            up_to = _notification_number("up_to", up_to)
        marked = ["n" + str(number) for number in self.store.mark_read(user, ids, up_to, self.now_ms())]
        unread = self.store.unread_count(user)
        if marked:
            self.broadcaster.emit("notifications_read", {"ids": marked, "unread": unread}, to=user_channel(user))
        return {"read": marked, "unread": unread}

    def health(self) -> None:
        """Raise when the database or presence backend is unreachable."""
        self.store.ping()
        self.presence.ping()

    def heartbeat(self) -> None:
        """Keep this process's presence alive; announce members that came or went behind its back."""
        for room, user, action in self.presence.heartbeat():
            self._announce(room, user, action)


def valid_room(room):
    if not isinstance(room, str) or not ROOM_NAME.fullmatch(room):
        raise ChatError("invalid_room", "room names are 1-64 of a-z, 0-9, _ and -, starting with a letter or digit")
    return room


def valid_text(text):
    if not isinstance(text, str):
        raise ChatError("invalid_message", "text must be a string")
    text = text.strip()
    if not 1 <= len(text) <= MAX_TEXT:
        raise ChatError("invalid_message", f"text must be 1 to {MAX_TEXT} characters")
    if not storable(text):
        raise ChatError("invalid_message", f"text {UNSTORABLE}")
    return text


def valid_client_id(client_id):
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID:
        raise ChatError("invalid_payload", f"client_id must be a string of 1 to {MAX_CLIENT_ID} characters")
    if not storable(client_id):
        raise ChatError("invalid_payload", f"client_id {UNSTORABLE}")
    return client_id


UNSTORABLE = "must be Unicode text without NUL characters or unpaired surrogates"


def storable(text: str) -> bool:
    """Whether every database Papo runs on can keep the text: UTF-8 encodable (no unpaired surrogate), no NUL.

    JSON lets a client send "\\ud800" alone, which no UTF-8 encoder takes; PostgreSQL refuses NUL in text.
    """
    if "\0" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_notification(title, body, level):
    """The notification's title, body and level, stripped; invalid_payload when they break the rules."""
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
        raise ChatError("invalid_payload", f"title must be 1 to {MAX_TITLE} characters")
    body = "" if body is None else body
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise ChatError("invalid_payload", f"body must be a string of at most {MAX_BODY} characters")
    if not storable(title) or not storable(body):
        raise ChatError("invalid_payload", f"title and body {UNSTORABLE}")
    level = "info" if level is None else level
    if level not in LEVELS:
        raise ChatError("invalid_payload", f"level must be one of {', '.join(LEVELS)}")
    return {"title": title.strip(), "body": body.strip(), "level": level}


def _not_deleted(message):
    if message["deleted"]:
        raise ChatError("not_found", f"message {message['seq']} of {message['room']} was deleted")


def _required_int(name, value, low):
    if value is None:
        raise ChatError("invalid_payload", f"{name} is required")
    return _optional_int(name, value, low)


def _notification_number(name, value):
    """The number of a stored notification's id ("n42" or 42)."""
    if isinstance(value, str) and value.startswith("n"):
        value = value[1:]
    return _optional_int(name, value, 0)


def _direct_number(name, value, low=1):
    """The number of a stored direct message's id ("d42" or 42)."""
    if isinstance(value, str) and value.startswith("d"):
        value = value[1:]
    return _optional_int(name, value, low)


def _required_direct_number(name, value):
    if value is None:
        raise ChatError("invalid_payload", f"{name} is required")
    return _direct_number(name, value, 0)


def _optional_int(name, value, low, high=MAX_INT):
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ChatError("invalid_payload", f"{name} must be an integer from {low} to {high}")
    return value


def _optional_number(name, value, low, high):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ChatError("invalid_payload", f"{name} must be a number") from None
    if not low <= value <= high:
        raise ChatError("invalid_payload", f"{name} must be between {low} and {high}")
    return value
