"""The rough edges a new user met (issue 17), in real Chromium against a real server: the length
limit said before it bites, links, the scroll position on a phone, error pages, the monitor's words
and the member list while offline."""
import json
import re
import urllib.error
import urllib.request

import pytest

from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, Person, expect, wait_for

pytestmark = pytest.mark.browser
ADMIN = "boss"
PHONE = {"width": 390, "height": 844}
LIMIT = 4000


@pytest.fixture
def server(tmp_path):
    """The suite's server with an admin (ADMIN_USERS) for the monitor's link and page."""
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "ADMIN_USERS": ADMIN}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as proc:
        yield proc


def post_messages(page, room, texts):
    """Store texts in room through the HTTP API, as the page's user, oldest first."""
    page.evaluate("""async ([room, texts]) => {
        for (const [n, text] of texts.entries()) {
          const r = await fetch(`/api/rooms/${room}/messages`, {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({text, client_id: `seed-${n}`})});
          if (!r.ok) throw new Error(`seed ${n}: ${r.status}`);
        }
    }""", [room, texts])


def fully_visible(page, selector):
    """Tell whether the element is inside both the message scroller and the window, top and bottom."""
    return page.evaluate("""(selector) => {
        const r = document.querySelector(selector).getBoundingClientRect();
        const s = document.getElementById('scroller').getBoundingClientRect();
        return r.top >= s.top - 1 && r.bottom <= s.bottom + 1 && r.bottom <= window.innerHeight + 1 && r.top >= 0;
    }""", selector)


def test_the_counter_shows_near_the_limit_and_a_long_message_is_refused_not_cut(person):
    alice = person("alice")
    page = alice.open_room("long")
    counter = page.locator("#composer-count")
    expect(counter).to_have_attribute("aria-live", "polite")
    page.fill("#composer-text", "x" * 100)
    expect(counter).to_have_text("")
    page.fill("#composer-text", "x" * (LIMIT - 10))
    expect(counter).to_have_text("10 characters left")
    # Emoji count one each, as the server counts them: 3,999 of them fit although they are 7,998 UTF-16 units.
    page.fill("#composer-text", "😀" * (LIMIT - 1))
    expect(counter).to_have_text("1 characters left")
    too_long = "y" * (LIMIT + 5)
    page.fill("#composer-text", too_long)
    assert page.input_value("#composer-text") == too_long  # nothing cuts it while typing
    expect(counter).to_have_text(f"5 characters over the limit of {LIMIT}")
    expect(page.locator("#composer-text")).to_have_attribute("aria-invalid", "true")
    page.press("#composer-text", "Enter")
    refusal = re.compile(rf"^Not sent: .*at most {LIMIT}.*Shorten it by 5")
    expect(page.locator("#composer-feedback")).to_have_text(refusal)
    assert page.input_value("#composer-text") == too_long  # kept for the writer to shorten
    expect(page.locator("#messages li")).to_have_count(0)
    assert page.evaluate("window.papoState.outbox.length") == 0
    page.press("#composer-text", "Backspace")
    expect(page.locator("#composer-feedback")).to_have_text(re.compile("Not sent"))  # still over
    page.fill("#composer-text", "z" * LIMIT)
    expect(page.locator("#composer-feedback")).to_have_text("")
    page.press("#composer-text", "Enter")
    expect(alice.message("z" * LIMIT, status="delivered")).to_have_count(1)
    expect(counter).to_have_text("")


def test_the_server_refuses_an_over_long_message_with_the_contracts_error(person, server):
    alice = person("alice")
    page = alice.open_room("long")
    answer = page.evaluate("""async (n) => {
        const r = await fetch('/api/rooms/long/messages', {method: 'POST',
                              headers: {'Content-Type': 'application/json'},
                              body: JSON.stringify({text: 'w'.repeat(n), client_id: 'too-long'})});
        return [r.status, await r.json()];
    }""", LIMIT + 1)
    assert answer[0] == 400 and answer[1]["error"]["code"] == "invalid_message"
    assert page.locator("#composer-text").get_attribute("maxlength") is None  # the page cuts nothing either


def test_an_empty_send_says_why_nothing_was_sent(person):
    alice = person("alice")
    page = alice.open_room("empty")
    page.fill("#composer-text", "   \n  ")
    page.press("#composer-text", "Enter")
    feedback = page.locator("#composer-feedback")
    expect(feedback).to_have_text("Nothing to send: type a message first.")
    expect(feedback).to_have_attribute("role", "status")
    page.click("#composer button[type=submit]")
    expect(feedback).to_have_text("Nothing to send: type a message first.")
    page.type("#composer-text", "ok")
    expect(feedback).to_have_text("")
    page.press("#composer-text", "Enter")
    expect(alice.message("ok", status="delivered")).to_have_count(1)


