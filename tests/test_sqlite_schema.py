"""A new SQLite database gets the migrations' schema from chat/store/sqlite_schema.sql, exactly."""
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from chat.store import Store, sqlite_schema
from chat.store.engine import SQLITE_PAGE_SIZE
from chat.store.store import SCHEMA_HEAD

ROOT = sqlite_schema.SCHEMA.parents[2]


def made(path, written_schema):
    store = Store(f"sqlite:///{path}")
    store.migrate(written_schema=written_schema)
    store.close()
    return path


def everything(path):
    """Every entry of sqlite_master (shadow tables included), every row of the ordinary tables, two pragmas.

    The full-text indexes' own rows are not compared: the migrations rebuilt them over existing
    messages, which leaves an empty index's structure record encoded otherwise than a new one's;
    SQLite's integrity check of each index stands for them.
    """
    with closing(sqlite3.connect(path)) as conn:
        entries = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        kinds = {name: kind for _, name, kind, *_ in conn.execute("PRAGMA main.table_list")}
        rows = {name: conn.execute(f'SELECT * FROM "{name}"').fetchall()
                for name, kind in kinds.items() if kind == "table" and not name.startswith("sqlite_")}
        for name, kind in kinds.items():
            if kind == "virtual":
                conn.execute(f"INSERT INTO {name} ({name}) VALUES ('integrity-check')")
        pragmas = [conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "journal_mode")]
        return entries, rows, pragmas


def test_the_written_schema_is_what_the_migrations_make(tmp_path):
    migrated = made(tmp_path / "migrated.db", written_schema=False)
    with closing(sqlite3.connect(migrated)) as conn:
        dumped = sqlite_schema.dump(conn)
    assert sqlite_schema.SCHEMA.read_text() == dumped, \
        "chat/store/sqlite_schema.sql differs from the migrations: run .venv/bin/python tools/sqlite_schema.py"


def test_a_new_file_from_the_written_schema_equals_one_the_migrations_made(tmp_path):
    migrated = made(tmp_path / "migrated.db", written_schema=False)
    written = made(tmp_path / "written.db", written_schema=True)
    assert everything(written) == everything(migrated)
    entries, rows, (page_size, journal_mode) = everything(written)
    assert rows["alembic_version"] == [(SCHEMA_HEAD,)]
    assert (page_size, journal_mode) == (SQLITE_PAGE_SIZE, "wal")
    assert any(kind == "trigger" for kind, *_ in entries)


def test_a_file_from_the_written_schema_stores_searches_and_reopens(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/p.db")
    store.migrate()
    assert store.append("a", "ana", "hello there", 1, None)[0]["seq"] == 1
    store.close()
    again = Store(f"sqlite:///{tmp_path}/p.db")
    again.migrate()
    assert again.append("a", "ana", "two", 2, None)[0]["seq"] == 2
    assert [m["text"] for m in again.messages_after("a", 0, 10)] == ["hello there", "two"]
    assert [m["text"] for m in again.search("ana", "hello", None, 10)] == ["hello there"]
    again.close()


def test_a_new_sqlite_database_loads_neither_alembic_nor_sqlalchemy(tmp_path):
    code = ("import sys; from chat.store import Store; s = Store(sys.argv[1]); s.migrate(); s.close(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'sqlalchemy'}))")
    out = subprocess.run([sys.executable, "-c", code, f"sqlite:///{tmp_path}/p.db"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_database_with_a_table_already_is_left_to_the_migrations(tmp_path):
    path = tmp_path / "p.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE someone_elses (x)")
        assert not sqlite_schema.load(conn)
        assert [name for (name,) in conn.execute("SELECT name FROM sqlite_master")] == ["someone_elses"]


def test_a_schema_that_fails_part_way_leaves_the_file_empty(tmp_path):
    broken = tmp_path / "broken.sql"
    broken.write_text("CREATE TABLE a (x);\nCREATE TABLE a (x);\n")
    with closing(sqlite3.connect(tmp_path / "p.db", isolation_level=None)) as conn:
        with pytest.raises(sqlite3.OperationalError):
            sqlite_schema.load(conn, broken)
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_statements_are_split_whole_triggers_included():
    text = "-- a comment\nCREATE TABLE t (x);\n\nCREATE TRIGGER g AFTER INSERT ON t BEGIN\n  DELETE FROM t;\nEND;\n"
    assert sqlite_schema.split(text) == ["CREATE TABLE t (x);",
                                         "CREATE TRIGGER g AFTER INSERT ON t BEGIN\n  DELETE FROM t;\nEND;"]
    with pytest.raises(ValueError, match="ends inside a statement"):
        sqlite_schema.split("CREATE TABLE t (x)")


def test_literals_quote_what_sqlite_reads_back():
    with closing(sqlite3.connect(":memory:")) as conn:
        values = (None, 7, 1.5, "it's", b"\x00\xff")
        assert conn.execute("SELECT " + ", ".join(map(sqlite_schema.literal, values))).fetchone() == values
