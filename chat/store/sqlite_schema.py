"""The SQLite schema the migrations make, written out: a new file is given it in one transaction.

Running the migrations on a new file imports Alembic and SQLAlchemy and replays every revision:
0.7 s of CPU on a slow machine, 0.1 s more for each further database in the same process (measured),
paid by every first start and every test's server. Like Rails' schema.rb, the result is kept in
sqlite_schema.sql (its statements as SQLite recorded them, and the rows the migrations wrote), made by
tools/sqlite_schema.py; tests/test_sqlite_schema.py holds a file made from it to the schema the
migrations make. A database that has any table already is left to the migrations, and PostgreSQL
always is.
"""
import sqlite3
from pathlib import Path

SCHEMA = Path(__file__).with_name("sqlite_schema.sql")
HEADER = ("-- The SQLite schema that chat/migrations make, given to a new database in their place.\n"
          "-- Written by tools/sqlite_schema.py: do not edit; run it again after adding a migration.\n")


def load(conn: sqlite3.Connection, schema: Path = SCHEMA) -> bool:
    """Give an empty database the written schema; False, with nothing done, when it has a table already."""
    statements = split(schema.read_text())
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
            conn.execute("ROLLBACK")
            return False
        for statement in statements:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


def split(text: str) -> list[str]:
    """The statements of a schema file, its comment lines left out."""
    statements, pending = [], ""
    for line in text.splitlines(keepends=True):
        if not pending and (not line.strip() or line.startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"{SCHEMA.name} ends inside a statement: {pending[:80]!r}")
    return statements


def dump(conn: sqlite3.Connection) -> str:
    """The schema file of a database: what created its tables, indexes and triggers, then its own tables' rows.

    SQLite's own tables and the ones a virtual table makes for itself (its shadow tables) are left out:
    creating the virtual table makes them again.
    """
    kinds = {name: kind for _, name, kind, *_ in conn.execute("PRAGMA main.table_list")}
    entries = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
    made = [sql for name, sql in entries if not name.startswith("sqlite_") and kinds.get(name) != "shadow"]
    rows = []
    for name, kind in sorted(kinds.items()):
        if kind == "table" and not name.startswith("sqlite_"):
            rows += [f'INSERT INTO "{name}" VALUES ({", ".join(map(literal, row))})'
                     for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid')]
    return HEADER + "".join(statement + ";\n" for statement in made + rows)


def literal(value: object) -> str:
    """A value as an SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    return "'" + str(value).replace("'", "''") + "'"
