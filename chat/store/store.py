"""The Store: every read and write of Papo's data, each run where a slow disk stalls no connection."""
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import queries, sqlite_schema
from .batch import GroupCommit, Pending, SharedReads, UnreadReads, WriterJobs
from .engine import (
    DatabaseUnavailable,
    PooledConnector,
    SqliteConnector,
    database_url,
    describe,
    make_engine,
    reason,
    sqlite_path,
)
from .lanes import Lanes
from .recent import RecentMessages, RoomCounters
from .unread import NoneUnread

if TYPE_CHECKING:
    from sqlalchemy import Engine

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
SCHEMA_HEAD = "0011"  # the newest migration's revision (chat/migrations/versions/); a test holds the two equal
READERS = 2  # OS threads reading SQLite beside the writer (WAL lets them read while it commits)
MEMBER_CACHE_SECONDS = 1.0  # how long a process trusts a private room membership it read (removals reach it then)
INDEX_BATCH = 2000  # messages the writer adds to SQLite's search index in one transaction
SESSIONS_PER_READ = 500  # session ids one read looks up (SQLite's host parameters are limited)
CHECKPOINT_SECONDS = 1.0  # the longest a commit's pages wait in the WAL before the checkpointer starts on them


class Store:
    """Papo's data; its writes, and SQLite's reads, run on OS threads that the event loop only waits for.

    SQLite: one writer thread owns every write (the group commit included), and under eventlet or
    gevent two reader threads take the reads. A server process claims its file (claim()), which
    refuses a second server and lets it answer rejoins from the recent messages it keeps, and the
    connects of users it knows have no unread notification without a read.
    PostgreSQL: one writer thread with a connection of its own (a commit's round trips never wait
    for a turn of a busy event loop, and its rooms' rows are locked no longer than they take);
    reads run in the green thread that asks, psycopg waiting cooperatively.
    """

    def __init__(self, url: str, async_mode: str = "threading"):
        self.url = url
        self._engine: Engine | None = None
        self.lanes = lanes = Lanes(async_mode)
        self.connector: SqliteConnector | PooledConnector
        if database_url(url).startswith("sqlite"):
            self.connector = SqliteConnector(sqlite_path(url))
            self._writer: Any = lanes.thread_lane(1, on_exit=self.connector.release)
            self._readers = lanes.thread_lane(READERS, on_exit=self.connector.release) if lanes.green else None
            self._checkpointer: Checkpointer | None = Checkpointer(lanes, self.connector)
        else:
            self.connector = PooledConnector(self.engine)
            self._writer = lanes.thread_lane(1, on_exit=self.connector.release)
            self._readers = None
            self._checkpointer = None
        self.recent: RecentMessages | None = None
        self.counters: RoomCounters | None = None  # last_rev and read marks, kept by the exclusive store
        self.none_unread: NoneUnread | None = None  # who has no unread notification, kept by the exclusive store
        self._commits = GroupCommit(lanes, self._writer, self.connector, now_ms, self._committed)
        self._shared_reads: SharedReads | None = None
        self._unread: UnreadReads | None = None
        if self._readers is not None:
            self._shared_reads = SharedReads(lanes, self._readers, self.connector, READERS)
            self._unread = UnreadReads(lanes, self._readers, self.connector)
        self._writer_jobs = WriterJobs(lanes, self._writer)
        self._known_rooms: set[str] = set()
        self._public_rooms: set[str] = set()  # public rooms never turn private
        # {(room, username key): monotonic time until which the membership is trusted}: members can be
        # removed, on any process, so a membership read lasts MEMBER_CACHE_SECONDS
        self._room_members: dict[tuple[str, str], float] = {}

    @property
    def engine(self) -> "Engine":
        """SQLAlchemy's engine: PostgreSQL's pool, and the migrations; made when first needed."""
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def migrate(self, written_schema: bool = True) -> None:
        """Bring the schema to the newest Alembic revision (serialised across processes on PostgreSQL).

        A database at SCHEMA_HEAD already is left alone without loading Alembic and its scripts (and,
        on SQLite, SQLAlchemy): four tenths of a second of every restart, while the clients wait in the
        port's queue. A new SQLite file is given the schema the migrations make, written out
        (sqlite_schema.py), unless written_schema is False.
        """
        if not self._at_head() and not (written_schema and self._load_written_schema()):
            self._upgrade()
        if isinstance(self.connector, SqliteConnector):
            if self._engine is not None:
                self._engine.dispose()  # the threads open their own connections
            self.connector.use_wal()

    def _at_head(self) -> bool:
        """Whether the schema is at SCHEMA_HEAD; DatabaseUnavailable, at once, when it cannot be read at all."""
        try:
            return self.connector.read(queries.schema_versions) == [SCHEMA_HEAD]
        except Exception as error:
            if self.connector.missing_table(error):
                return False  # a new database: the upgrade creates its tables
            raise DatabaseUnavailable(f"cannot use the database {describe(self.url)}: {reason(error)}") from error
        finally:
            if isinstance(self.connector, SqliteConnector):
                self.connector.release()  # this thread serves no reads later

    def _load_written_schema(self) -> bool:
        """Give a new SQLite file the migrations' schema in one transaction; False when it is not new."""
        if not isinstance(self.connector, SqliteConnector):
            return False
        try:
            return sqlite_schema.load(self.connector.connection())
        finally:
            self.connector.release()

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.config import Config
        from sqlalchemy import text

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(1885433967)"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def claim(self) -> None:
        """Serve this database as a server process: a second server on the same SQLite file is refused."""
        self.connector.claim()
        if isinstance(self.connector, SqliteConnector) and self.recent is None:
            self.recent = RecentMessages(lock=self.lanes.os_lock())
            self.none_unread = NoneUnread(self.lanes.os_lock(), self.connector.foreign_writes)
            self.counters = RoomCounters(lock=self.lanes.os_lock())
            self._commits.counters = {}
            self._know_rooms(self.counters)

    def vacuum(self, starting: Callable[[], None] = lambda: None) -> tuple[int, int, int]:
        """Rewrite the SQLite file with Papo's page size unless a server serves it (SqliteConnector.vacuum).

        starting is called once the file is found and claimed, before the rewrite, which takes a while.
        """
        if not isinstance(self.connector, SqliteConnector):
            raise DatabaseUnavailable(f"papo vacuum rewrites a SQLite file, not {describe(self.url)}: "
                                      "PostgreSQL's autovacuum looks after its own")
        if not os.path.isfile(self.connector.path):
            raise DatabaseUnavailable(f"there is no database file at {self.connector.path}")
        self.connector.claim()
        starting()
        try:
            return self.connector.vacuum()
        except sqlite3.Error as error:  # another process holds the file's lock, or the disk is full
            raise DatabaseUnavailable(f"could not rewrite {describe(self.url)}: {reason(error)}") from error

    def _know_rooms(self, counters: RoomCounters) -> None:
        """Read every room (its privacy and last_rev) and every read mark once, before the first client.

        A restarted server's clients all come back at once and join before any read has come back:
        without this, each join asked the database for its room's privacy, last_rev and read mark
        (about two reads a client in a storm of 10,000).
        """
        try:  # at start-up, before any client: on this thread, on a connection of its own
            rooms, marks = self.connector.read(queries.rooms_and_marks, counters.size)
        finally:
            self.connector.release()
        self._known_rooms.update(name for name, _, _ in rooms)
        self._public_rooms.update(name for name, private, _ in rooms if not private)
        counters.load({name: rev for name, _, rev in rooms}, marks)

    def close(self) -> None:
        self._writer.close()
        if self._readers is not None:
            self._readers.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.connector.close()
        if self._engine is not None:
            self._engine.dispose()

    def ping(self) -> None:
        self._read(queries.last_seq, "")

    def _read(self, work, *args):
        if self._shared_reads is not None:
            return self._shared_reads.call((work, args))
        return self.connector.read(work, *args)

    def _write(self, work, *args):
        return self.lanes.call(self._writer, self.connector.write, work, *args)

    # users

    def add_user(self, username: str, password_hash: str, now: int) -> str | None:
        """Store a new user; None when the name is taken (case-insensitively)."""
        try:
            self._write(queries.add_user, username, password_hash, now)
        except self.connector.integrity_errors:
            return None
        return username

    def find_user(self, username: str) -> queries.User | None:
        """The (username, password_hash) of a name, matched case-insensitively, or None."""
        return self._read(queries.find_user, username)

    def set_password(self, username: str, password_hash: str) -> bool:
        """Replace a user's password hash; False when there is no such user."""
        return self._write(queries.set_password, username, password_hash) > 0

    # sessions

    def add_session(self, session_id: str, username: str, kind: str, now: int, expires_at: int) -> None:
        """Store a new token or cookie session."""
        self._write(queries.add_session, session_id, username, kind, now, expires_at)

    def find_session(self, session_id: str) -> queries.SessionRow | None:
        """(username, expires_at, revoked_at) of a session, or None."""
        return self._read(queries.find_session, session_id)

    def extend_session(self, session_id: str, expires_at: int) -> bool:
        """Move a live session's expiry (ms); False when there is no such live session."""
        return self._write(queries.extend_session, session_id, expires_at) > 0

    def revoke_sessions(self, username: str, ids: list[str] | None = None, keep: str | None = None,
                        now: int | None = None, code: str | None = None) -> list[str]:
        """Revoke the user's live sessions (those in ids when given, never keep) for code; the ids revoked."""
        return self._write(queries.revoke_sessions, username, ids, keep, now or now_ms(), code)

    def revoked_among(self, ids: list[str]) -> dict[str, str | None]:
        """{id: the code it was revoked for, None if not kept} of the revoked sessions among ids."""
        found: dict[str, str | None] = {}
        for start in range(0, len(ids), SESSIONS_PER_READ):
            found.update(self._read(queries.revoked_among, tuple(ids[start:start + SESSIONS_PER_READ])))
        return found

    def forget_sessions(self, before: int) -> int:
        """Delete the sessions that expired before a time (ms); how many."""
        return self._write(queries.forget_sessions, before)

    # rooms and messages

    def append(self, room: str, author: str, text: str, ts: int, client_id: str | None) -> tuple[dict, bool]:
        """Store a message with the room's next seq; (message, created). A known client_id returns its message."""
        return self.queue_append(room, author, text, ts, client_id).result()

    def queue_append(self, room: str, author: str, text: str, ts: int, client_id: str | None) -> Pending:
        """Queue a message for the next commit; messages queued one after another take seqs in that order."""
        return self._commits.append((room, author, text, ts, client_id))

    def _committed(self, messages: list[dict]) -> None:
        self._known_rooms.update(message["room"] for message in messages)
        if self.recent is not None:
            self.recent.add(messages)

    def messages_after(self, room: str, after: int, limit: int) -> list[dict]:
        """Messages with seq > after, oldest first, at most limit."""
        recent = self._recent(room)
        found = recent.after(room, after, limit) if recent else None
        return found if found is not None else self._read(queries.messages_after, room, after, limit)

    def messages_before(self, room: str, before: int | None, limit: int) -> list[dict]:
        """The latest messages with seq < before (all when before is None), oldest first, at most limit."""
        recent = self._recent(room)
        found = recent.before(room, before, limit) if recent else None
        return found if found is not None else self._read(queries.messages_before, room, before, limit)

    def last_seq(self, room: str) -> int:
        recent = self._recent(room)
        seq = recent.last_seq(room) if recent else None
        return seq if seq is not None else self._read(queries.last_seq, room)

    def _recent(self, room: str) -> RecentMessages | None:
        """The recent messages, with the room's loaded by the writer if need be; None when not kept."""
        recent = self.recent
        if recent is not None and not recent.loaded(room):
            self._writer_jobs.call((self._load_recent, (recent, room)))
        return recent

    def _load_recent(self, recent, room):
        """Read the room's latest messages into memory, in the writer, so that no commit slips between."""
        if not recent.loaded(room):
            messages, last_seq = self.connector.read(queries.latest, room, recent.per_room)
            recent.install(room, messages, last_seq)

    # changes to stored messages, and read marks

    def change_message(self, room: str, seq: int, change: queries.Change) -> tuple[dict, bool] | None:
        """Apply change to a message with the room's next rev, in the writer; (message, changed), None: no such seq.

        The writer also puts the changed message in the recent window, before anyone hears of it.
        """
        return self.lanes.call(self._writer, self._change, room, seq, change)

    def _change(self, room, seq, change):
        outcome = self.connector.write(queries.change_message, room, seq, change)
        if outcome is not None and outcome[1] and self.recent is not None:
            self.recent.replace(outcome[0])
        if outcome is not None and outcome[1] and self.counters is not None:
            self.counters.keep_rev(room, outcome[0]["rev"])
        return outcome

    def last_rev(self, room: str) -> int:
        """The room's last rev: from memory in the exclusive store once read, else from the database."""
        counters = self.counters
        rev = counters.last_rev(room) if counters is not None else None
        if rev is not None:
            return rev
        generation = counters.generation if counters is not None else 0
        rev = self._read(queries.last_rev, room)
        if counters is not None:
            counters.keep_rev(room, rev, generation)
        return rev

    def changed_since(self, room: str, since: int, revs_since: int, limit: int) -> list[dict]:
        """The room's messages with seq <= since whose rev > revs_since, in rev order, at most limit."""
        return self._read(queries.changed_since, room, since, revs_since, limit)

    def mark_room_read(self, room: str, user: str, seq: int) -> tuple[int, int] | None:
        """Raise the user's read mark in the room to seq (never lower it); (last_read, last_seq), None: no room."""
        if self.counters is None:
            return self._write(queries.mark_room_read, room, user, seq)
        return self.lanes.call(self._writer, self._mark_read, self.counters, room, user, seq)

    def _mark_read(self, counters, room, user, seq):
        outcome = self.connector.write(queries.mark_room_read, room, user, seq)
        if outcome is not None:
            counters.keep_read(room, user, outcome[0])
        return outcome

    def last_read(self, room: str, user: str) -> int:
        """The user's read mark in the room: from memory in the exclusive store once read, else from the database."""
        counters = self.counters
        mark = counters.last_read(room, user) if counters is not None else None
        if mark is not None:
            return mark
        generation = counters.generation if counters is not None else 0
        mark = self._read(queries.last_read, room, user)
        if counters is not None:
            counters.keep_read(room, user, mark, generation)
        return mark

    def read_marks(self, user: str) -> dict[str, int]:
        """{room: last_read} of every room the user has marked read."""
        return self._read(queries.read_marks, user)

    def search(self, user: str, q: str, room: str | None, limit: int) -> list[dict]:
        """Messages matching q, newest first, in the rooms the user may read, each with a marked-up snippet."""
        if isinstance(self.connector, SqliteConnector):
            while self._write(queries.index_messages, INDEX_BATCH):  # a batch per turn: commits go in between
                pass
        return self._read(queries.search, user, q, room, limit)

    def search_directs(self, user: str, q: str, peer: str | None, limit: int) -> list[dict]:
        """Direct messages matching q, newest first, that the user sent or received (with peer only, if given)."""
        if isinstance(self.connector, SqliteConnector) and self._read(queries.directs_to_index):
            while self._write(queries.index_directs, INDEX_BATCH):  # direct messages come slower than messages
                pass
        return self._read(queries.search_directs, user, q, peer, limit)

    def rooms(self) -> list[tuple[str, int]]:
        """Every room as (name, last_seq), by name."""
        return self._read(queries.rooms)

    def ensure_room(self, name: str) -> None:
        """Create the room unless it exists, so that it is listed from its first join."""
        if name not in self._known_rooms:
            self._writer_jobs.call((self._create_room, (name,)))

    def _create_room(self, name):
        if name not in self._known_rooms:
            self.connector.write(queries.room_ids, [name], now_ms())
            self._known_rooms.add(name)

    # direct messages

    def add_direct(self, sender: str, recipient: str, text: str, ts: int,
                   client_id: str | None) -> tuple[dict, bool]:
        """Store a direct message; (message, created). A known client_id of the sender returns its message."""
        try:
            return self._write(_store_direct, sender, recipient, text, ts, client_id)
        except self.connector.integrity_errors:
            known = client_id is not None and self._read(queries.direct_by_client_id, sender, client_id)
            if not known:
                raise
            return known, False

    def directs_between(self, user: str, peer: str, before: int | None, limit: int) -> list[dict]:
        """The latest direct messages between two users with id < before (all when None), oldest first."""
        return self._read(queries.directs_between, user, peer, before, limit)

    def directs_after(self, user: str, peer: str, after: int, limit: int) -> list[dict]:
        """The direct messages between two users with id > after, oldest first, at most limit."""
        return self._read(queries.directs_after, user, peer, after, limit)

    def mark_direct_read(self, user: str, peer: str, upto: int) -> int:
        """Raise the user's read mark in the conversation with peer to its last message up to id upto; the mark."""
        return self._write(queries.mark_direct_read, user, peer, upto)

    def direct_state(self, user: str, peer: str) -> dict[str, int]:
        """{"last_read", "unread", "peer_last_read"} of the user's conversation with peer."""
        return self._read(queries.direct_state, user, peer)

    def conversations(self, user: str, limit: int) -> list[dict]:
        """The user's direct conversations, latest first: {"with", "last_message", "last_read", "unread", ...}."""
        return self._read(queries.conversations, user, limit)

    def room_readers(self, room: str, limit: int) -> dict[str, int]:
        """{username: last_read} of the users who read the furthest in the room, at most limit."""
        return self._read(queries.room_readers, room, limit)

    # private rooms: an owner and the members it invited; every other room is public for good

    def create_room(self, name: str, owner: str, private: bool, now: int) -> bool:
        """Create a room with its owner as first member; False when a room of that name exists."""
        try:
            self._write(queries.create_room, name, owner, private, now)
        except self.connector.integrity_errors:
            return False
        self._known_rooms.add(name)
        return True

    def room_privacy(self, name: str) -> tuple[bool, str | None] | None:
        """(private, owner) of an existing room, or None."""
        if name in self._public_rooms:
            return False, None
        found = self._read(queries.room_privacy, name)
        if found is not None and not found[0]:
            self._public_rooms.add(name)
        return found

    def is_room_member(self, name: str, user: str) -> bool:
        """Whether the user was invited to the room (or owns it)."""
        key = (name, user.lower())
        if self._room_members.get(key, 0.0) > time.monotonic():
            return True
        found = self._read(queries.is_room_member, name, user)
        if found:
            if len(self._room_members) > 100_000:
                self._room_members.clear()
            self._room_members[key] = time.monotonic() + MEMBER_CACHE_SECONDS
        return found

    def add_room_member(self, name: str, user: str, now: int) -> bool:
        """Add a member to an existing room; False when it was one already."""
        try:
            self._write(_add_member, name, user, now)
        except self.connector.integrity_errors:
            return False
        return True

    def remove_room_member(self, name: str, user: str) -> bool:
        """Take a member out of a room; False when it was not one."""
        removed = self._write(queries.remove_room_member, name, user)
        self._room_members.pop((name, user.lower()), None)  # after the write: a read between would trust it again
        return removed

    def close_room(self, name: str) -> list[str]:
        """Empty a private room for good (see queries.close_room); the members it had."""
        members = self._write(queries.close_room, name)
        for member in members:
            self._room_members.pop((name, member.lower()), None)
        return members

    def room_members(self, name: str) -> list[str]:
        """The usernames of a room's members, in the order they were added."""
        return self._read(queries.room_members, name)

    def visible_rooms(self, user: str | None) -> list[tuple[str, int, bool]]:
        """(name, last_seq, private) of every public room and of the private rooms the user belongs to."""
        return self._read(queries.visible_rooms, user)

    # notifications to one user, kept until read

    def add_notification(self, recipient: str, title: str, body: str, level: str, ts: int) -> dict:
        """Store a notification for one user; it as the `notification` event carries it."""
        return self.lanes.call(self._writer, self._add_notification, recipient, title, body, level, ts)

    def _add_notification(self, *args):
        """In the writer: store it, then make whoever remembers users with none forget them (store/unread.py)."""
        note = self.connector.write(queries.add_notification, *args)
        if self.none_unread is not None:
            self.none_unread.stored()
        else:  # another process may be the server that claims this file
            self.connector.tell_claimant()
        return note

    def notifications(self, recipient: str, after: int | None = None, limit: int = 50,
                      unread: bool = False) -> list[dict]:
        """The user's notifications oldest first: those with id > after, else the latest; at most limit."""
        return self._read(queries.notifications, recipient, after, limit, unread)

    def unread_notifications(self, recipient: str, limit: int) -> list[dict]:
        """The user's latest `limit` unread notifications, oldest first; a storm's connects share one read.

        A user the claiming server knows has none costs no read (store/unread.py).
        """
        known = self.none_unread
        if known is None:
            return self._unread_read(recipient, limit)
        stamp = known.check(recipient)
        if stamp is None:
            return []
        found = self._unread_read(recipient, limit)
        if not found:
            known.learned(recipient, stamp)
        return found

    def _unread_read(self, recipient: str, limit: int) -> list[dict]:
        if self._unread is not None:
            return self._unread.call((recipient, limit))
        return self._read(queries.notifications, recipient, None, limit, True)

    def unread_count(self, recipient: str) -> int:
        return self._read(queries.unread_count, recipient)

    def mark_read(self, recipient: str, ids: list[int] | None = None, up_to: int | None = None,
                  now: int | None = None) -> list[int]:
        """Mark the user's unread notifications read, by id or every one up to an id; the ids marked."""
        return self._write(queries.mark_read, recipient, ids, up_to, now or now_ms())


