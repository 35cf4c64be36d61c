import random
import sqlite3
import threading
from contextlib import closing

import pytest

from chat.store import Store
from chat.store.engine import SQLITE_PAGE_SIZE
from tests.services import PG_ADMIN, fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Every store test on both databases: the message path speaks each one's SQL directly."""
    yield from open_store(request.param, tmp_path)


def database_at(url, revision, *statements):
    """Create a SQLite database at url migrated only up to revision, then run statements in it."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from chat.store.store import MIGRATIONS

    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def open_store(kind, tmp_path):
    """Yield a migrated store on a fresh database of that kind ("sqlite" or "postgresql"), then drop it."""
    if kind == "sqlite":
        store = Store(f"sqlite:///{tmp_path}/store.db")
        store.migrate()
        yield store
        store.close()
        return
    with fresh_database("papo_store") as url:
        store = Store(url)
        try:
            store.migrate()
            yield store
        finally:
            store.close()


def test_seq_starts_at_one_per_room_and_grows_by_one(store):
    seqs = [store.append("a", "ana", f"m{i}", 1, None)[0]["seq"] for i in range(3)]
    assert seqs == [1, 2, 3]
    assert store.append("b", "ana", "x", 1, None)[0]["seq"] == 1
    assert store.last_seq("a") == 3
    assert store.last_seq("never") == 0


def test_a_repeated_client_id_returns_the_first_message(store):
    first, created = store.append("a", "ana", "hello", 1, "c1")
    again, created_again = store.append("a", "ana", "hello (retry)", 2, "c1")
    assert created and not created_again
    assert again == first
    assert store.last_seq("a") == 1


def test_the_same_client_id_from_another_author_or_room_is_a_new_message(store):
    store.append("a", "ana", "x", 1, "c1")
    assert store.append("a", "bo", "x", 1, "c1")[1]
    assert store.append("b", "ana", "x", 1, "c1")[1]


def test_seq_survives_reopening_the_database(tmp_path):
    url = f"sqlite:///{tmp_path}/again.db"
    first = Store(url)
    first.migrate()
    first.append("a", "ana", "one", 1, None)
    first.close()
    second = Store(url)
    second.migrate()
    assert second.append("a", "ana", "two", 1, None)[0]["seq"] == 2
    second.close()


def page_size(path):
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


def test_a_new_sqlite_file_takes_papos_page_size_and_a_file_made_before_keeps_its_own(tmp_path):
    """Small pages: a message rewrites a page's worth in the WAL for each index it enters (SQLITE_PAGE_SIZE)."""
    new = Store(f"sqlite:///{tmp_path}/new.db")
    new.migrate()
    new.append("a", "ana", "one", 1, None)
    new.close()
    assert page_size(tmp_path / "new.db") == SQLITE_PAGE_SIZE < 4096
    database_at(f"sqlite:///{tmp_path}/old.db", "head")  # made by SQLAlchemy, as a file of an earlier Papo
    assert page_size(tmp_path / "old.db") == 4096
    old = Store(f"sqlite:///{tmp_path}/old.db")
    old.migrate()
    old.append("a", "ana", "one", 1, None)
    assert [m["text"] for m in old.messages_after("a", 0, 10)] == ["one"]
    old.close()
    assert page_size(tmp_path / "old.db") == 4096


def test_stores_opening_a_fresh_file_at_once_all_write(tmp_path):
    """A fresh file is switched to WAL by migrate(), alone: switching it from several connections at
    once fails some of them at once with "database is locked" (SQLite takes no busy wait for it)."""
    for trial in range(30):
        url = f"sqlite:///{tmp_path}/fresh-{trial}.db"
        Store(url).migrate()
        failed = first_writes_at_once([Store(url) for _ in range(4)])
        assert not failed, f"trial {trial}: {failed}"


