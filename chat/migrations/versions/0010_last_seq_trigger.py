"""On SQLite a stored message moves its room's last_seq itself.

The server that owns a SQLite file numbers messages from the counters it keeps, and stores a batch as one
INSERT, its own transaction: this trigger keeps rooms.last_seq right within that statement. (PostgreSQL's
writers, one per process, move the counters themselves, under the rooms' row locks.)

Revision ID: 0010
Revises: 0009 (the index of changed messages)
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER messages_last_seq AFTER INSERT ON messages BEGIN "
                   "UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id AND last_seq < NEW.seq; END")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER messages_last_seq")
