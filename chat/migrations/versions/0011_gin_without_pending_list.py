"""On PostgreSQL the search indexes take each new message at once, with no pending list.

A GIN index's pending list (`fastupdate`, on by default) gathers new entries until it holds
gin_pending_list_limit (4 MB), and then the insert that overflows it merges them all into the
index: at 2,000 messages a second that was one batch of about 120 ms of CPU every 26 s, holding its
rooms' rows meanwhile, so every process's messages waited (perf on the writer's backend:
ginInsertCleanup under ginHeapTupleFastInsert). PostgreSQL's documentation: "If consistent response
time is more important than update speed, use of pending entries can be disabled by turning off the
fastupdate storage parameter". Entries already pending are merged now.

Revision ID: 0011
Revises: 0010 (SQLite's last_seq trigger)
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = ("messages_fts", "directs_fts")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for index in INDEXES:
            op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
            op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for index in INDEXES:
            op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
