"""Sessions keep why they were revoked, so that a process that missed the news ends their connections with it.

Revision ID: 0008
Revises: 0007 (search over direct messages)
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("sessions", sa.Column("revoked_code", sa.String(32)))


def downgrade():
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("revoked_code")
