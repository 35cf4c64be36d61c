"""The start log's line: which features run, the database's kind, the instance folder; never a secret."""
import concurrent.futures
import contextlib
import dataclasses
import logging
import socket
import subprocess
import sys

from chat import ROOT
from chat.config import Settings
from chat.server import start_line


def line(**settings):
    return start_line(dataclasses.replace(Settings(), **settings), "/srv/papo/instance")


def test_the_defaults_say_what_is_off_and_where_the_instance_folder_is():
    said = line(DATABASE_URL="sqlite:////srv/papo/instance/papo.db")
    assert said == ("features: notify off (NOTIFY_TOKEN unset); monitor admins: none (ADMIN_USERS unset); "
                    "Redis: off (one process); database: SQLite /srv/papo/instance/papo.db; "
                    "instance folder: /srv/papo/instance")


def test_features_on_are_named_without_their_secrets():
    said = line(NOTIFY_TOKEN="a-very-secret-notify-token", ADMIN_USERS=("boss", "ana"),
                REDIS_URL="redis://:hunter2-redis@cache.internal:6380/2",
                DATABASE_URL="postgresql://papo:hunter2-pg@db.internal:5433/papo", SECRET_KEY="s" * 32)
    assert "notify on;" in said
    assert "monitor admins: boss, ana;" in said
    assert "Redis: cache.internal:6380/2 (several processes);" in said
    assert "database: PostgreSQL db.internal:5433/papo;" in said
    for secret in ("a-very-secret-notify-token", "hunter2", "papo:", "s" * 32):
        assert secret not in said


def test_a_relative_sqlite_path_is_shown_as_given():
    assert "database: SQLite instance/papo.db;" in line(DATABASE_URL="sqlite:///instance/papo.db")


def test_the_server_logs_it_at_start(tmp_path, monkeypatch, caplog):
    from chat import server

    served = []
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/papo.db")
    monkeypatch.setenv("SECRET_KEY", "start-log-test-secret-key")
    monkeypatch.setenv("ADMIN_USERS", "boss")
    monkeypatch.setattr(server, "_freeze_startup_objects", lambda: None)  # leave this test process's gc alone
    monkeypatch.setattr(server, "_allow_open_files", lambda connections: None)
    monkeypatch.setattr(server, "_serve_threading", lambda app, listener, limit, papo: served.append((listener, papo)))
    with caplog.at_level(logging.INFO, logger="papo.server"):
        assert server.main("threading", socket.create_server(("127.0.0.1", 0))) == 0
    [(listener, papo)] = served
    listener.close()
    if getattr(papo, "monitor", None) is not None:
        papo.monitor.stop()
    papo.store.close()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features:")]
    assert len(said) == 1 and "monitor admins: boss;" in said[0] and f"SQLite {tmp_path}/papo.db" in said[0]


def test_the_command_line_is_checked_before_anything_loads(tmp_path):
    """A port out of range, or one already taken, stops app.py at once with one line and status 2."""

    def run(*args):
        done = subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/papo.db"})
        return done.returncode, done.stderr

    code, said = run("--port", "70000")
    assert code == 2 and "70000 is not a port (0-65535)" in said
    code, said = run("--port", "many")
    assert code == 2 and "invalid port value: 'many'" in said
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        code, said = run("--port", str(busy))
    assert code == 2 and said.strip() == f"papo: cannot listen on 127.0.0.1:{busy}: Address already in use"


def start(database_url):
    """(status, stderr) of app.py started on a free port with this database."""
    done = subprocess.run([sys.executable, "app.py", "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url,
                                           "SECRET_KEY": "s" * 32})
    return done.returncode, done.stderr


def test_a_database_that_cannot_be_opened_stops_the_start_with_one_line(tmp_path):
    code, said = start(f"sqlite:///{tmp_path}/missing/papo.db")
    assert code == 2 and said.strip() == (f"papo: cannot use the database SQLite {tmp_path}/missing/papo.db: "
                                          "unable to open database file")


def test_a_database_server_that_refuses_stops_the_start_with_one_line_without_the_password():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    code, said = start(f"postgresql://papo:hunter2@127.0.0.1:{port}/papo")
    assert code == 2 and len(said.strip().splitlines()) == 1, said
    assert said.startswith(f"papo: cannot use the database PostgreSQL 127.0.0.1:{port}/papo: connection failed")
    assert "Connection refused" in said and "hunter2" not in said


def test_a_database_server_that_never_answers_is_tried_once_before_the_start_gives_up():
    """Its connect timeout runs out once: the schema check no longer hands the same failure to the upgrade."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, says nothing
        silent.settimeout(0.2)
        port = silent.getsockname()[1]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = pool.submit(start, f"postgresql://papo@127.0.0.1:{port}/papo")
            attempts = []
            while not started.done():
                with contextlib.suppress(TimeoutError):
                    attempts.append(silent.accept()[0])
            code, said = started.result()
    for conn in attempts:
        conn.close()
    assert code == 2 and said.strip().endswith(f"127.0.0.1:{port}/papo: connection timeout expired"), said
    assert len(attempts) == 1
