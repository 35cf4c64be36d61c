"""Direct conversations like rooms: listed with their read state, caught up with since, read marks that never go
back and reach both users, read receipts in a room's join ack; through the Socket.IO test client and HTTP."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import events


def call(socket, event, **payload):
    return socket.emit(event, payload, callback=True)


def number(message):
    return int(message["id"][1:])


@pytest.fixture
def trio(user, connect):
    """ana, bo and cy, each with one connection; ana has sent bo three direct messages."""
    sockets = {name: connect(user(name)[1]) for name in ("ana", "bo", "cy")}
    for i in range(3):
        assert call(sockets["ana"], "direct", to="bo", text=f"d{i + 1}", client_id=f"c{i}")["ok"]
    for socket in sockets.values():
        socket.get_received()
    return sockets


def test_conversations_list_the_last_message_and_unread_of_each(trio):
    call(trio["cy"], "direct", to="bo", text="from cy", client_id="x")
    listed = call(trio["bo"], "conversations")
    assert listed["ok"] and not listed["has_more"]
    assert [(c["with"], c["last_message"]["text"], c["unread"], c["last_read"]) for c in listed["conversations"]] == [
        ("cy", "from cy", 1, 0), ("ana", "d3", 3, 0)]
    assert [c["with"] for c in call(trio["cy"], "conversations")["conversations"]] == ["bo"]  # never ana and bo's
    ana_view = call(trio["ana"], "conversations")["conversations"]
    assert [(c["with"], c["unread"], c["peer_last_read"]) for c in ana_view] == [("bo", 0, 0)]
    assert call(trio["bo"], "conversations", limit=1) | {"conversations": None} == {
        "ok": True, "conversations": None, "has_more": True}
    assert call(trio["cy"], "conversations", limit=0)["error"]["code"] == "invalid_payload"


def test_history_since_an_id_catches_up_and_carries_the_read_state(trio):
    full = call(trio["bo"], "direct_history", **{"with": "ana"})
    assert [m["text"] for m in full["messages"]] == ["d1", "d2", "d3"]
    assert (full["with"], full["last_read"], full["unread"], full["peer_last_read"]) == ("ana", 0, 3, 0)
    first = full["messages"][0]["id"]
    after = call(trio["bo"], "direct_history", **{"with": "ANA", "since": first})
    assert [m["text"] for m in after["messages"]] == ["d2", "d3"] and not after["has_more"]
    assert after["with"] == "ana"
    page = call(trio["bo"], "direct_history", **{"with": "ana", "since": 0, "limit": 2})
    assert [m["text"] for m in page["messages"]] == ["d1", "d2"] and page["has_more"]
    both = call(trio["bo"], "direct_history", **{"with": "ana", "since": 0, "before": first})
    assert both["error"]["code"] == "invalid_payload"


def test_a_read_mark_never_goes_back_and_reaches_both_users_every_connection(trio, connect, papo):
    second_tab = connect(papo.identity.issue_token("bo")["token"])
    ids = [m["id"] for m in call(trio["bo"], "direct_history", **{"with": "ana"})["messages"]]
    ack = call(trio["bo"], "direct_read", **{"with": "ana", "id": ids[1]})
    assert ack == {"ok": True, "with": "ana", "last_read": int(ids[1][1:]), "unread": 1, "peer_last_read": 0}
    receipt = {"user": "bo", "with": "ana", "last_read": int(ids[1][1:])}
    assert events(second_tab, "direct_read") == [receipt]
    assert events(trio["bo"], "direct_read") == [receipt]
    assert events(trio["ana"], "direct_read") == [receipt]
    assert events(trio["cy"], "direct_read") == []
    assert call(trio["bo"], "direct_read", **{"with": "ana", "id": ids[0]})["last_read"] == int(ids[1][1:])
    assert call(trio["bo"], "direct_read", **{"with": "ana", "id": 10**12})["last_read"] == int(ids[2][1:])
    listed = call(trio["bo"], "conversations")["conversations"]
    assert (listed[0]["unread"], listed[0]["last_read"]) == (0, int(ids[2][1:]))
    assert call(trio["ana"], "conversations")["conversations"][0]["peer_last_read"] == int(ids[2][1:])


def test_a_read_mark_stays_inside_its_conversation(trio):
    other = call(trio["cy"], "direct", to="bo", text="later, from cy", client_id="y")["message"]
    ack = call(trio["bo"], "direct_read", **{"with": "ana", "id": other["id"]})
    assert ack["last_read"] < number(other) and ack["unread"] == 0
    assert call(trio["bo"], "conversations")["conversations"][0] | {"last_message": None} == {
        "with": "cy", "last_message": None, "last_read": 0, "unread": 1, "peer_last_read": 0}
    assert call(trio["cy"], "direct_read", **{"with": "ana", "id": other["id"]})["last_read"] == 0


def test_bad_reads_are_refused(trio):
    assert call(trio["bo"], "direct_read", **{"with": "nobody", "id": 1})["error"]["code"] == "not_found"
    assert call(trio["bo"], "direct_read", **{"with": "ana"})["error"]["code"] == "invalid_payload"
    assert call(trio["bo"], "direct_read", **{"with": "ana", "id": "x"})["error"]["code"] == "invalid_payload"
    assert call(trio["bo"], "direct_read", **{"with": "ana", "id": -1})["error"]["code"] == "invalid_payload"


def test_own_messages_never_count_as_unread(user, connect):
    _, token = user("solo")
    solo = connect(token)
    call(solo, "direct", to="solo", text="a note to self", client_id="n")
    assert [(c["with"], c["unread"]) for c in call(solo, "conversations")["conversations"]] == [("solo", 0)]


def test_http_lists_conversations_reads_and_catches_up(trio, client, papo):
    bo = {"Authorization": f"Bearer {papo.identity.issue_token('bo')['token']}"}
    listed = client.get("/api/conversations", headers=bo).get_json()
    assert [(c["with"], c["unread"]) for c in listed["conversations"]] == [("ana", 3)]
    last = listed["conversations"][0]["last_message"]["id"]
    read = client.post("/api/directs/ana/read", json={"id": last}, headers=bo)
    assert read.status_code == 200 and read.get_json()["unread"] == 0
    assert events(trio["ana"], "direct_read")[0]["user"] == "bo"
    assert client.get(f"/api/directs/ana?since={last}", headers=bo).get_json()["messages"] == []
    assert client.get("/api/conversations").status_code == 401
    assert client.post("/api/directs/ghost/read", json={"id": 1}, headers=bo).status_code == 404
    assert client.get("/api/conversations?limit=x", headers=bo).status_code == 400


def test_a_join_with_receipts_carries_the_furthest_read_marks_of_the_others(user, connect):
    sockets = {name: connect(user(name)[1]) for name in ("ana", "bo", "cy")}
    for socket in sockets.values():
        call(socket, "join", room="seen")
    for i in range(3):
        call(sockets["ana"], "message", room="seen", text=f"m{i}", client_id=f"m{i}")
    call(sockets["bo"], "read", room="seen", seq=3)
    call(sockets["cy"], "read", room="seen", seq=1)
    call(sockets["ana"], "read", room="seen", seq=3)
    ack = call(sockets["ana"], "join", room="seen", since=3, receipts=True)
    assert ack["readers"] == {"bo": 3, "cy": 1}
    assert "readers" not in call(sockets["ana"], "join", room="seen", since=3)
    assert call(sockets["ana"], "join", room="seen", receipts="yes")["error"]["code"] == "invalid_payload"


def test_the_dm_page_of_an_unknown_user_is_not_found_and_a_known_one_takes_its_stored_spelling(client, user):
    user("Ana")
    client.post("/register", data={"username": "zed", "password": "correct-horse", "confirm": "correct-horse"})
    missing = client.get("/dm/nobody")
    assert missing.status_code == 404 and b"nobody" in missing.data
    assert client.get("/dm/ana").headers["Location"].endswith("/dm/Ana")
    assert client.get("/dm/Ana").status_code == 200


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**20), st.text(max_size=8),
                    st.sampled_from(["ana", "bo", "d1", "d2", "0"]), st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.none(), max_size=2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["direct_read", "direct_history", "conversations", "join"]),
       payload=st.fixed_dictionaries({}, optional={"with": scalars, "id": scalars, "since": scalars,
                                                   "before": scalars, "limit": scalars, "room": scalars,
                                                   "receipts": scalars}))
def test_any_payload_gets_an_ack_never_an_error(trio, event, payload):
    ack = trio["bo"].emit(event, payload, callback=True)
    assert ack["ok"] or ack["error"]["code"] in {"invalid_payload", "invalid_room", "not_found", "rate_limited"}
    if ack["ok"] and event == "direct_read":
        assert ack["unread"] >= 0 and ack["last_read"] >= 0
    if ack["ok"] and event == "conversations":
        assert all(c["unread"] >= 0 for c in ack["conversations"])


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store on each database: the conversation queries speak each one's SQL."""
    from tests import test_store

    yield from test_store.open_store(request.param, tmp_path)


