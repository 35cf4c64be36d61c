"""Direct conversations' read state: a read mark per user and peer, and an index to list a user's conversations.

Revision ID: 0006
Revises: 0005 (chat state)
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "direct_reads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username_key", sa.String(32), nullable=False),
        sa.Column("peer_key", sa.String(32), nullable=False),
        sa.Column("last_read", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("username_key", "peer_key", name="uq_direct_reads_user_peer"),
    )
    op.create_index("ix_direct_reads_peer", "direct_reads", ["peer_key", "username_key"])
    op.create_index("ix_directs_recipient", "directs", ["recipient", "sender", "id"])


def downgrade():
    op.drop_index("ix_directs_recipient", "directs")
    op.drop_table("direct_reads")
