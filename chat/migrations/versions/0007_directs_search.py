"""Search over direct messages: an index of the direct messages' text, built here for those already stored.

Revision ID: 0007
Revises: 0006 (direct reads)
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":  # as 0005 does for messages_fts: the store indexes newer ones
        op.execute("CREATE VIRTUAL TABLE directs_fts USING fts5(text, content='directs', content_rowid='id', "
                   "tokenize='unicode61 remove_diacritics 2')")
        op.execute("INSERT INTO directs_fts (directs_fts) VALUES ('rebuild')")
        op.execute("CREATE TABLE directs_fts_state (indexed_to INTEGER NOT NULL)")
        op.execute("INSERT INTO directs_fts_state SELECT coalesce(max(id), 0) FROM directs")
    else:
        op.execute("CREATE INDEX directs_fts ON directs USING gin (to_tsvector('simple', text))")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE directs_fts_state")
        op.execute("DROP TABLE directs_fts")
    else:
        op.execute("DROP INDEX directs_fts")
