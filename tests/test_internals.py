"""chat.internals: its version table matches requirements.txt, a drift stops start-up with one line; its hooks."""
import os
import re
import threading
import time

import pytest

from chat import internals

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pinned():
    """{distribution (lower case): version} of requirements.txt's `name[extras]==version` lines."""
    pins = {}
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        for line in handle:
            match = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#;]+)", line)
            if match:
                pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


@pytest.mark.parametrize("name", sorted(internals.WRITTEN_FOR))
def test_every_hooked_library_is_pinned_at_the_version_its_hooks_were_written_for(name):
    pins = pinned()
    assert name in pins, f"{name} has hooks in chat/internals.py but no pin in requirements.txt"
    assert pins[name] == internals.WRITTEN_FOR[name], (
        f"requirements.txt pins {name} {pins[name]}, chat/internals.py was written for "
        f"{internals.WRITTEN_FOR[name]}: re-read the hooks against the new version, then update WRITTEN_FOR")


def test_the_installed_libraries_are_the_ones_the_hooks_were_written_for():
    internals.check_versions()


def test_a_different_version_stops_start_up_with_one_clear_line():
    installed = dict(internals.WRITTEN_FOR, **{"python-engineio": "4.99.0"})
    with pytest.raises(internals.VersionMismatch) as stopped:
        internals.check_versions(installed)
    message = str(stopped.value)
    assert "\n" not in message
    assert "python-engineio 4.99.0" in message and "4.15.1" in message


def test_a_library_that_is_not_installed_is_not_a_mismatch():
    installed = {name: version for name, version in internals.WRITTEN_FOR.items() if name != "psycopg"}
    internals.check_versions(installed)


def test_a_close_answered_during_a_send_leaves_after_the_message_the_send_made():
    """simple-websocket makes a frame, then writes it; its reader thread answers a close between the two."""
    wire: list[str] = []
    made = threading.Event()

    class TwoStepWebSocket:  # the shape of simple_websocket.Server's send, close and _handle_events
        def send(self, data):
            frame = f"message {data}"  # wsproto made it
            made.set()
            time.sleep(0.05)  # the reader thread runs here
            wire.append(frame)

        def close(self, reason=None, message=None):
            wire.append("close")

        def _handle_events(self):
            wire.append("close answer")

    ws = TwoStepWebSocket()
    internals.order_simple_websocket_sends(ws)
    sender = threading.Thread(target=ws.send, args=("echo",))
    sender.start()
    made.wait(1)
    ws._handle_events()  # the client's close arrived meanwhile
    sender.join(1)
    assert wire == ["message echo", "close answer"]


def test_a_prepared_statement_runs_in_one_libpq_call_and_fails_with_psycopgs_own_errors():
    """The PostgreSQL writer's batch statement: prepared once per connection, integers back as int, text
    as str, and every failure the exception psycopg's own execute raises for it."""
    import psycopg

    from tests.services import PG_ADMIN, fresh_database

    sql = ("INSERT INTO t (name, n) SELECT name, n FROM json_to_recordset($1::json) AS b(name text, n int) "
           "RETURNING id, name, n")
    with fresh_database("papo_internals") as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, name text UNIQUE, n int)")
        rows = internals.pg_prepared_rows(conn, "ins", sql, ['[{"name": "a", "n": 1}, {"name": "é🙂\\"", "n": null}]'])
        assert rows == [(1, "a", 1), (2, 'é🙂"', None)]
        assert internals.pg_prepared_rows(conn, "ins", sql, ['[{"name": "b", "n": 2}]']) == [(3, "b", 2)]
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'ins'").fetchone() == (1,)

        for bad in ('[{"name": "a", "n": 3}]', '[{"name": "c", "n": "x"}]', "not json"):
            with pytest.raises(psycopg.Error) as ours:
                internals.pg_prepared_rows(conn, "ins", sql, [bad])
            with pytest.raises(psycopg.Error) as theirs:
                conn.execute(sql.replace("$1", "%s"), (bad,))
            assert type(ours.value) is type(theirs.value) and ours.value.sqlstate == theirs.value.sqlstate
        assert isinstance(ours.value, psycopg.DataError)

        conn.execute("DEALLOCATE ALL")  # the server forgot it: prepared again
        assert internals.pg_prepared_rows(conn, "ins", sql, ['[{"name": "d", "n": 4}]'])[0][1:] == ("d", 4)

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            internals.pg_prepared_rows(conn, "ins", sql, ['[{"name": "e", "n": 5}]'])
        assert conn.broken