def test_links_become_anchors_and_no_other_markup_gets_through(person):
    alice, bob = person("alice"), person("bob")
    alice.open_room("links")
    bob.open_room("links")
    texts = ["see https://example.com/a?b=1&c=2.", "<b>x</b>", "javascript:alert(1)",
             'data:text/html,<script>alert(1)</script> "https://example.org/q"']
    for text in texts:
        alice.say(text)
        expect(bob.message(text, status="delivered")).to_have_count(1)
    page = bob.page
    anchors = page.locator("#messages li .text a")
    expect(anchors).to_have_count(2)
    assert anchors.evaluate_all("as => as.map(a => [a.getAttribute('href'), a.textContent, a.rel, a.target])") == [
        ["https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2", "noopener noreferrer nofollow", "_blank"],
        ["https://example.org/q", "https://example.org/q", "noopener noreferrer nofollow", "_blank"],
    ]
    # Nothing but text and those anchors in any message's text; the text reads as typed.
    tags = page.locator("#messages li .text *").evaluate_all("ns => ns.map(n => n.tagName)")
    assert tags == ["A", "A"]
    assert bob.texts() == texts
    bob.message("javascript:alert(1)").locator(".text").click()
    page.wait_for_timeout(200)  # a click that ran script would have opened a dialog by now
    assert alice.dialogs == [] and bob.dialogs == [] and bob.errors == []


def settled(page):
    """Wait for the fonts and two animation frames: every layout change made so far is on screen."""
    page.evaluate("""async () => {
        await document.fonts.ready;
        for (let i = 0; i < 2; i++) await new Promise((done) => requestAnimationFrame(done));
    }""")


def test_on_a_phone_the_newest_message_is_fully_in_view_after_load(person):
    alice = person("alice", viewport=PHONE)
    page = alice.open_room("phone")
    post_messages(page, "phone", [f"line {n}\nsecond line of {n}" for n in range(1, 31)])
    for _ in range(3):  # the first load, then reloads with the page's stored state, as a phone user would
        page.reload()
        alice.wait_online()
        expect(alice.message("line 30\nsecond line of 30", status="delivered")).to_have_count(1)
        expect(page.locator("#messages li.msg")).to_have_count(30)
        expect(page.locator("#members li")).to_have_count(1)
        settled(page)
        assert fully_visible(page, "#messages li:last-child")
        # The page itself does not scroll: only the message list does.
        assert page.evaluate("document.scrollingElement.scrollHeight <= window.innerHeight")


def test_new_messages_below_shows_when_scrolled_up_and_brings_them_into_view(person):
    alice, bob = person("alice", viewport=PHONE), person("bob")
    page = alice.open_room("below")
    post_messages(page, "below", [f"early {n}" for n in range(1, 41)])
    page.reload()
    alice.wait_online()
    expect(alice.message("early 40")).to_have_count(1)
    hint = page.locator("#new-below")
    expect(hint).to_be_hidden()
    page.evaluate("document.getElementById('scroller').scrollTop = 300")
    bob.open_room("below")
    bob.say("news from bob")
    expect(alice.message("news from bob", status="delivered")).to_have_count(1)
    expect(hint).to_be_visible()
    assert not fully_visible(page, "#messages li:last-child")
    hint.focus()
    page.keyboard.press("Enter")  # a keyboard user can take it too
    expect(hint).to_be_hidden()
    wait_for(page, """(() => { const s = document.getElementById('scroller');
                              return s.scrollHeight - s.scrollTop - s.clientHeight < 2; })()""")
    assert fully_visible(page, "#messages li:last-child")
    bob.say("more news")  # following the newest again: it comes into view, no hint
    expect(alice.message("more news", status="delivered")).to_have_count(1)
    wait_for(page, """(() => { const s = document.getElementById('scroller');
                              return s.scrollHeight - s.scrollTop - s.clientHeight < 2; })()""")
    expect(hint).to_be_hidden()


def test_scrolling_up_loads_older_history_and_keeps_the_position(person):
    alice = person("alice", viewport=PHONE)
    page = alice.open_room("older")
    post_messages(page, "older", [f"old {n}" for n in range(1, 121)])
    page.reload()
    alice.wait_online()
    expect(alice.message("old 120")).to_have_count(1)
    assert alice.texts()[0] == "old 71"
    expect(page.locator("#load-older")).to_be_visible()  # kept for keyboard users
    anchor = alice.message("old 71")
    page.evaluate("document.getElementById('scroller').scrollTop = 0")
    expect(alice.message("old 21")).to_have_count(1)
    # The message that was on top stays where it was: the earlier ones came in above it, out of view.
    wait_for(page, """(() => {
        const s = document.getElementById('scroller').getBoundingClientRect();
        const r = [...document.querySelectorAll('#messages li .text')].find(t => t.textContent === 'old 71')
                  .getBoundingClientRect();
        return r.top >= s.top && r.top < s.top + 200;
    })()""")
    assert alice.texts()[0] in ("old 21", "old 1")
    assert anchor.is_visible()
    page.evaluate("document.getElementById('scroller').scrollTop = 0")
    expect(alice.message("old 1")).to_have_count(1)
    expect(page.locator("#load-older")).to_be_hidden()
    assert alice.texts() == [f"old {n}" for n in range(1, 121)]