class Checkpointer:
    """Copies SQLite's WAL into the database file on a thread of its own, at most once a CHECKPOINT_SECONDS.

    A checkpoint writes the file and waits for the disk to sync it. SQLite would run one inside the
    commit that grows the WAL past its threshold, and every message of that batch, and of the
    batches queued behind it, would wait for the disk; a PASSIVE checkpoint beside the writer
    copies what it can and never blocks a commit or a read.
    """

    def __init__(self, lanes: Lanes, connector: SqliteConnector):
        self._connector = connector
        self._lane = lanes.thread_lane(1, on_exit=connector.release)
        self._due = 0.0
        self._running = False
        connector.after_commit = self.after_commit

    def after_commit(self) -> None:
        """Start a checkpoint unless one runs or the last started less than CHECKPOINT_SECONDS ago; in the writer."""
        now = time.monotonic()
        if not self._running and now >= self._due:
            self._running = True
            self._due = now + CHECKPOINT_SECONDS
            self._lane.submit(self._run)

    def _run(self) -> None:
        try:
            self._connector.checkpoint()
        finally:
            self._running = False

    def close(self) -> None:
        self._lane.close()


def _store_direct(tx, sender, recipient, text, ts, client_id):
    if client_id is not None:
        known = queries.direct_by_client_id(tx, sender, client_id)
        if known:
            return known, False
    return queries.add_direct(tx, sender, recipient, text, ts, client_id), True


def _add_member(tx, name, user, now):
    room_id = queries.room_ids(tx, [name], now)[name]
    queries.add_room_member(tx, room_id, user, now)


def now_ms() -> int:
    return int(time.time() * 1000)
