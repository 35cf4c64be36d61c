"""The store's chat state: revs, changes to messages, read marks and search, on SQLite and PostgreSQL."""
import threading

import pytest

from chat.store import Store
from tests.test_store import store  # noqa: F401  (the fixture: every test on both databases)


def edit(text):
    return lambda message: {"text": text, "edited_at": 5}


def test_changes_take_the_rooms_next_rev_and_repeats_take_none(store):  # noqa: F811
    for i in range(3):
        store.append("a", "ana", f"m{i}", 1, None)
    store.append("b", "ana", "other room", 1, None)
    first, changed = store.change_message("a", 2, edit("fixed"))
    assert changed and first["rev"] == 1 and first["text"] == "fixed" and first["edited_at"] == 5
    again, changed_again = store.change_message("a", 2, edit("fixed"))
    assert not changed_again and again == first
    assert store.change_message("a", 1, lambda m: {"deleted": True, "text": ""})[0]["rev"] == 2
    assert store.change_message("b", 1, edit("x"))[0]["rev"] == 1
    assert store.last_rev("a") == 2 and store.last_rev("b") == 1 and store.last_rev("never") == 0
    assert store.change_message("a", 9, edit("x")) is None


def test_changed_messages_are_read_back_changed_in_rev_order(store):  # noqa: F811
    for i in range(4):
        store.append("a", "ana", f"m{i}", 1, None)
    store.change_message("a", 3, edit("three"))
    store.change_message("a", 1, lambda m: {"reactions": {"👍": ["bo"]}})
    store.change_message("a", 4, edit("four"))
    assert [m["seq"] for m in store.changed_since("a", 3, 0, 500)] == [3, 1]
    assert [m["seq"] for m in store.changed_since("a", 4, 1, 500)] == [1, 4]
    history = store.messages_after("a", 0, 10)
    assert history[0]["reactions"] == {"👍": ["bo"]} and history[2]["text"] == "three"
    assert history[1] == {**history[1], "rev": 0, "edited_at": None, "deleted": False, "reactions": {}}


def test_a_refused_change_changes_nothing(store):  # noqa: F811
    store.append("a", "ana", "m", 1, None)

    def refuse(message):
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        store.change_message("a", 1, refuse)
    assert store.last_rev("a") == 0


def test_revs_stay_gap_free_under_four_concurrent_editors(tmp_path):
    db = Store(f"sqlite:///{tmp_path}/revs.db")
    db.migrate()
    for i in range(8):
        db.append("a", "ana", f"m{i}", 1, None)
    revs, errors = [], []

    def editor(n):
        try:
            for i in range(25):
                outcome = db.change_message("a", 1 + (i + n) % 8, edit(f"e{n}-{i}"))
                assert outcome is not None and outcome[1]
                message = outcome[0]
                revs.append(message["rev"])
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.close()
    assert not errors
    assert sorted(revs) == list(range(1, 101))


def test_read_marks_never_go_back_nor_past_the_last_seq(store):  # noqa: F811
    for i in range(5):
        store.append("a", "ana", f"m{i}", 1, None)
    assert store.mark_room_read("a", "Bo", 3) == (3, 5)
    assert store.mark_room_read("a", "bo", 2) == (3, 5)
    assert store.mark_room_read("a", "bo", 99) == (5, 5)
    assert store.last_read("a", "BO") == 5 and store.last_read("a", "ana") == 0
    assert store.read_marks("bo") == {"a": 5}
    assert store.mark_room_read("nowhere", "bo", 1) is None


def test_search_finds_words_newest_first_never_deleted_nor_private(store):  # noqa: F811
    store.append("a", "ana", "the <b>quick</b> brown fox", 1, None)
    store.append("a", "ana", "a quick note", 2, None)
    store.append("a", "ana", "quick but deleted", 3, None)
    store.change_message("a", 3, lambda m: {"deleted": True, "text": ""})
    store.create_room("secret", "ana", True, 1)
    store.append("secret", "ana", "quick secret", 4, None)
    found = store.search("bo", "QUICK", None, 10)
    assert [m["text"] for m in found] == ["a quick note", "the <b>quick</b> brown fox"]
    assert "<mark>quick</mark>" in found[1]["snippet"] and "&lt;b&gt;" in found[1]["snippet"]
    assert [m["room"] for m in store.search("ana", "quick", None, 10)][0] == "secret"
    assert store.search("ana", "quick", "a", 1)[0]["seq"] == 2
    assert store.search("bo", "qui", None, 10)  # the last word is a prefix
    assert store.search("bo", "!!!", None, 10) == []


