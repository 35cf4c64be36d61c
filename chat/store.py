"""Database tables and queries: users, rooms with their last seq, messages, direct messages."""
import os
import sys
import threading
import time
from collections import Counter

from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, and_, create_engine, event, false, func, insert, or_, select,
                        text, update)
from sqlalchemy.exc import IntegrityError

from .runtime import short_lock

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(32), nullable=False),
    Column("username_key", String(32), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

rooms = Table(
    "rooms", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("private", Boolean, nullable=False, server_default=false()),
    Column("owner", String(32)),
)

room_members = Table(
    "room_members", metadata,
    Column("id", Integer, primary_key=True),
    Column("room_id", Integer, ForeignKey("rooms.id"), nullable=False),
    Column("username", String(32), nullable=False),
    Column("username_key", String(32), nullable=False),
    Column("added_at", BigInteger, nullable=False),
    UniqueConstraint("room_id", "username_key", name="uq_room_members_room_user"),
    Index("ix_room_members_user", "username_key"),
)

messages = Table(
    "messages", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("room_id", Integer, ForeignKey("rooms.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("author", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("client_id", String(64)),
    UniqueConstraint("room_id", "seq", name="uq_messages_room_seq"),
    UniqueConstraint("room_id", "author", "client_id", name="uq_messages_room_author_client"),
)

directs = Table(
    "directs", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("sender", String(32), nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("client_id", String(64)),
    UniqueConstraint("sender", "client_id", name="uq_directs_sender_client"),
    Index("ix_directs_pair", "sender", "recipient", "id"),
)

notifications = Table(
    "notifications", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("recipient", String(32), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("read_at", BigInteger),
    Index("ix_notifications_recipient", "recipient", "id"),
)

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


class Store:
    """All reads and writes of Papo's data, each in its own short transaction."""

    def __init__(self, url, cooperate=None):
        self.url = url
        self._cooperate = cooperate or (lambda: None)
        self.engine = _engine(url)
        self._writer = self.engine.execution_options(papo_write=True)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._placeholder = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._room_ids = {}
        self._room_ids_lock = short_lock()
        self._public_rooms = set()  # names of rooms known to be public
        self._room_members = set()  # {(room, username key)} known to be members of a private room
        self._queue = []  # [_Slot] waiting for the next group commit, oldest first
        self._queue_lock = short_lock()
        self._committing = False

    def migrate(self):
        """Bring the schema to the newest Alembic revision (serialised across processes on PostgreSQL)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(1885433967)"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self):
        self.engine.dispose()

    def ping(self):
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # users

    def add_user(self, username, password_hash, now):
        """Store a new user; None when the name is taken (case-insensitively)."""
        try:
            with self._writer.begin() as conn:
                conn.execute(insert(users).values(username=username, username_key=username.lower(),
                                                  password_hash=password_hash, created_at=now))
        except IntegrityError:
            return None
        return username

    def find_user(self, username):
        """The (username, password_hash) row for a name, matched case-insensitively, or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.username, users.c.password_hash)
                                .where(users.c.username_key == username.lower())).first()

    # rooms and messages

    def append(self, room, author, text_, ts, client_id):
        """Store a message with the room's next seq; (message, created). A known client_id returns its message.

        Concurrent callers are committed together: the first becomes the leader, lets the others
        queue behind it, and stores the whole batch in one transaction.
        """
        slot = _Slot((room, author, text_, ts, client_id))
        with self._queue_lock:
            self._queue.append(slot)
            leading = not self._committing
            self._committing = True
            if not leading:
                slot.wake = threading.Event()
        if not leading:
            slot.wake.wait()
        if not slot.finished:
            self._lead()
        return slot.outcome()

    def _lead(self):
        self._cooperate()  # on an event loop: let connections whose messages are in hand join this batch
        with self._queue_lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            outcomes = self.append_many([slot.item for slot in batch])
        except Exception as error:
            outcomes = [error] * len(batch)
        for slot, outcome in zip(batch, outcomes):
            slot.finish(outcome)
        with self._queue_lock:
            if self._queue:
                self._queue[0].wake.set()
            else:
                self._committing = False

    def append_many(self, items):
        """Store (room, author, text, ts, client_id) items in one transaction; (message, created) for each.

        The batch is inserted optimistically; a client_id already stored fails it on the unique
        constraint, and then each item goes alone, a repeat returning the stored message.
        """
        room_ids = [self._room_id(item[0]) for item in items]
        try:
            return self._write(self._insert_batch, items, room_ids)
        except self.engine.dialect.dbapi.IntegrityError:
            if len(items) > 1:
                return [self.append_many([item])[0] for item in items]
            known = items[0][4] is not None and self._by_client_id(items[0][0], items[0][1], items[0][4])
            if not known:
                raise
            return [(known, False)]

    def _write(self, work, *args):
        """`work(cursor, *args)` in a write transaction on the DBAPI connection itself, committed.

        This is the message path, where SQLAlchemy's layers cost three times the SQL.
        """
        raw = self.engine.raw_connection()
        cursor = raw.cursor()
        try:
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            result = work(cursor, *args)
            raw.commit()
            return result
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()

    def _insert_batch(self, cursor, items, room_ids):
        outcomes = [None] * len(items)
        first_of = {}  # {(room_id, author, client_id): index of its first item in this batch}
        fresh = []
        for index, ((_, author, _, _, client_id), room_id) in enumerate(zip(items, room_ids)):
            if client_id is not None:
                key = (room_id, author, client_id)
                if key in first_of:
                    outcomes[index] = first_of[key]
                    continue
                first_of[key] = index
            fresh.append(index)
        p = self._placeholder
        next_seq = {}
        for room_id, count in sorted(Counter(room_ids[i] for i in fresh).items()):
            cursor.execute(f"UPDATE rooms SET last_seq = last_seq + {p} WHERE id = {p} RETURNING last_seq",
                           (count, room_id))
            next_seq[room_id] = cursor.fetchone()[0] - count + 1
        rows = []
        for index in fresh:
            _, author, text_, ts, client_id = items[index]
            room_id = room_ids[index]
            rows.append((room_id, next_seq[room_id], author, text_, ts, client_id))
            next_seq[room_id] += 1
        values = ",".join([f"({p},{p},{p},{p},{p},{p})"] * len(rows))
        cursor.execute(f"INSERT INTO messages (room_id, seq, author, text, ts, client_id) VALUES {values} "
                       "RETURNING id, room_id, seq", [value for row in rows for value in row])
        ids = {(room_id, seq): row_id for row_id, room_id, seq in cursor.fetchall()}
        for index, row in zip(fresh, rows):
            room_id, seq, author, text_, ts, client_id = row
            outcomes[index] = (_message(ids[room_id, seq], items[index][0], seq, author, text_, ts, client_id), True)
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, int):
                outcomes[index] = (outcomes[outcome][0], False)
        return outcomes

    def messages_after(self, room, after, limit):
        """Messages with seq > after, oldest first, at most limit."""
        p = self._placeholder
        return [_message(*row) for row in self._read(
            f"{_SELECT_MESSAGES} WHERE r.name = {p} AND m.seq > {p} ORDER BY m.seq LIMIT {p}", (room, after, limit))]

    def messages_before(self, room, before, limit):
        """The latest messages with seq < before (all when before is None), oldest first, at most limit."""
        p = self._placeholder
        rows = self._read(f"{_SELECT_MESSAGES} WHERE r.name = {p} AND m.seq < {p} ORDER BY m.seq DESC LIMIT {p}",
                          (room, MAX_INT if before is None else before, limit))
        return [_message(*row) for row in reversed(rows)]

    def last_seq(self, room):
        rows = self._read(f"SELECT last_seq FROM rooms WHERE name = {self._placeholder}", (room,))
        return rows[0][0] if rows else 0

    def _read(self, sql, params):
        """The rows of one query on the DBAPI connection itself: the connect and join path, where building
        a SQLAlchemy statement cost more than running it."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            raw.close()

    def rooms(self):
        """Every room as (name, last_seq), by name."""
        with self.engine.connect() as conn:
            return conn.execute(select(rooms.c.name, rooms.c.last_seq).order_by(rooms.c.name)).all()

    def _by_client_id(self, room, author, client_id):
        query = select(*_MESSAGE_COLUMNS).join(rooms).where(
            rooms.c.name == room, messages.c.author == author, messages.c.client_id == client_id)
        found = self._messages(query)
        return found[0] if found else None

    def _messages(self, query):
        with self.engine.connect() as conn:
            return [_message(*row) for row in conn.execute(query)]

    def ensure_room(self, name):
        """Create the room unless it exists, so that it is listed from its first join."""
        self._room_id(name)

    def _room_id(self, name):
        """The room's id, creating the room on first use; ids are cached since rooms are never deleted."""
        room_id = self._room_ids.get(name)
        if room_id is None:
            with self._writer.begin() as conn:
                room_id = conn.execute(select(rooms.c.id).where(rooms.c.name == name)).scalar()
                if room_id is None:
                    room_id = self._create_room(conn, name)
            with self._room_ids_lock:
                self._room_ids[name] = room_id
        return room_id

    def _create_room(self, conn, name):
        try:
            with conn.begin_nested():
                return conn.execute(insert(rooms).values(name=name, created_at=_now_ms())
                                    .returning(rooms.c.id)).scalar_one()
        except IntegrityError:
            return conn.execute(select(rooms.c.id).where(rooms.c.name == name)).scalar_one()

    # direct messages

    def add_direct(self, sender, recipient, text_, ts, client_id):
        """Store a direct message; (message, created). A known client_id of the sender returns its message."""
        if client_id is not None:
            known = self._direct_by_client_id(sender, client_id)
            if known:
                return known, False
        try:
            with self._writer.begin() as conn:
                row_id = conn.execute(insert(directs).values(
                    sender=sender, recipient=recipient, text=text_, ts=ts, client_id=client_id
                ).returning(directs.c.id)).scalar_one()
        except IntegrityError:
            known = client_id is not None and self._direct_by_client_id(sender, client_id)
            if not known:
                raise
            return known, False
        return _direct(row_id, sender, recipient, text_, ts, client_id), True

    def _direct_by_client_id(self, sender, client_id):
        with self.engine.connect() as conn:
            row = conn.execute(select(*_DIRECT_COLUMNS).where(
                directs.c.sender == sender, directs.c.client_id == client_id)).first()
        return _direct(*row) if row else None

    def directs_between(self, user, peer, before, limit):
        """The latest direct messages between two users with id < before (all when None), oldest first."""
        pair = or_(and_(directs.c.sender == user, directs.c.recipient == peer),
                   and_(directs.c.sender == peer, directs.c.recipient == user))
        query = select(*_DIRECT_COLUMNS).where(pair)
        if before is not None:
            query = query.where(directs.c.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(directs.c.id.desc()).limit(limit)).all()
        return [_direct(*row) for row in reversed(rows)]

    # private rooms: an owner and the members it invited; every other room is public for good

    def create_room(self, name, owner, private, now):
        """Create a room with its owner as first member; False when a room of that name exists."""
        try:
            with self._writer.begin() as conn:
                room_id = conn.execute(insert(rooms).values(name=name, created_at=now, private=private, owner=owner)
                                       .returning(rooms.c.id)).scalar_one()
                conn.execute(insert(room_members).values(room_id=room_id, username=owner,
                                                         username_key=owner.lower(), added_at=now))
        except IntegrityError:
            return False
        with self._room_ids_lock:
            self._room_ids[name] = room_id
        return True

    def room_privacy(self, name):
        """(private, owner) of an existing room, or None. Public rooms are remembered: they never turn private."""
        if name in self._public_rooms:
            return False, None
        with self.engine.connect() as conn:
            row = conn.execute(select(rooms.c.private, rooms.c.owner).where(rooms.c.name == name)).first()
        if row is None:
            return None
        if not row.private:
            self._public_rooms.add(name)
        return bool(row.private), row.owner

    def is_room_member(self, name, user):
        """Whether the user was invited to the room (or owns it). Members are remembered: nobody is removed."""
        key = (name, user.lower())
        if key in self._room_members:
            return True
        with self.engine.connect() as conn:
            found = conn.execute(select(room_members.c.id).join(rooms).where(
                rooms.c.name == name, room_members.c.username_key == key[1])).first() is not None
        if found:
            self._room_members.add(key)
        return found

    def add_room_member(self, name, user, now):
        """Add a member to an existing room; False when it was one already."""
        room_id = self._room_id(name)  # before the transaction: it may write in one of its own
        try:
            with self._writer.begin() as conn:
                conn.execute(insert(room_members).values(room_id=room_id, username=user,
                                                         username_key=user.lower(), added_at=now))
        except IntegrityError:
            return False
        return True

    def room_members(self, name):
        """The usernames of a room's members, in the order they were added."""
        with self.engine.connect() as conn:
            return conn.execute(select(room_members.c.username).join(rooms).where(rooms.c.name == name)
                                .order_by(room_members.c.id)).scalars().all()

    def visible_rooms(self, user):
        """(name, last_seq, private) of every public room and of the private rooms the user belongs to."""
        visible = rooms.c.private == false()
        if user:
            mine = select(room_members.c.room_id).where(room_members.c.username_key == user.lower())
            visible = or_(visible, rooms.c.id.in_(mine))
        with self.engine.connect() as conn:
            return conn.execute(select(rooms.c.name, rooms.c.last_seq, rooms.c.private).where(visible)
                                .order_by(rooms.c.name)).all()

    # notifications to one user, kept until read

    def add_notification(self, recipient, title, body, level, ts):
        """Store a notification for one user; it as the `notification` event carries it."""
        with self._writer.begin() as conn:
            row_id = conn.execute(insert(notifications).values(
                recipient=recipient, title=title, body=body, level=level, ts=ts
            ).returning(notifications.c.id)).scalar_one()
        return _notification(row_id, recipient, title, body, level, ts, None)

    def notifications(self, recipient, after=None, limit=50, unread=False):
        """The user's notifications oldest first: those with id > after, else the latest; at most limit."""
        p = self._placeholder
        sql = ("SELECT id, recipient, title, body, level, ts, read_at FROM notifications WHERE recipient = "
               + p + (" AND read_at IS NULL" if unread else ""))
        if after is not None:
            rows = self._read(f"{sql} AND id > {p} ORDER BY id LIMIT {p}", (recipient, after, limit))
        else:
            rows = self._read(f"{sql} ORDER BY id DESC LIMIT {p}", (recipient, limit))[::-1]
        return [_notification(*row) for row in rows]

    def unread_count(self, recipient):
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(notifications).where(
                notifications.c.recipient == recipient, notifications.c.read_at.is_(None))).scalar_one()

    def mark_read(self, recipient, ids=None, up_to=None, now=None):
        """Mark the user's unread notifications read, by id or every one up to an id; the ids marked."""
        where = [notifications.c.recipient == recipient, notifications.c.read_at.is_(None)]
        where.append(notifications.c.id.in_(ids) if ids is not None else notifications.c.id <= up_to)
        with self._writer.begin() as conn:
            marked = conn.execute(select(notifications.c.id).where(*where)).scalars().all()
            if marked:
                conn.execute(update(notifications).where(notifications.c.id.in_(marked))
                             .values(read_at=now or _now_ms()))
        return sorted(marked)


_MESSAGE_COLUMNS = (messages.c.id, rooms.c.name, messages.c.seq, messages.c.author, messages.c.text,
                    messages.c.ts, messages.c.client_id)
_SELECT_MESSAGES = ("SELECT m.id, r.name, m.seq, m.author, m.text, m.ts, m.client_id "
                    "FROM messages m JOIN rooms r ON r.id = m.room_id")
MAX_INT = 2 ** 63 - 1
MAX_BATCH = 256
# A commit that fills the log this far copies it into the database, holding up an event loop meanwhile:
# SQLite's default of 1000 pages stalled every connection for several milliseconds each time (p99
# 7.5-10 ms against 4.5-5 ms at 100 pages, at 2,000 messages a second).
WAL_CHECKPOINT_PAGES = 100


class _Slot:
    """One caller's message waiting in the group commit queue, then its outcome."""

    __slots__ = ("item", "wake", "finished", "result")

    def __init__(self, item):
        self.item = item
        self.wake = None  # an Event for a follower, which waits for the leader; the leader never does
        self.finished = False
        self.result = None

    def finish(self, result):
        self.result = result
        self.finished = True
        if self.wake is not None:
            self.wake.set()

    def outcome(self):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result
_DIRECT_COLUMNS = (directs.c.id, directs.c.sender, directs.c.recipient, directs.c.text, directs.c.ts,
                   directs.c.client_id)


def _message(row_id, room, seq, author, text_, ts, client_id):
    return {"id": str(row_id), "room": room, "seq": seq, "user": author, "text": text_, "ts": ts,
            "client_id": client_id}


def _direct(row_id, sender, recipient, text_, ts, client_id):
    return {"id": "d" + str(row_id), "from": sender, "to": recipient, "text": text_, "ts": ts,
            "client_id": client_id}


def _notification(row_id, recipient, title, body, level, ts, read_at):
    return {"id": "n" + str(row_id), "title": title, "body": body, "level": level, "ts": ts,
            "user": recipient, "read": read_at is not None}


def _now_ms():
    return int(time.time() * 1000)


# An unreachable PostgreSQL fails a request within seconds instead of hanging it: bounded connect
# and pool waits, and TCP keepalives and a user timeout for a peer that vanished without closing.
PG_CONNECT_ARGS = {"connect_timeout": 3, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 2,
                   "keepalives_count": 3, "tcp_user_timeout": 10000}
PG_POOL_TIMEOUT = 5


def _psycopg_waits_cooperatively():
    """Under eventlet, make psycopg wait for its socket through the patched select module.

    psycopg's C wait calls poll() itself, unseen by eventlet, so every query would stall every
    green thread of the process (psycopg notices gevent's patching by itself, not eventlet's).
    """
    patcher = sys.modules.get("eventlet.patcher")
    if patcher and patcher.is_monkey_patched("select"):
        from psycopg import waiting
        waiting.wait = waiting.wait_select


def _engine(url):
    """An engine; SQLite gets WAL, a busy timeout and write transactions that take the lock up front."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not url.startswith("sqlite"):
        _psycopg_waits_cooperatively()
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=PG_POOL_TIMEOUT,
                             connect_args=PG_CONNECT_ARGS)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000",
                       f"wal_autocheckpoint={WAL_CHECKPOINT_PAGES}"):
            dbapi_conn.execute("PRAGMA " + pragma)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writes take the lock up front; a read is one statement, consistent without a transaction.
        if conn.get_execution_options().get("papo_write"):
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")

    return engine
