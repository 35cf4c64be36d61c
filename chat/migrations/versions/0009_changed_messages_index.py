"""The index of changed messages holds only messages that have changed.

A new message has rev 0, and with every message in the index each commit wrote one more page per room
it touched (a quarter of a commit's pages, measured). Only recovery of changes (rev > 0) reads it.

Revision ID: 0009
Revises: 0008 (sessions keep why they were revoked)
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_messages_room_rev", table_name="messages")
    op.create_index("ix_messages_room_rev", "messages", ["room_id", "rev"], sqlite_where=sa.text("rev > 0"),
                    postgresql_where=sa.text("rev > 0"))


def downgrade():
    op.drop_index("ix_messages_room_rev", table_name="messages")
    op.create_index("ix_messages_room_rev", "messages", ["room_id", "rev"])
