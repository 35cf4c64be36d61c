"""The database schema, as SQLAlchemy tables: what Alembic migrates to and what the queries assume."""
from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, false, text)

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
    Column("last_rev", BigInteger, nullable=False, server_default="0"),
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
    Column("rev", BigInteger, nullable=False, server_default="0"),
    Column("edited_at", BigInteger),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("reactions", Text),  # JSON {emoji: [username]}; NULL while there are none
    UniqueConstraint("room_id", "seq", name="uq_messages_room_seq"),
    UniqueConstraint("room_id", "author", "client_id", name="uq_messages_room_author_client"),
    # changed messages only (migration 0009): a new message, rev 0, adds no page to its commit
    Index("ix_messages_room_rev", "room_id", "rev", sqlite_where=text("rev > 0"), postgresql_where=text("rev > 0")),
)

room_reads = Table(
    "room_reads", metadata,
    Column("id", Integer, primary_key=True),
    Column("room_id", Integer, ForeignKey("rooms.id"), nullable=False),
    Column("username_key", String(32), nullable=False),
    Column("last_read", BigInteger, nullable=False),
    UniqueConstraint("room_id", "username_key", name="uq_room_reads_room_user"),
    Index("ix_room_reads_user", "username_key"),
)

# On SQLite the trigger messages_last_seq (migration 0010) moves rooms.last_seq as messages are inserted:
# the file's only server numbers a batch from counters in memory and stores it as one INSERT.

# The full-text index of the messages, made by the migration: on SQLite an FTS5 table that mirrors
# messages.text by rowid (with shadow tables of its own, and messages_fts_state: the highest message
# id indexed, since the store indexes new messages before each search), on PostgreSQL an expression
# index. None is a table or index these declarations describe. directs_fts (migration 0007) is the same
# for the direct messages: an FTS5 table over directs.text with directs_fts_state, or an expression index.
SEARCH_INDEX = "messages_fts"
DIRECTS_SEARCH_INDEX = "directs_fts"


def is_declared(name: str | None, type_: str, parent_names: dict) -> bool:
    """Whether a reflected object is one these declarations describe (the search index is not): for autogenerate."""
    return not (name and type_ in ("table", "index") and name.startswith((SEARCH_INDEX, DIRECTS_SEARCH_INDEX)))

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
    Index("ix_directs_recipient", "recipient", "sender", "id"),
)

direct_reads = Table(  # the highest direct message id (its number) each user has read from each peer
    "direct_reads", metadata,
    Column("id", Integer, primary_key=True),
    Column("username_key", String(32), nullable=False),
    Column("peer_key", String(32), nullable=False),
    Column("last_read", BigInteger, nullable=False),
    UniqueConstraint("username_key", "peer_key", name="uq_direct_reads_user_peer"),
    Index("ix_direct_reads_peer", "peer_key", "username_key"),
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

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(32), nullable=False),
    Column("username_key", String(32), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("revoked_code", String(32)),  # why: a Sessions.ENDINGS code (0008)
    Index("ix_sessions_user", "username_key", "expires_at"),
)
