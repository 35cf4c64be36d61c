"""The group commit: every message waiting when the writer comes round is stored in one transaction."""
from collections.abc import Callable
from typing import Any

from . import queries
from .batch import Batcher
from .lanes import Lanes, Outcome


class GroupCommit(Batcher):
    """Stores the messages that gathered while the writer was busy, in one transaction.

    The caller's ack therefore always follows its commit, and a slow disk slows the writer, never
    the event loop.
    """

    def __init__(self, lanes: Lanes, lane: Any, connector: Any, now: Callable[[], int],
                 committed: Callable[[list[dict]], None] | None = None):
        super().__init__(lanes, lane)
        self._connector = connector
        self._now = now
        self._committed = committed  # told of each batch's new messages, in the writer, before any ack

    def append(self, item: queries.Item) -> tuple[dict, bool]:
        """Store one message; (message, created). Returns once it is committed."""
        return self.call(item)

    def run(self, items: list[queries.Item]) -> list[Outcome]:
        try:
            stored = self._connector.write(queries.insert_messages, items, self._now())
        except self._connector.integrity_errors:
            if len(items) == 1:
                return [self._known(items[0])]
            return [outcome for item in items for outcome in self.run([item])]
        except Exception as error:
            return [(False, error)] * len(items)
        if self._committed is not None:
            self._committed([message for message, created in stored if created])
        return [(True, outcome) for outcome in stored]

    def _known(self, item: queries.Item) -> Outcome:
        """The stored message of an item whose client_id was taken, or the error that refused it."""
        room, author, _, _, client_id = item
        try:
            known = client_id is not None and self._connector.read(queries.message_by_client_id, room, author,
                                                                   client_id)
        except Exception as error:
            return False, error
        if not known:
            return False, RuntimeError(f"a message of {author} in {room} broke a unique constraint")
        return True, (known, False)


class UnreadReads(Batcher):
    """Reads the unread notifications of every user whose connection asked while the readers were busy.

    A reconnect storm brings thousands of connections of few users at once; one query serves them.
    """

    def __init__(self, lanes: Lanes, lane: Any, connector: Any):
        super().__init__(lanes, lane)
        self._connector = connector

    def run(self, items: list[tuple[str, int]]) -> list[Outcome]:
        """Items are (user, limit): each gets the latest `limit` of its user's unread, oldest first."""
        found = self._connector.read(queries.unread_of_users, sorted({user for user, _ in items}),
                                     max(limit for _, limit in items))
        return [(True, found.get(user, [])[-limit:]) for user, limit in items]