def test_the_store_lists_conversations_and_keeps_read_marks_on_both_databases(store):
    for name in ("ana", "Bo", "cy"):
        store.add_user(name, "h", 1)
    sent = [store.add_direct("ana", "Bo", f"d{i}", i, None)[0] for i in range(3)]
    store.add_direct("Bo", "cy", "hi cy", 9, None)
    assert [(c["with"], c["unread"]) for c in store.conversations("Bo", 10)] == [("cy", 0), ("ana", 3)]
    assert store.mark_direct_read("Bo", "ana", number(sent[1])) == number(sent[1])
    assert store.mark_direct_read("Bo", "ana", number(sent[0])) == number(sent[1])
    assert store.direct_state("Bo", "ana") == {"last_read": number(sent[1]), "unread": 1, "peer_last_read": 0}
    assert store.direct_state("ana", "Bo")["peer_last_read"] == number(sent[1])
    assert [m["text"] for m in store.directs_after("ana", "Bo", number(sent[0]), 10)] == ["d1", "d2"]
    listed = store.conversations("ana", 10)
    assert [(c["with"], c["last_message"]["text"], c["peer_last_read"]) for c in listed] == [
        ("Bo", "d2", number(sent[1]))]


def test_search_finds_a_users_direct_messages_and_never_another_pairs_on_both_databases(store):
    for name in ("ana", "Bo", "cy"):
        store.add_user(name, "h", 1)
    store.add_direct("ana", "Bo", "the <b>quick</b> fox", 1, None)
    store.add_direct("Bo", "ana", "quick reply", 2, None)
    store.add_direct("cy", "Bo", "quick from cy", 3, None)
    found = store.search_directs("ana", "QUICK", None, 10)
    assert [(m["kind"], m["peer"], m["text"]) for m in found] == [
        ("direct", "Bo", "quick reply"), ("direct", "Bo", "the <b>quick</b> fox")]
    assert "<mark>quick</mark>" in found[1]["snippet"] and "&lt;b&gt;" in found[1]["snippet"]
    assert found[0]["from"] == "Bo" and found[0]["to"] == "ana" and found[0]["id"].startswith("d")
    assert [m["peer"] for m in store.search_directs("Bo", "qui", None, 10)] == ["cy", "ana", "ana"]  # a prefix
    assert [m["text"] for m in store.search_directs("Bo", "quick", "cy", 10)] == ["quick from cy"]
    assert store.search_directs("cy", "fox", None, 10) == []  # ana and Bo's conversation is theirs alone
    assert store.search_directs("cy", "quick", "ana", 10) == []
    assert store.search_directs("ana", "!!!", None, 10) == []
    assert len(store.search_directs("Bo", "quick", None, 1)) == 1
    store.add_direct("ana", "Bo", "quick again", 4, None)  # indexed before the next search
    assert store.search_directs("Bo", "again", None, 10)[0]["text"] == "quick again"


def test_the_migration_indexes_the_direct_messages_stored_before_it(tmp_path):
    from chat.store import Store
    from tests.test_store import database_at

    url = f"sqlite:///{tmp_path}/old.db"
    database_at(url, "0006", "INSERT INTO directs (sender, recipient, text, ts) VALUES ('ana', 'bo', 'vintage', 1)")
    db = Store(url)
    db.migrate()
    try:
        assert [m["text"] for m in db.search_directs("bo", "vintage", None, 10)] == ["vintage"]
        assert db.search_directs("cy", "vintage", None, 10) == []
        db.add_direct("bo", "ana", "vintage too", 2, None)
        assert [m["text"] for m in db.search_directs("ana", "vintage", None, 10)] == ["vintage too", "vintage"]
    finally:
        db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=60))
def test_any_text_searches_direct_messages_without_a_database_error(store, q):
    if not store.search_directs("ana", "seed", None, 1):
        store.add_direct("ana", "bo", "seed 'quoted' & (paren) NEAR* \"x\" :* ünïcode", 1, None)
    for found in store.search_directs("ana", q, None, 5):
        assert found["peer"] == "bo"
