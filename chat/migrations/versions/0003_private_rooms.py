"""Private rooms: an owner, a private flag, and the members the owner invited.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("owner", sa.String(32)))
    op.create_table(
        "room_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id"), nullable=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("room_id", "username_key", name="uq_room_members_room_user"),
    )
    op.create_index("ix_room_members_user", "room_members", ["username_key"])


def downgrade():
    op.drop_table("room_members")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("owner")
        batch.drop_column("private")