def first_writes_at_once(stores):
    """Each store's first message, all started together; the exceptions they raised. Closes the stores."""
    start = threading.Barrier(len(stores))
    failed: list[BaseException] = []

    def first_write(store, n):
        start.wait()
        try:
            store.append("fresh", f"u{n}", "hello", 1, f"c{n}")
        except Exception as error:
            failed.append(error)

    threads = [threading.Thread(target=first_write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return failed


def test_concurrent_writers_and_retries_leave_no_gap_and_no_repeat(tmp_path):
    url = f"sqlite:///{tmp_path}/race.db"
    Store(url).migrate()
    stores = [Store(url) for _ in range(4)]

    def write(store, author):
        for i in range(25):
            store.append("race", author, f"{author}-{i}", 1, f"{author}-{i}")
            store.append("race", author, f"{author}-{i}", 1, f"{author}-{i}")

    threads = [threading.Thread(target=write, args=(s, f"u{n}")) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [m["seq"] for m in stores[0].messages_after("race", 0, 1000)]
    assert seqs == list(range(1, 101))
    for store in stores:
        store.close()


def test_postgresql_writers_of_several_processes_batch_over_the_same_rooms_without_gaps_or_deadlocks(tmp_path):
    """Each store's writer locks a batch's rooms, in name order, until its commit: batches over the same rooms
    in every order, from four stores on one database, as four processes would, all commit and number each
    room's messages 1, 2, 3... once each."""
    opened = open_store("postgresql", tmp_path)
    first = next(opened)
    stores = [first] + [Store(first.url) for _ in range(3)]
    rooms = [f"room{n}" for n in range(8)]
    for room in rooms:
        first.ensure_room(room)
    failures = []

    def write(store, author, seed):
        order = random.Random(seed)
        try:
            for i in range(30):
                batch = order.sample(rooms, k=order.randint(1, len(rooms)))
                for pending in [store.queue_append(room, author, f"{i}", 1, None) for room in batch]:
                    pending.result()
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(s, f"u{n}", n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        counts = [len(first.messages_after(room, 0, 10_000)) for room in rooms]
        for room, count in zip(rooms, counts, strict=True):
            assert [m["seq"] for m in first.messages_after(room, 0, 10_000)] == list(range(1, count + 1))
            assert first.last_seq(room) == count
        assert sum(counts) > 4 * 30
    finally:
        for store in stores[1:]:
            store.close()
        next(opened, None)


def test_replay_and_history_windows(store):
    for i in range(10):
        store.append("a", "ana", f"m{i}", 1, None)
    assert [m["seq"] for m in store.messages_after("a", 7, 10)] == [8, 9, 10]
    assert [m["seq"] for m in store.messages_before("a", 5, 2)] == [3, 4]
    assert [m["seq"] for m in store.messages_before("a", None, 3)] == [8, 9, 10]


def test_usernames_are_unique_case_insensitively(store):
    assert store.add_user("Ana", "h", 1) == "Ana"
    assert store.add_user("ana", "h", 1) is None
    assert store.find_user("ANA").username == "Ana"


def test_direct_messages_deduplicate_by_sender_and_client_id(store):
    first, created = store.add_direct("ana", "bo", "psst", 1, "d1")
    again, created_again = store.add_direct("ana", "bo", "psst", 2, "d1")
    assert created and not created_again and again == first


def test_schema_head_names_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from chat.store.store import MIGRATIONS, SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_only_a_database_behind_the_head_is_upgraded(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    database_at(url, "0009")
    store = Store(url)
    try:
        assert not store._at_head()
        store.migrate()
        assert store._at_head()
        assert store.append("a", "ana", "after the upgrade", 1, None)[0]["seq"] == 1
    finally:
        store.close()
    new = Store(f"sqlite:///{tmp_path}/new.db")
    assert not new._at_head()
    new.close()


def test_the_migrations_build_exactly_the_schema_the_code_declares(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from chat.store.schema import metadata
    from chat.store.engine import database_url
    from chat.store.schema import is_declared

    engine = create_engine(database_url(store.url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": is_declared})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_one_read_of_many_users_unread_gives_each_what_its_own_read_gives(store):
    from chat.store import queries

    for n in range(12):
        store.add_notification(["ana", "bo", "cy"][n % 3], f"t{n}", "", "info", n)
    store.mark_read("ana", up_to=int(store.notifications("ana")[1]["id"][1:]))
    store.mark_read("bo", ids=[int(store.notifications("bo")[2]["id"][1:])])
    store.mark_read("cy", up_to=10 ** 9)
    users = ["ana", "bo", "cy", "dee"]
    for limit in (1, 2, 100):
        together = store.connector.read(queries.unread_of_users, users, limit)
        alone = {user: store.notifications(user, limit=limit, unread=True) for user in users}
        assert together == {user: notes for user, notes in alone.items() if notes}
        assert [store.unread_notifications(user, limit) for user in users] == list(alone.values())


def test_one_batch_numbers_each_rooms_messages_in_order_creates_new_rooms_and_repeats_a_client_id(store):
    from chat.store import queries

    store.ensure_room("b")
    store.append("b", "ana", "before", 1, None)
    items = [("b", "ana", "1", 2, "x"), ("a", "bo", "2", 2, None), ("new", "cy", "3", 2, "y"),
             ("b", "ana", "repeat of x", 2, "x"), ("a", "bo", "4", 2, "z"), ("b", "dee", "5", 2, None),
             ("new", "cy", "6", 2, None)]
    store.ensure_room("a")
    outcomes = store.connector.write(queries.insert_messages, items, 2)
    got = [(m["room"], m["seq"], m["text"], created) for m, created in outcomes]
    assert got == [("b", 2, "1", True), ("a", 1, "2", True), ("new", 1, "3", True), ("b", 2, "1", False),
                   ("a", 2, "4", True), ("b", 3, "5", True), ("new", 2, "6", True)]
    for room, texts in (("a", ["2", "4"]), ("b", ["before", "1", "5"]), ("new", ["3", "6"])):
        stored = store.connector.read(queries.messages_after, room, 0, 10)
        assert [m["text"] for m in stored] == texts
        assert [m["seq"] for m in stored] == list(range(1, len(texts) + 1))
        assert {m["id"] for m in stored} >= {m["id"] for m, _ in outcomes if m["room"] == room}


def test_a_batch_stores_each_item_once_in_rooms_old_and_new_and_tells_what_it_created(store):
    """The writer's batch: one statement where the rooms exist, a transaction that creates the others,
    items one by one when a client_id was stored before; only what it created is told, in the writer."""
    store.ensure_room("old")
    store.append("old", "ana", "earlier", 1, "taken")
    told: list[dict] = []
    store._commits._committed = told.extend
    items = [("old", "ana", "1", 2, "x"), ("new", "bo", "2", 2, None), ("old", "ana", "repeat", 2, "x"),
             ("new", "bo", "3", 2, "y"), ("old", "cy", "4", 2, None)]
    outcomes = store._commits.run(items)
    assert [(ok, m["room"], m["seq"], m["text"], created) for ok, (m, created) in outcomes] == [
        (True, "old", 2, "1", True), (True, "new", 1, "2", True), (True, "old", 2, "1", False),
        (True, "new", 2, "3", True), (True, "old", 3, "4", True)]
    assert sorted((m["room"], m["seq"]) for m in told) == [("new", 1), ("new", 2), ("old", 2), ("old", 3)]
    told.clear()
    outcomes = store._commits.run([("old", "ana", "again", 3, "taken"), ("old", "dee", "5", 3, None)])
    assert [(m["text"], m["seq"], created) for _, (m, created) in outcomes] == [("earlier", 1, False), ("5", 4, True)]
    assert [m["text"] for m in told] == ["5"]
    assert [m["seq"] for m in store.messages_after("old", 0, 10)] == [1, 2, 3, 4]
    if store.connector.postgres:  # the statement committed by itself: the writer holds no transaction open
        import psycopg

        writer = store.connector._writer
        assert (writer.info.transaction_status, writer.autocommit) == (psycopg.pq.TransactionStatus.IDLE, False)


def test_the_postgresql_writer_comes_back_after_its_connection_is_killed(tmp_path):
    """A server that closes the writer's connection says so before it goes: the writer sees it, with no
    round trip, and stores on a new connection."""
    import psycopg

    for store in open_store("postgresql", tmp_path):
        store.append("r", "ana", "before", 1, "c1")
        backend = store.connector._writer.info.backend_pid
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,)).fetchone() == (True,)
        message, created = store.append("r", "ana", "after", 2, "c2")  # at once: no idle ping saves it
        assert created and message["seq"] == 2
        assert store.connector._writer.info.backend_pid != backend
        assert [m["text"] for m in store.messages_after("r", 0, 10)] == ["before", "after"]


def test_the_postgresql_search_indexes_keep_no_pending_list(tmp_path):
    """A full pending list is merged by the insert that overflows it: a stall of every process's messages."""
    for store in open_store("postgresql", tmp_path):
        found = store.connector.read(lambda tx: tx.rows(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('messages_fts', 'directs_fts')"))
        assert sorted(found) == [("directs_fts", ["fastupdate=off"]), ("messages_fts", ["fastupdate=off"])]


def test_a_postgresql_read_opens_no_transaction(tmp_path):
    """At READ COMMITTED a BEGIN and a ROLLBACK would be two more round trips through the loop for nothing."""
    import psycopg

    for store in open_store("postgresql", tmp_path):
        store.append("r", "ana", "hi", 1, None)

        def work(tx):
            found = tx.rows("SELECT text FROM messages")
            return found, tx.cursor.connection.info.transaction_status

        assert store.connector.read(work) == ([("hi",)], psycopg.pq.TransactionStatus.IDLE)
        with store.engine.connect() as conn:  # the pool's connection went back as it came: not in autocommit
            assert conn.connection.driver_connection.autocommit is False


def test_a_postgresql_read_comes_back_after_the_pools_connections_are_killed(tmp_path):
    """A PostgreSQL restart leaves every pooled connection dead: a read is served on a new one."""
    import psycopg

    for store in open_store("postgresql", tmp_path):
        store.append("r", "ana", "hi", 1, None)
        held = [store.engine.raw_connection() for _ in range(3)]
        for raw in held:
            raw.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                                   (store.engine.url.database,)).fetchone()
        assert killed is not None and killed[0] >= 3
        for _ in range(3):
            assert [m["text"] for m in store.messages_after("r", 0, 10)] == ["hi"]


def test_a_message_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored(store):
    """The service refuses such text first; should one reach the store, it must not fail its batch's others."""
    store.append("r", "ana", "before", 1, None)
    refused = ["lone \udcff", "nul \x00"] if store.connector.postgres else ["lone \udcff"]
    texts = ["one", refused[0], "two", *refused[1:], "three"]
    gate = threading.Event()
    store._writer.submit(gate.wait)  # the writer busy: everything queued meanwhile is one batch
    try:
        queued = [store.queue_append("r", "ana", text, 1, f"c-{n}") for n, text in enumerate(texts)]
        queued.append(store.queue_append("r", "bo", "a client_id no database takes", 1, "\udcff"))
    finally:
        gate.set()
    outcomes = []
    for pending in queued:
        try:
            outcomes.append(pending.result()[0]["seq"])
        except store.connector.data_errors:
            outcomes.append("refused")
    assert outcomes == [2, "refused", 3, *["refused"] * (len(refused) - 1), 4, "refused"]
    assert [m["text"] for m in store.messages_after("r", 0, 10)] == ["before", "one", "two", "three"]
    assert store.append("r", "ana", "after", 1, None)[0]["seq"] == 5


def test_text_of_any_characters_comes_back_as_it_was_stored(store):
    """Batches travel to PostgreSQL as JSON: escapes, astral characters and quotes must come back unchanged."""
    texts = ["🙂 \U0001f680 astral", 'quotes " and \\ backslash \\u0041', "e\u0301 \u202e rtl", "tab\tand\nlines",
             "\u2028 line separator", "x" * 4000]
    gate = threading.Event()
    store._writer.submit(gate.wait)  # one batch
    try:
        queued = [store.queue_append("u", "ana", text, 1, text[:8]) for text in texts]
    finally:
        gate.set()
    assert [pending.result()[0]["text"] for pending in queued] == texts
    assert [m["text"] for m in store.messages_after("u", 0, 10)] == texts
    assert [m["client_id"] for m in store.messages_after("u", 0, 10)] == [text[:8] for text in texts]
