"""Several processes chatting as one: identity, messages, presence, direct messages, notifications, long polls."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.servers import login, post_message, read_messages, request

from .conftest import NOTIFY_TOKEN

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]


def events(client, name):
    with client._lock:
        return [payload for event, payload in client.events if event == name]


def presence(client, room, user):
    return [(e["action"], e["members"]) for e in events(client, "presence") if e["room"] == room and e["user"] == user]


def all_messages(url, token, room):
    """Every stored message of a room, paging through the HTTP reader."""
    found: list[dict] = []
    after = 0
    while True:
        page = read_messages(url, token, room, after=after, limit=500)
        if not page:
            return found
        found += page
        after = page[-1]["seq"]


def test_a_user_registered_on_one_process_signs_in_on_every_other(cluster, user, room):
    name, first_token = user()
    for server in cluster.servers[1:] + [cluster.nginx]:
        token = login(server.url, name)
        assert request(server.url, "GET", f"/api/rooms/{room}/messages?after=0", token=first_token)[0] == 200
        assert request(cluster.servers[0].url, "GET", f"/api/rooms/{room}/messages?after=0", token=token)[0] == 200


def test_every_member_gets_every_message_whichever_process_holds_it(cluster, user, room, clients):
    members = [clients(server.url, user()[1]) for server in cluster.servers]
    for client in members:
        client.join(room)
    acks = [client.send(room, f"from process {i}") for i, client in enumerate(members)]
    assert all(ack["ok"] for ack in acks), acks
    assert sorted(ack["message"]["seq"] for ack in acks) == [1, 2, 3, 4]
    for client in members:
        assert client.wait_until(lambda c: sorted(set(c.seqs(room))) == [1, 2, 3, 4], 5), client.seqs(room)


def test_presence_counts_a_user_once_across_processes_and_announces_once(cluster, user, room, clients):
    watcher_name, watcher_token = user("watch")
    watcher = clients(cluster.servers[3].url, watcher_token)
    watcher.join(room)
    name, token = user("tabs")
    tab_a = clients(cluster.servers[0].url, token)
    tab_b = clients(cluster.servers[1].url, token)
    assert tab_a.join(room)["members"] == sorted([watcher_name, name])
    assert tab_b.join(room)["members"] == sorted([watcher_name, name])
    assert watcher.wait_until(lambda c: presence(c, room, name), 5)
    assert tab_b.send(room, "two tabs, one member")["ok"]  # rooms are listed once they hold a message
    rooms = request(cluster.servers[2].url, "GET", "/api/rooms")[1]["rooms"]
    assert {"name": room, "members": 2, "last_seq": 1} in rooms

    assert tab_a.call("leave", {"room": room})["ok"]
    tab_b.close()
    assert watcher.wait_until(lambda c: len(presence(c, room, name)) == 2, 5)
    time.sleep(0.5)  # a second join or leave would have arrived by now
    assert presence(watcher, room, name) == [("join", sorted([watcher_name, name])), ("leave", [watcher_name])]


def test_direct_messages_and_notifications_reach_every_process(cluster, user, clients):
    sender_name, sender_token = user("dm")
    name, token = user("dm")
    sender = clients(cluster.servers[0].url, sender_token)
    tabs = [clients(cluster.servers[1].url, token), clients(cluster.servers[2].url, token)]
    ack = sender.call("direct", {"to": name, "text": "psst", "client_id": "dm-1"})
    assert ack["ok"], ack
    for client in tabs + [sender]:
        assert client.wait_until(lambda c: any(d["id"] == ack["message"]["id"] for d in events(c, "direct")), 5)

    status, body = request(cluster.servers[3].url, "POST", "/api/notify",
                           {"title": "deploy", "body": "done", "user": name}, token=NOTIFY_TOKEN)
    if status == 404:
        pytest.skip("this build has no /api/notify")
    assert status == 202, body
    for client in tabs:
        assert client.wait_until(lambda c: any(n["id"] == body["id"] for n in events(c, "notification")), 5)


def test_a_long_poll_wakes_for_a_message_stored_by_another_process(cluster, user, room):
    _, token = user()
    first = post_message(cluster.servers[0].url, token, room, "before")
    answer = {}

    def poll():
        started = time.monotonic()
        answer["reply"] = request(cluster.servers[1].url, "GET",
                                  f"/api/rooms/{room}/poll?after={first['seq']}&timeout=10", token=token, timeout=15)
        answer["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)  # the poll is waiting by now
    stored = post_message(cluster.servers[2].url, token, room, "wake up")
    waiter.join(15)
    status, body = answer["reply"]
    assert status == 200 and [m["id"] for m in body["messages"]] == [stored["id"]]
    assert answer["seconds"] < 2.5, answer


def test_a_message_crossing_processes_reaches_everyone_exactly_once_and_wakes_a_poll_elsewhere(
        cluster, user, room, clients):
    """One process stores each message, the others deliver it, each member gets it once; a long poll
    waits on a process just started, with no Socket.IO connection, which only the queue can wake."""
    fresh = cluster.servers[3]
    cluster.restart(fresh)
    _, token = user()
    first = post_message(cluster.servers[0].url, token, room, "before")
    members = [clients(server.url, user()[1]) for server in cluster.servers[:3] for _ in range(2)]
    for client in members:
        client.join(room)
    answer = {}

    def poll():
        started = time.monotonic()
        answer["reply"] = request(fresh.url, "GET", f"/api/rooms/{room}/poll?after={first['seq']}&timeout=25",
                                  token=token, timeout=30)
        answer["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)  # the poll is waiting by now
    acks = [members[1].send(room, f"cross {i}") for i in range(10)]
    assert all(ack["ok"] for ack in acks), acks
    everything = list(range(1, 12))
    for client in members:
        assert client.wait_until(lambda c: len(c.seqs(room)) >= len(everything), 10), client.seqs(room)
    waiter.join(30)
    time.sleep(0.5)  # a repeat would have arrived by now
    for client in members:
        assert sorted(client.seqs(room)) == everything  # each once: no repeat, none missing
    status, body = answer["reply"]
    assert status == 200 and body["messages"][0]["seq"] == 2, body
    assert answer["seconds"] < 15, answer  # woken: a poll nobody wakes returns after its 25 s


@pytest.mark.parametrize("transports", [("polling",), ("polling", "websocket")])
def test_clients_behind_nginx_keep_their_session_on_one_process(cluster, user, room, clients, transports):
    """Long-polling needs every request of a session on the process that holds it: the route cookie does that."""
    client = clients(cluster.url, user()[1], transports=transports)
    client.join(room)
    for i in range(5):
        assert client.send(room, f"hop {i}")["ok"]
    assert client.wait_until(lambda c: sorted(set(c.seqs(room))) == [1, 2, 3, 4, 5], 5)
    assert client.transport == transports[-1]


SENDERS_PER_PROCESS = 8
MESSAGES_PER_SENDER = 20
SEND_SECONDS = 30


def test_four_processes_eight_senders_each_one_room(cluster, user, room, clients):
    """Concurrent writers in different processes: seq 1..N without gap or repeat; every member saw all."""
    places = [server for server in cluster.servers for _ in range(SENDERS_PER_PROCESS)]
    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda _: user("load")[1], places))
        members = list(pool.map(lambda pair: clients(pair[0].url, pair[1]), zip(places, tokens, strict=True)))
        list(pool.map(lambda c: c.join(room), members))
    start = threading.Barrier(len(members))
    deadline = time.monotonic() + SEND_SECONDS

    def send_all(client):
        start.wait()
        acked = []
        for i in range(MESSAGES_PER_SENDER):
            if time.monotonic() > deadline:
                break
            ack = client.send(room, f"m{i}")
            assert ack["ok"], ack
            acked.append(ack["message"]["seq"])
        return acked

    with ThreadPoolExecutor(len(members)) as pool:
        acked = sorted(seq for seqs in pool.map(send_all, members) for seq in seqs)
    total = len(acked)
    assert total >= len(members) * 5, f"only {total} messages in {SEND_SECONDS} s"
    assert acked == list(range(1, total + 1))
    stored = all_messages(cluster.servers[0].url, tokens[0], room)
    assert [m["seq"] for m in stored] == acked
    everything = set(acked)
    for client in members:
        assert client.wait_until(lambda c: set(c.seqs(room)) >= everything, 20), \
            f"missing {sorted(everything - set(client.seqs(room)))[:10]}"


def test_nginx_gives_a_new_client_a_route_cookie_and_keeps_an_existing_one(cluster):
    first = requests.get(cluster.url + "/healthz", timeout=10)
    again = requests.get(cluster.url + "/healthz", cookies={"papo_route": "mine"}, timeout=10)
    assert first.cookies.get("papo_route") and first.cookies.get("papo_route") != "mine"
    assert "HttpOnly" in first.headers["Set-Cookie"] and "Path=/" in first.headers["Set-Cookie"]
    assert "Set-Cookie" not in again.headers


SPREAD_CLIENTS = 12


def test_clients_behind_one_address_spread_over_the_processes_and_keep_polling(cluster, user, room, clients):
    """nginx gives each new client a route cookie of its own: clients from one address (everyone behind a
    NAT) land on several processes, and each long-polling session stays on the process that holds it."""
    before = cluster.settled_connections()
    members = [clients(cluster.url, user()[1], transports=("polling",)) for _ in range(SPREAD_CLIENTS)]
    after = cluster.settled_connections()
    gained = {server.port: after[server] - before[server] for server in cluster.servers}
    assert sum(gained.values()) == SPREAD_CLIENTS, gained
    assert len([n for n in gained.values() if n]) >= 2, gained  # all on one process: 1 chance in 4 ** 11
    for client in members:
        client.join(room)
    for i, client in enumerate(members[:3]):
        assert client.send(room, f"spread {i}")["ok"]
    for client in members:
        assert client.wait_until(lambda c: sorted(c.seqs(room)) == [1, 2, 3], 10), client.seqs(room)
        assert client.transport == "polling"