def test_search_follows_edits(store):  # noqa: F811
    store.append("a", "ana", "teh typo", 1, None)
    store.change_message("a", 1, edit("the fix"))
    assert store.search("bo", "teh", None, 10) == []
    assert store.search("bo", "fix", None, 10)[0]["seq"] == 1


def test_revs_stay_gap_free_with_two_stores_on_one_database(store):  # noqa: F811
    """Two Store objects stand for two server processes: the room's row (or SQLite's lock) orders their revs."""
    other = Store(store.url)
    for i in range(4):
        store.append("a", "ana", f"m{i}", 1, None)
    revs, errors = [], []

    def editor(db, n):
        try:
            for i in range(20):
                revs.append(db.change_message("a", 1 + (i + n) % 4, edit(f"e{n}-{i}"))[0]["rev"])
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=editor, args=(db, n)) for n, db in enumerate([store, other, store, other])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert not errors
    assert sorted(revs) == list(range(1, 81)) and store.last_rev("a") == 80


def test_search_follows_edits_and_deletions_of_messages_already_indexed(store):  # noqa: F811
    store.append("a", "ana", "alpha beta", 1, None)
    store.append("a", "ana", "gamma", 1, None)
    assert len(store.search("bo", "alpha", None, 10)) == 1 and len(store.search("bo", "gamma", None, 10)) == 1
    store.change_message("a", 1, edit("delta"))
    store.change_message("a", 2, lambda m: {"deleted": True, "text": ""})
    assert store.search("bo", "alpha", None, 10) == [] and store.search("bo", "gamma", None, 10) == []
    assert [m["seq"] for m in store.search("bo", "delta", None, 10)] == [1]
    store.append("a", "ana", "delta again", 1, None)
    assert [m["seq"] for m in store.search("bo", "delta", None, 10)] == [3, 1]


def test_the_migration_indexes_the_messages_stored_before_it(tmp_path):
    from tests.test_store import database_at

    url = f"sqlite:///{tmp_path}/old.db"
    database_at(url, "0003", "INSERT INTO rooms (name, last_seq, created_at) VALUES ('old', 1, 1)",
                "INSERT INTO messages (room_id, seq, author, text, ts) VALUES (1, 1, 'ana', 'vintage', 1)")
    db = Store(url)
    db.migrate()
    try:
        assert [m["text"] for m in db.search("bo", "vintage", None, 10)] == ["vintage"]
        assert db.messages_after("old", 0, 10)[0]["rev"] == 0
    finally:
        db.close()


def test_a_change_reaches_the_recent_window_a_rejoin_reads(tmp_path):
    db = Store(f"sqlite:///{tmp_path}/recent.db")
    db.migrate()
    db.claim()
    try:
        for i in range(3):
            db.append("a", "ana", f"m{i}", 1, None)
        assert db.messages_after("a", 0, 10)[1]["text"] == "m1"  # loads the room's window
        outcome = db.change_message("a", 2, edit("m1, fixed"))
        assert outcome is not None and db.recent is not None
        changed = outcome[0]
        assert (db.recent.after("a", 0, 10) or [])[1] == changed
        assert db.messages_before("a", None, 10)[1] == changed
    finally:
        db.close()


def test_a_restarted_server_knows_its_rooms_and_read_marks_before_its_first_client(tmp_path):
    url = f"sqlite:///{tmp_path}/restart.db"
    db = Store(url)
    db.migrate()
    db.claim()
    db.append("a", "ana", "m", 1, None)
    db.change_message("a", 1, edit("m, fixed"))
    db.create_room("secret", "ana", True, 1)
    db.mark_room_read("a", "Bo", 1)
    db.close()
    db = Store(url)
    db.migrate()
    db.claim()
    try:
        def no_read(work, *args):
            raise AssertionError(f"read the database: {work.__name__}{args}")

        db._read = no_read  # type: ignore[method-assign]
        assert db.last_rev("a") == 1 and db.last_rev("empty") == 0
        assert db.last_read("a", "bo") == 1 and db.last_read("a", "ana") == 0
        assert db.room_privacy("a") == (False, None)
        db.ensure_room("a")
        assert db.mark_room_read("a", "ana", 1) == (1, 1) and db.last_read("a", "ANA") == 1
        with pytest.raises(AssertionError, match="read the database"):
            db.room_privacy("secret")  # a private room's privacy is read each time, as before
    finally:
        db.close()