def test_the_member_list_greys_out_while_offline(person, server):
    alice, bob = person("alice"), person("bob")
    page = alice.open_room("offline")
    bob.open_room("offline")
    members = page.locator("#members")
    expect(members.locator("li")).to_have_count(2)
    expect(members).to_have_attribute("data-stale", "false")
    expect(page.locator("#members-status")).to_have_text("")
    online = members.locator("li").first.evaluate("li => getComputedStyle(li).color")
    server.kill()
    expect(page.locator("#connection")).to_have_attribute("data-status", "offline")
    expect(members).to_have_attribute("data-stale", "true")
    expect(page.locator("#members-status")).to_have_text("You are offline: who is here may have changed.")
    expect(members).to_have_attribute("aria-describedby", "members-status")
    greyed = members.locator("li").first.evaluate("li => getComputedStyle(li).color")
    muted = page.evaluate("getComputedStyle(document.querySelector('.hint.muted')).color")
    assert greyed == muted and greyed != online
    server.start()
    expect(page.locator("#connection")).to_have_attribute("data-status", "online", timeout=30_000)
    expect(members).to_have_attribute("data-stale", "false")
    expect(page.locator("#members-status")).to_have_text("")


def get(url, headers=None):
    """GET without following redirects: (status, headers, body)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read().decode()


def test_error_pages_have_a_title_a_sentence_and_a_way_back(person, server):
    alice = person("alice")
    page = alice.page
    for path, status, title in (("/monitor", 403, "Not allowed"), ("/room/Bad%20Name!", 404, "Not found"),
                                ("/no/such/page", 404, "Not found")):
        response = page.goto(f"{server.url}{path}")
        assert response.status == status, path
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("main p.sentence")).not_to_be_empty()
        back = page.locator("main a", has_text="Back to the lobby")
        expect(back).to_have_attribute("href", "/")
    back.click()
    page.wait_for_url(f"{server.url}/")
    # The API keeps its JSON errors, for HTML clients' pages and API calls alike.
    status, headers, body = get(f"{server.url}/api/no-such-route", {"Accept": "application/json"})
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "not_found"


def test_a_room_name_in_capitals_redirects_to_the_canonical_name(person, server):
    alice = person("alice")
    page = alice.page
    answer = page.request.get(f"{server.url}/room/General", max_redirects=0)
    assert answer.status in (301, 308) and answer.headers["location"] == "/room/general"
    page.goto(f"{server.url}/room/General")
    page.wait_for_url(f"{server.url}/room/general")
    alice.wait_online()
    expect(page.locator("h1")).to_have_text("#general")


def test_an_admin_has_a_link_to_the_monitor_and_others_do_not(chromium, server):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        boss = Person(context, server.url, ADMIN).register()
        link = boss.page.locator("header a", has_text="Monitor")
        expect(link).to_have_attribute("href", "/monitor")
        link.click()
        boss.page.wait_for_url(f"{server.url}/monitor")
    finally:
        context.close()
    context = chromium.new_context()
    try:
        other = Person(context, server.url, "someone-else").register()
        other.wait_online()
        expect(other.page.locator("header a", has_text="Monitor")).to_have_count(0)
    finally:
        context.close()


def test_monitor_labels_users_and_connections_and_keeps_the_last_latency(chromium, server):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        boss = Person(context, server.url, ADMIN).register()
        chat = boss.open_room("ops", page=boss.new_page())
        page = boss.page
        page.goto(f"{server.url}/monitor")
        expect(page.locator('[data-tile="users"] .tile-label')).to_have_text("Users online")
        expect(page.locator('[data-tile="connections"] .tile-label')).to_have_text("Connections")
        legend = page.locator('figure[data-chart="connections"] .u-legend .u-label')
        expect(legend).to_have_text(["Time", "Users online", "WebSocket connections", "Polling connections"])
        users = page.locator('[data-tile="users"] .value')
        connections = page.locator('[data-tile="connections"] .value')
        expect(users).to_have_text("1")
        expect(connections).to_have_text("2")  # the chat tab and the monitor's own
        boss.say("measure me", page=chat)
        p50 = page.locator('[data-tile="p50"] .value')
        expect(p50).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
        # Traffic pauses: the last value stays, with its age.
        expect(page.locator('[data-tile="p50"] .age')).to_have_text(re.compile(r"^\d+ s ago$"), timeout=10_000)
        expect(p50).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    finally:
        context.close()
