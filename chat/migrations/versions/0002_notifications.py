"""Notifications to one user, kept until read.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade():
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("read_at", sa.BigInteger),
    )
    op.create_index("ix_notifications_recipient", "notifications", ["recipient", "id"])


def downgrade():
    op.drop_table("notifications")
