"""Database tables and queries: users, rooms with their last seq, messages, direct messages."""
import os
import threading
import time

from sqlalchemy import (BigInteger, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event, func, insert, select, text, update)
from sqlalchemy.exc import IntegrityError

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

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


class Store:
    """All reads and writes of Papo's data, each in its own short transaction."""

    def __init__(self, url):
        self.url = url
        self.engine = _engine(url)
        self._writer = self.engine.execution_options(papo_write=True)
        self._room_ids = {}
        self._room_ids_lock = threading.Lock()

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
        """Store a message with the room's next seq; (message, created). A known client_id returns its message."""
        if client_id is not None:
            known = self._by_client_id(room, author, client_id)
            if known:
                return known, False
        room_id = self._room_id(room)
        try:
            with self._writer.begin() as conn:
                seq = conn.execute(update(rooms).where(rooms.c.id == room_id)
                                   .values(last_seq=rooms.c.last_seq + 1).returning(rooms.c.last_seq)).scalar_one()
                row_id = conn.execute(insert(messages).values(
                    room_id=room_id, seq=seq, author=author, text=text_, ts=ts, client_id=client_id
                ).returning(messages.c.id)).scalar_one()
        except IntegrityError:
            known = client_id is not None and self._by_client_id(room, author, client_id)
            if not known:
                raise
            return known, False
        return _message(row_id, room, seq, author, text_, ts, client_id), True

    def messages_after(self, room, after, limit):
        """Messages with seq > after, oldest first, at most limit."""
        query = (select(*_MESSAGE_COLUMNS).join(rooms).where(rooms.c.name == room, messages.c.seq > after)
                 .order_by(messages.c.seq).limit(limit))
        return self._messages(query)

    def messages_before(self, room, before, limit):
        """The latest messages with seq < before (all when before is None), oldest first, at most limit."""
        query = select(*_MESSAGE_COLUMNS).join(rooms).where(rooms.c.name == room)
        if before is not None:
            query = query.where(messages.c.seq < before)
        return self._messages(query.order_by(messages.c.seq.desc()).limit(limit))[::-1]

    def last_seq(self, room):
        with self.engine.connect() as conn:
            return conn.execute(select(rooms.c.last_seq).where(rooms.c.name == room)).scalar() or 0

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


_MESSAGE_COLUMNS = (messages.c.id, rooms.c.name, messages.c.seq, messages.c.author, messages.c.text,
                    messages.c.ts, messages.c.client_id)
_DIRECT_COLUMNS = (directs.c.id, directs.c.sender, directs.c.recipient, directs.c.text, directs.c.ts,
                   directs.c.client_id)


def _message(row_id, room, seq, author, text_, ts, client_id):
    return {"id": str(row_id), "room": room, "seq": seq, "user": author, "text": text_, "ts": ts,
            "client_id": client_id}


def _direct(row_id, sender, recipient, text_, ts, client_id):
    return {"id": "d" + str(row_id), "from": sender, "to": recipient, "text": text_, "ts": ts,
            "client_id": client_id}


def _now_ms():
    return int(time.time() * 1000)


def _engine(url):
    """An engine; SQLite gets WAL, a busy timeout and write transactions that take the lock up front."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            dbapi_conn.execute("PRAGMA " + pragma)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("papo_write") else "BEGIN")

    return engine
