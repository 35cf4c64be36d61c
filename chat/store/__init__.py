"""Papo's data: users, rooms with their last seq, messages, direct messages, notifications.

schema: the tables; engine: connections and SQL; queries: every statement; commit: the group
commit; lanes: the OS threads the disk's waits run on; recent: the latest messages in memory;
unread: who has no unread notifications; wire: the shapes clients receive; store: the Store the service uses.
"""
from .engine import DatabaseInUse, DatabaseUnavailable, describe
from .store import Store

__all__ = ["DatabaseInUse", "DatabaseUnavailable", "Store", "describe"]
