"""Chat state: a rev per room and per message, edits, deletions, reactions, read marks and a search index.

Revision ID: 0005
Revises: 0004 (sessions)
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("last_rev", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("rev", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("edited_at", sa.BigInteger))
        batch.add_column(sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("reactions", sa.Text))
    op.create_index("ix_messages_room_rev", "messages", ["room_id", "rev"])
    op.create_table(
        "room_reads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id"), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False),
        sa.Column("last_read", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("room_id", "username_key", name="uq_room_reads_room_user"),
    )
    op.create_index("ix_room_reads_user", "room_reads", ["username_key"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id', "
                   "tokenize='unicode61 remove_diacritics 2')")
        op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        op.execute("CREATE TABLE messages_fts_state (indexed_to INTEGER NOT NULL)")
        op.execute("INSERT INTO messages_fts_state SELECT coalesce(max(id), 0) FROM messages")
    else:
        op.execute("CREATE INDEX messages_fts ON messages USING gin (to_tsvector('simple', text))")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE messages_fts_state")
        op.execute("DROP TABLE messages_fts")
    else:
        op.execute("DROP INDEX messages_fts")
    op.drop_table("room_reads")
    op.drop_index("ix_messages_room_rev", "messages")
    with op.batch_alter_table("messages") as batch:
        for column in ("reactions", "deleted", "edited_at", "rev"):
            batch.drop_column(column)
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("last_rev")
