"""The `papo` command: run, migrate and notify, as the console entry point declares them."""
import sqlite3
import sys

import pytest
from click.testing import CliRunner

from chat import cli
from tests.conftest import TEST_SECRET


def invoke(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def test_the_command_lists_run_migrate_and_notify():
    answer = invoke("--help")
    assert answer.exit_code == 0
    for command in ("run", "migrate", "notify"):
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


def test_notify_needs_exactly_one_audience(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/n.db", "SECRET_KEY": TEST_SECRET}
    answer = CliRunner().invoke(cli.main, ["notify", "--title", "t"], env=env)
    assert answer.exit_code == 2 and "exactly one of --room, --user or --everyone" in answer.output
