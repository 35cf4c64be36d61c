"""The users known to have no unread notifications, so that their connects read nothing.

A connect replays its user's unread notifications, and most users have none: remembering that
spares a read on a database thread for every connect (a fifth of a connection's CPU in a storm).
Only the process that owns a SQLite file keeps it (Store.claim). Its writer stores every
notification of its own; another process that stores one (`flask notify --direct`) says so by
growing the file's claim file (SqliteConnector.tell_claimant), and `foreign` returns that size.
Any notification stored forgets everyone: notifications are rare beside connects.
"""
from collections.abc import Callable
from typing import Any

MAX_USERS = 100_000  # past this many, start again rather than grow


class NoneUnread:
    """Who has no unread notifications, as far as this process knows; bookkeeping without I/O (`foreign` is given)."""

    def __init__(self, lock: Any, foreign: Callable[[], int]):
        self._lock = lock
        self._foreign = foreign
        self._foreign_seen = foreign()
        self._users: set[str] = set()
        self._epoch = 0  # counts what forgot everyone; a read that overlapped one proves nothing

    def check(self, user: str) -> int | None:
        """None when the user is known to have none; else the stamp to give `learned` after a read."""
        seen = self._foreign()
        with self._lock:
            if seen != self._foreign_seen:
                self._foreign_seen = seen
                self._forget()
            return None if user in self._users else self._epoch

    def learned(self, user: str, stamp: int) -> None:
        """A read that began after `check` gave `stamp` found no unread notification of the user."""
        with self._lock:
            if stamp != self._epoch:
                return
            if len(self._users) >= MAX_USERS:
                self._users.clear()
            self._users.add(user)

    def stored(self) -> None:
        """A notification was stored: nobody is known to have none any more."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        self._epoch += 1
        self._users.clear()
