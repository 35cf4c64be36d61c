"""A new SQLite database gets the schema the migrations make, from chat/store/sqlite_schema.sql."""
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
    """A new database at path, from the written schema or by the migrations."""
    store = Store(f"sqlite:///{path}")
    store.migrate(written_schema=written_schema)
    store.close()
    return path


def schema_of(conn: sqlite3.Connection) -> dict:
    """What a database's schema is, in whatever order its CREATE TABLE statements list their parts.

    The migrations rebuild tables through Alembic's batch mode, which lists a table's constraints in
    an order that varies from run to run (a set's), so two files the migrations made can differ in
    their statements' text and not in their schema. Per table: its statement's lines as a set, its
    columns in order, its indexes and foreign keys, and an ordinary table's rows; every other
    statement (indexes, triggers) as written.
    """
    kinds = {name: kind for _, name, kind, *_ in conn.execute("PRAGMA main.table_list")}
    found: dict = {}
    for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
        if kind != "table" or name.startswith("sqlite_"):
            found[name] = sql
            continue
        indexes = []
        for _, index, unique, origin, partial in conn.execute(f'PRAGMA index_list("{name}")'):
            columns = tuple(column for *_, column in conn.execute(f'PRAGMA index_info("{index}")'))
            indexes.append((unique, origin, partial, columns))
        found[name] = {
            "lines": sorted(line.strip().rstrip(",").strip() for line in sql.splitlines()),
            "columns": conn.execute(f'PRAGMA table_xinfo("{name}")').fetchall(),
            "indexes": sorted(indexes),
            "foreign keys": sorted(row[2:] for row in conn.execute(f'PRAGMA foreign_key_list("{name}")')),
            "rows": conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall()
            if kinds.get(name) == "table" else None,
        }
    return found


def shape(path):
    """The database's schema (schema_of), after SQLite's integrity check of each full-text index.

    The full-text indexes' own rows are not part of it: the migrations rebuilt them over existing
    messages, which leaves an empty index's structure record encoded otherwise than a new one's.
    """
    with closing(sqlite3.connect(path)) as conn:
        for (name,) in conn.execute("SELECT name FROM pragma_table_list WHERE type = 'virtual'").fetchall():
            conn.execute(f"INSERT INTO {name} ({name}) VALUES ('integrity-check')")
        return schema_of(conn)


def test_a_new_file_from_the_written_schema_has_the_schema_the_migrations_make(tmp_path):
    migrated = made(tmp_path / "migrated.db", written_schema=False)
    written = made(tmp_path / "written.db", written_schema=True)
    assert shape(written) == shape(migrated), \
        "chat/store/sqlite_schema.sql is not what the migrations make: run .venv/bin/python tools/sqlite_schema.py"
    with closing(sqlite3.connect(written)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(SCHEMA_HEAD,)]
        assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert sqlite_schema.dump(conn) == sqlite_schema.SCHEMA.read_text()  # written by dump, not by hand


def test_two_files_the_migrations_made_can_differ_in_text_and_not_in_shape(tmp_path):
    """Alembic's batch mode lists a rebuilt table's constraints in a set's order: the reason for schema_of()."""
    one, two = made(tmp_path / "one.db", written_schema=False), tmp_path / "two.db"
    with closing(sqlite3.connect(one)) as source, closing(sqlite3.connect(two)) as copy:
        for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"):
            lines = sql.splitlines()
            constraints = [i for i, line in enumerate(lines) if "CONSTRAINT" in line]
            assert len(constraints) == 2
            first, second = constraints
            lines[first], lines[second] = lines[second], lines[first]
            copy.execute("CREATE TABLE rooms (id INTEGER PRIMARY KEY)")
            copy.execute("\n".join(lines))
        for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' "
                                     "AND sql IS NOT NULL"):
            copy.execute(sql)
        swapped = schema_of(copy)["messages"]
        assert swapped == schema_of(source)["messages"]


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
