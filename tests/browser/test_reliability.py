"""The client never loses a message: server crashes, restarts and page reloads."""
import json

import pytest
from .conftest import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

RECONNECT = 30_000  # ms: the client retries with a back-off of at most 4 s


def stored(person, room):
    """The room's messages as the server has them, read through the page's own session."""
    return person.page.evaluate(
        """async (room) => (await (await fetch(`/api/rooms/${room}/messages?after=0&limit=100`)).json()).messages""",
        room)


def test_server_killed_while_sending_loses_nothing(person, server):
    alice, bob = person("alice"), person("bob")
    alice.open_room("crash")
    bob.open_room("crash")
    alice.say("before the crash")
    expect(bob.message("before the crash", status="delivered")).to_have_count(1)

    server.kill()
    for someone in (alice, bob):
        expect(someone.page.locator("#connection")).to_have_attribute("data-status", "offline")
    alice.say("sent into the void")
    bob.say("bob one")
    bob.say("bob two")
    expect(alice.message("sent into the void", status="pending")).to_have_count(1)
    expect(bob.message("bob one", status="pending")).to_have_count(1)
    expect(bob.message("bob two", status="pending")).to_have_count(1)
    expect(alice.page.locator("#connection")).to_contain_text("1 waiting")

    server.start()
    for someone in (alice, bob):
        expect(someone.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    for someone in (alice, bob):
        expect(someone.message("sent into the void", status="delivered")).to_have_count(1)
        expect(someone.message("bob two", status="delivered")).to_have_count(1)
        expect(someone.page.locator('#messages li[data-status="pending"]')).to_have_count(0)
    server_texts = [m["text"] for m in stored(alice, "crash")]
    assert sorted(server_texts) == sorted(["before the crash", "sent into the void", "bob one", "bob two"])
    assert server_texts.index("bob one") < server_texts.index("bob two")
    for someone in (alice, bob):  # both pages show exactly what the server stored, in seq order
        assert someone.texts() == server_texts
        seqs = [int(s) for s in someone.page.locator("#messages li").evaluate_all(
            "(items) => items.map((li) => li.dataset.seq)")]
        assert seqs == [1, 2, 3, 4]
    assert alice.page.evaluate("localStorage.length") >= 1
    assert alice.page.evaluate("window.papoState.outbox.length") == 0


def test_messages_missed_while_offline_arrive_in_order(person, server):
    """A page that was cut off rejoins with `since` and gets what others said meanwhile, in order."""
    alice, bob = person("alice"), person("bob")
    alice.open_room("gap")
    bob.open_room("gap")
    alice.cut_off()
    server.kill()  # both lose their connection; only bob may reconnect
    server.start()
    bob_page = bob.page
    expect(bob_page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    for n in range(1, 6):
        bob.say(f"meanwhile {n}")
    expect(bob.message("meanwhile 5", status="delivered")).to_have_count(1)
    expect(alice.page.locator("#connection")).not_to_have_attribute("data-status", "online")
    assert alice.texts() == []
    alice.reconnect()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    expect(alice.message("meanwhile 5")).to_have_count(1)
    assert alice.texts() == [f"meanwhile {n}" for n in range(1, 6)]


def test_a_page_coming_back_rejoins_its_room_in_the_handshake(person, server):
    """After a restart the page asks for its room in the Socket.IO handshake (`auth.join` with `since`)
    and sends no `join` event: the server's `joined` answer is enough."""
    alice, bob = person("alice"), person("bob")
    frames = []
    alice.page.on("websocket", lambda socket: socket.on("framesent", lambda frame: frames.append(frame)))
    alice.open_room("back")
    bob.open_room("back")
    alice.say("before")
    expect(alice.message("before", status="delivered")).to_have_count(1)
    server.kill()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "offline")
    server.start()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    expect(bob.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    bob.say("after")
    expect(alice.message("after")).to_have_count(1)
    connects = [n for n, frame in enumerate(frames) if isinstance(frame, str) and frame.startswith("40")]
    assert len(connects) >= 2, frames
    asked = json.loads(frames[connects[-1]][2:])["join"]
    assert [(a["room"], a["since"]) for a in asked] == [("back", 1)]
    assert not [f for f in frames[connects[-1]:] if isinstance(f, str) and f.startswith("42") and '"join"' in f]
    assert alice.texts() == ["before", "after"]


def test_a_page_holding_more_rooms_than_a_handshake_carries_still_connects(person, server):
    """101 rooms in the page's storage: the handshake asks for 100 (the one on screen first), the last by a
    `join`, which the server refuses as before (`MAX_ROOMS_PER_CONNECTION`, 100): one room fails, not the page."""
    alice = person("alice")
    frames = []
    alice.page.on("websocket", lambda socket: socket.on("framesent", lambda frame: frames.append(frame)))
    alice.open_room("first")
    alice.page.evaluate("""(user) => localStorage.setItem(`papo:v1:${user.toLowerCase()}:rooms`,
        JSON.stringify(Object.fromEntries(Array.from({length: 101}, (_, n) => [`many-${n}`, {read: null}]))))""",
                        alice.name)
    frames.clear()
    alice.open_room("many-100")
    alice.say("still here")
    expect(alice.message("still here", status="delivered")).to_have_count(1)
    connect = json.loads(next(f for f in frames if isinstance(f, str) and f.startswith("40"))[2:])
    asked = [a["room"] for a in connect["join"]]
    assert len(asked) == 100 and asked[0] == "many-100"
    joined_by_event = [json.loads(f[f.index("["):])[1]["room"] for f in frames
                       if isinstance(f, str) and f.startswith("42") and '"join"' in f]
    held = {f"many-{n}" for n in range(101)}
    assert set(joined_by_event) == held - set(asked) and len(joined_by_event) == 1
    states = {}
    for _ in range(100):  # every room answered, by either way, within 10 s
        states = alice.page.evaluate("Object.fromEntries([...window.papoState.rooms].map(([n, r]) => [n, r.state]))")
        if "joining" not in states.values():
            break
        alice.page.wait_for_timeout(100)
    assert set(states) == held
    assert {name for name, state in states.items() if state != "joined"} == set(joined_by_event), states
    assert alice.page.evaluate("(name) => window.papoState.rooms.get(name).error?.code", joined_by_event[0]) \
        == "forbidden"


def test_rooms_asked_in_a_handshake_the_server_ignores_are_joined_by_the_event(person, server):
    """A server from before `auth.join` answers no `joined`: after its ack timeout the page joins by the event."""
    alice = person("alice")
    sent = []

    def as_an_older_server_hears_it(socket):
        upstream = socket.connect_to_server()

        def forward(frame):
            if isinstance(frame, str) and frame.startswith("40"):
                auth = json.loads(frame[2:] or "{}")
                auth.pop("join", None)
                frame = "40" + json.dumps(auth)
            sent.append(frame)
            upstream.send(frame)

        socket.on_message(forward)

    alice.page.route_web_socket("**/socket.io/**", as_an_older_server_hears_it)
    alice.page.goto(f"{alice.base_url}/room/older")
    alice.page.wait_for_selector(f'#members li[data-user="{alice.name}"]', timeout=20_000)
    alice.say("joined all the same")
    expect(alice.message("joined all the same", status="delivered")).to_have_count(1)
    assert [f for f in sent if f.startswith("42") and '"join"' in f and '"older"' in f]


def test_reload_keeps_a_pending_message_and_delivers_it_later(person, server):
    alice, bob = person("alice"), person("bob")
    alice.open_room("reload")
    bob.open_room("reload")
    server.kill()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "offline")
    alice.say("survives a reload")
    expect(alice.message("survives a reload", status="pending")).to_have_count(1)

    # The server comes back, but alice's page may not reach its socket yet: it reloads offline.
    alice.cut_off()
    server.start()
    alice.page.reload()
    expect(alice.message("survives a reload", status="pending")).to_have_count(1)
    expect(alice.page.locator("#connection")).not_to_have_attribute("data-status", "online")
    expect(bob.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    assert bob.texts() == []

    alice.reconnect()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    expect(alice.message("survives a reload", status="delivered")).to_have_count(1)
    expect(bob.message("survives a reload", status="delivered")).to_have_count(1)
    alice.page.reload()
    alice.wait_online()
    expect(alice.message("survives a reload")).to_have_count(1)
    assert [m["text"] for m in stored(alice, "reload")] == ["survives a reload"]


def test_a_retry_of_an_unanswered_send_is_shown_once(person, server):
    """The ack is lost (server killed right after storing): the resend returns the same message."""
    alice, bob = person("alice"), person("bob")
    alice.open_room("retry")
    bob.open_room("retry")
    # Store a message with alice's next client_id behind the page's back, as if the ack got lost.
    alice.page.evaluate("""() => {
        const box = document.getElementById('composer-text');
        box.value = 'stored twice?';
    }""")
    server.kill()
    alice.page.press("#composer-text", "Enter")
    entry = alice.page.evaluate("window.papoState.outbox[0]")
    server.start()
    status = alice.page.evaluate(
        """async (e) => (await fetch(`/api/rooms/retry/messages`, {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({text: e.text, client_id: e.client_id})})).status""", entry)
    assert status in (200, 201)
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    for someone in (alice, bob):
        expect(someone.message("stored twice?", status="delivered")).to_have_count(1)
        someone.page.wait_for_timeout(500)
        expect(someone.message("stored twice?")).to_have_count(1)
    assert [m["text"] for m in stored(alice, "retry")] == ["stored twice?"]


def test_a_long_absence_is_caught_up_past_the_replay_limit(person, server):
    """Over 500 messages missed: the rejoin answers `truncated`, the client fetches the rest by seq."""
    alice, bob = person("alice"), person("bob")
    alice.open_room("backlog")
    bob.open_room("backlog")
    alice.cut_off()
    server.kill()
    server.start()
    expect(bob.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    posted = bob.page.evaluate("""async () => {
        let ok = 0;
        for (let n = 1; n <= 520; n++) {
          const r = await fetch('/api/rooms/backlog/messages', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({text: `backlog ${n}`, client_id: `backlog-${n}`})});
          if (r.ok) ok++;
        }
        return ok;
    }""")
    assert posted == 520
    expect(bob.message("backlog 520")).to_have_count(1)
    alice.reconnect()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    expect(alice.message("backlog 520")).to_have_count(1)
    assert alice.texts() == [f"backlog {n}" for n in range(1, 521)]
