"""A connection's events in the order it sent them, with its messages' commits overlapping.

A connection's events reach the server one after another. A message waits for its commit before
its ack; if the next event waited for that too, one connection could never have more than one
message in a group commit. So each message runs in a task of its own, and the rules below keep
the order the connection sent things in:

- a message starts once the message before it has been queued for its commit (or has ended), so
  a connection's messages take seqs in the order it sent them;
- any other event (join, read, edit...) starts once every message before it has ended, and the
  events after it wait until it has.

Bookkeeping only: the caller runs the tasks and supplies the async mode's event class.
"""
from collections.abc import Callable
from typing import Any

from .async_modes import short_lock


class Turn:
    """One message's place in its connection's line."""

    __slots__ = ("line", "before", "queued", "_event")

    def __init__(self, line: "Line", before: "Turn | None"):
        self.line = line
        self.before = before  # the message sent just before, until this one starts
        self.queued = False
        self._event: Any = None


class Line:
    """A connection's messages under way."""

    __slots__ = ("sid", "last", "holder", "under_way", "drained")

    def __init__(self, sid: str):
        self.sid = sid
        self.last: Turn | None = None  # the latest message: the next one waits for it until it is queued
        self.holder: Turn | None = None  # the message started and not yet queued
        self.under_way = 0
        self.drained: Any = None  # an event set when under_way falls to 0, while something waits for it


class Turns:
    """Every connection's line, by sid."""

    def __init__(self, make_event: Callable[[], Any]):
        self._make_event = make_event
        self._lock = short_lock()
        self._lines: dict[str, Line] = {}

    def message(self, sid: str) -> Turn:
        """Take the next place in the connection's line for a message, in the order the connection sent it."""
        with self._lock:
            line = self._lines.get(sid)
            if line is None:
                line = self._lines[sid] = Line(sid)
            turn = line.last = Turn(line, line.last)
            line.under_way += 1
            return turn

    def start(self, turn: Turn) -> None:
        """Wait until the message before has been queued; from then on this one holds the line."""
        with self._lock:
            before = turn.before
            if before is not None and not before.queued:
                event = before._event = before._event or self._make_event()
            else:
                event = None
        if event is not None:
            event.wait()
        with self._lock:
            turn.before = None
            turn.line.holder = turn

    def queued(self, sid: str) -> None:
        """The message holding the connection's line is queued for its commit: let the next one start."""
        with self._lock:
            line = self._lines.get(sid)
            wake = self._let_next(line.holder) if line is not None and line.holder is not None else None
        if wake is not None:
            wake.set()

    def end(self, turn: Turn) -> None:
        """The message has its ack; an event waiting for the connection's messages to end may go."""
        drained = None
        with self._lock:
            wake = self._let_next(turn)
            line = turn.line
            line.under_way -= 1
            if not line.under_way:
                del self._lines[line.sid]
                drained, line.drained, line.last = line.drained, None, None
        for event in (wake, drained):
            if event is not None:
                event.set()

    def wait_until_drained(self, sid: str) -> None:
        """Wait until every message the connection sent so far has ended (before any other event of its)."""
        with self._lock:
            line = self._lines.get(sid)
            if line is None:
                return
            event = line.drained = line.drained or self._make_event()
        event.wait()

    def _let_next(self, turn: Turn) -> Any:
        """Mark the turn queued; the event to set, if the next message waits for it."""
        if turn.line.holder is turn:
            turn.line.holder = None
        if turn.queued:
            return None
        turn.queued = True
        return turn._event
