"""The `papo` command: run, migrate, vacuum and notify, as the console entry point declares them."""
import sqlite3
import sys
from contextlib import closing

import pytest
from click.testing import CliRunner

from chat import cli
from chat.store import Store, engine
from chat.store.engine import SQLITE_PAGE_SIZE
from tests.conftest import TEST_SECRET


def invoke(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def test_the_command_lists_run_migrate_vacuum_and_notify():
    answer = invoke("--help")
    assert answer.exit_code == 0
    for command in ("run", "migrate", "vacuum", "notify"):
        assert f"  {command} " in answer.output


def test_run_starts_app_py_in_a_fresh_interpreter(monkeypatch):
    started = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: started.append((path, argv)))
    invoke("run", "--host", "127.0.0.2", "--port", "5099")
    [(path, argv)] = started
    assert path == sys.executable
    assert argv[1].endswith("app.py") and argv[2:] == ["--host", "127.0.0.2", "--port", "5099"]


def test_migrate_brings_an_empty_database_to_the_newest_schema(tmp_path):
    database = tmp_path / "fresh.db"
    answer = invoke("migrate", env={"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": TEST_SECRET})
    assert answer.exit_code == 0, answer.output
    tables = {row[0] for row in sqlite3.connect(database).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "users", "rooms", "messages"} <= tables
    assert invoke("migrate", env={"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": TEST_SECRET}).exit_code == 0


def test_migrate_names_a_bad_setting(tmp_path):
    answer = CliRunner().invoke(cli.main, ["migrate"], env={"DATABASE_URL": "mysql://x", "SECRET_KEY": TEST_SECRET})
    assert answer.exit_code == 1 and "DATABASE_URL must be" in answer.output


def test_migrate_names_a_database_it_cannot_open(tmp_path):
    answer = CliRunner().invoke(cli.main, ["migrate"], env={"DATABASE_URL": f"sqlite:///{tmp_path}/no/papo.db",
                                                           "SECRET_KEY": TEST_SECRET})
    assert answer.exit_code == 1
    said = f"Error: cannot use the database SQLite {tmp_path}/no/papo.db: unable to open database file\n"
    assert answer.output == said


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_migrate_refuses_an_in_memory_database_in_one_line(url):
    answer = CliRunner().invoke(cli.main, ["migrate"], env={"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET})
    assert answer.exit_code == 1
    assert answer.output.startswith("Error: DATABASE_URL: an in-memory SQLite database cannot be shared")
    assert len(answer.output.splitlines()) == 1


def test_vacuum_rewrites_a_file_of_an_earlier_papo_with_small_pages_and_keeps_every_message(tmp_path):
    database = tmp_path / "old.db"
    with closing(sqlite3.connect(database)) as conn:  # an earlier Papo's file: SQLite's default page size, in WAL
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
    env = {"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": TEST_SECRET}
    assert invoke("migrate", env=env).exit_code == 0
    # written here rather than by a Store, whose threads close their connections only after its close() returns
    with closing(sqlite3.connect(database, isolation_level=None)) as conn:
        conn.executemany("INSERT INTO rooms (id, name, created_at) VALUES (?, ?, 1)",
                         [(room, f"room-{room}") for room in range(3)])
        conn.executemany("INSERT INTO messages (room_id, seq, author, text, ts, client_id) "
                         "VALUES (?, ?, 'ana', ?, 1, ?)",
                         [(n % 3, n // 3 + 1, f"message {n}", f"c{n}") for n in range(300)])
    answer = invoke("vacuum", env=env)
    assert answer.exit_code == 0, answer.output
    assert answer.output.startswith(f"rewriting SQLite {database}: ")
    assert "in pages of 4,096 -> " in answer.output and answer.output.endswith(f"in pages of {SQLITE_PAGE_SIZE:,}\n")
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = Store(env["DATABASE_URL"])
    store.migrate()
    assert [m["seq"] for m in store.messages_after("room-1", 0, 200)] == list(range(1, 101))
    assert store.append("room-1", "ana", "message 1 again", 1, "c1")[1] is False  # the client_id index survived
    store.close()


def test_vacuum_refuses_a_file_its_server_serves_a_missing_file_and_a_postgresql_database(tmp_path):
    url = f"sqlite:///{tmp_path}/served.db"
    server = Store(url)
    server.migrate()
    server.claim()
    try:
        answer = CliRunner().invoke(cli.main, ["vacuum"], env={"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET})
    finally:
        server.close()
    assert answer.exit_code == 1 and "Error: another Papo server serves" in answer.output
    missing = tmp_path / "typo.db"
    answer = CliRunner().invoke(cli.main, ["vacuum"], env={"DATABASE_URL": f"sqlite:///{missing}",
                                                          "SECRET_KEY": TEST_SECRET})
    assert (answer.exit_code, answer.output) == (1, f"Error: there is no database file at {missing}\n")
    assert not missing.exists()
    answer = CliRunner().invoke(cli.main, ["vacuum"], env={"DATABASE_URL": "postgresql://papo@127.0.0.1:9/papo",
                                                          "SECRET_KEY": TEST_SECRET})
    assert answer.exit_code == 1
    assert answer.output == ("Error: papo vacuum rewrites a SQLite file, not PostgreSQL 127.0.0.1:9/papo: "
                             "PostgreSQL's autovacuum looks after its own\n")


def test_vacuum_of_a_file_another_process_is_reading_says_so_in_one_line(tmp_path, monkeypatch):
    database = tmp_path / "read.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": TEST_SECRET}
    assert invoke("migrate", env=env).exit_code == 0
    monkeypatch.setattr(engine, "SQLITE_PRAGMAS", tuple(p for p in engine.SQLITE_PRAGMAS
                                                        if not p.startswith("busy_timeout")) + ("busy_timeout=100",))
    reader = sqlite3.connect(database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()
    try:
        answer = CliRunner().invoke(cli.main, ["vacuum"], env=env)
    finally:
        reader.close()
    assert answer.exit_code == 1
    assert answer.output.splitlines()[-1] == f"Error: could not rewrite SQLite {database}: database is locked"
    assert invoke("vacuum", env=env).exit_code == 0


def test_notify_needs_exactly_one_audience(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/n.db", "SECRET_KEY": TEST_SECRET}
    answer = CliRunner().invoke(cli.main, ["notify", "--title", "t"], env=env)
    assert answer.exit_code == 2 and "exactly one of --room, --user or --everyone" in answer.output
