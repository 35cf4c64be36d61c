"""Direct conversations against real server processes: a DM sent while its recipient is offline is listed unread
and its history loads when they connect; read marks never go back and reach every tab at once; a client that
was away catches up with since, exactly once each, also after the server's kill -9."""
import pytest

from tests.servers import register, request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def call_ok(client, event, payload):
    ack = client.call(event, payload)
    assert ack["ok"], ack
    return ack


def number(message):
    return int(message["id"][1:])


def test_a_direct_sent_while_offline_is_listed_unread_and_its_history_loads(server, user, open_client):
    (ana, ana_token), (bo, bo_token) = user("ana"), user("bo")
    sender = open_client(server.url, ana_token)
    sent = [call_ok(sender, "direct", {"to": bo, "text": f"while you were out {n}", "client_id": f"o{n}"})["message"]
            for n in (1, 2)]

    tab = open_client(server.url, bo_token)
    listed = call_ok(tab, "conversations", {})["conversations"]
    assert [(c["with"], c["unread"], c["last_read"], c["last_message"]) for c in listed] == [(ana, 2, 0, sent[-1])]
    history = call_ok(tab, "direct_history", {"with": ana})
    assert history["messages"] == sent and history["unread"] == 2 and not history["has_more"]
    status, body = request(server.url, "GET", "/api/conversations", token=bo_token)
    assert status == 200 and body["conversations"] == listed


def test_read_never_goes_back_and_two_tabs_hear_it_at_once(server, user, open_client):
    (ana, ana_token), (bo, bo_token) = user("ana"), user("bo")
    sender = open_client(server.url, ana_token)
    sent = [call_ok(sender, "direct", {"to": bo, "text": f"m{n}", "client_id": f"r{n}"})["message"] for n in range(3)]
    first_tab, second_tab = open_client(server.url, bo_token), open_client(server.url, bo_token)

    ack = call_ok(first_tab, "direct_read", {"with": ana, "id": sent[1]["id"]})
    assert (ack["last_read"], ack["unread"]) == (number(sent[1]), 1)
    receipt = {"user": bo, "with": ana, "last_read": number(sent[1])}
    for client in (second_tab, sender):
        assert client.wait_until(lambda c: ("direct_read", receipt) in c.events), client.events
    assert call_ok(second_tab, "direct_read", {"with": ana, "id": sent[0]["id"]})["last_read"] == number(sent[1])
    status, body = request(server.url, "POST", f"/api/directs/{ana}/read", {"id": 1}, token=bo_token)
    assert status == 200 and body["last_read"] == number(sent[1])
    assert call_ok(first_tab, "conversations", {})["conversations"][0]["unread"] == 1
    call_ok(second_tab, "direct_read", {"with": ana, "id": sent[2]["id"]})
    assert call_ok(first_tab, "conversations", {})["conversations"][0]["unread"] == 0
    assert call_ok(sender, "direct_history", {"with": bo})["peer_last_read"] == number(sent[2])


@pytest.mark.parametrize("fresh_server", ["eventlet", "gevent"], indirect=True)
def test_a_client_away_catches_up_with_since_exactly_once_after_a_kill(fresh_server, open_client):
    ana_token, bo_token = register(fresh_server.url, "ana"), register(fresh_server.url, "bo")
    sender, reader = open_client(fresh_server.url, ana_token), open_client(fresh_server.url, bo_token)
    held = call_ok(reader, "direct_history", {"with": "ana"})["messages"]
    for n in range(3):
        call_ok(sender, "direct", {"to": "bo", "text": f"live {n}", "client_id": f"l{n}"})
    assert reader.wait_until(lambda c: sum(name == "direct" for name, _ in c.events) == 3)
    held += [payload for name, payload in reader.events if name == "direct"]
    reader.close()

    call_ok(sender, "direct", {"to": "bo", "text": "away 1", "client_id": "a1"})
    fresh_server.kill()
    fresh_server.start()
    sender = open_client(fresh_server.url, ana_token)
    for n in range(2, 5):  # a retry of a stored one is not a new message
        call_ok(sender, "direct", {"to": "bo", "text": f"away {n}", "client_id": f"a{n}"})
    call_ok(sender, "direct", {"to": "bo", "text": "away 4, again", "client_id": "a4"})

    reader = open_client(fresh_server.url, bo_token)
    since = held[-1]["id"]
    caught = []
    while True:
        page = call_ok(reader, "direct_history", {"with": "ana", "since": since, "limit": 2})
        caught += page["messages"]
        if not page["has_more"]:
            break
        since = page["messages"][-1]["id"]
    assert [m["text"] for m in held + caught] == ["live 0", "live 1", "live 2", "away 1", "away 2", "away 3", "away 4"]
    assert page["unread"] == 7 and page["last_read"] == 0
