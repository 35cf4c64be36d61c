"""Sessions in real Chromium: the page refreshes its identity by itself, and shows why it was signed out."""
import json
import os
import re
import urllib.request

import pytest

from tests.services import RedisServer, fresh_database, need_redis
from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, PASSWORD, Person, expect


pytestmark = pytest.mark.browser


def disconnect(server, user, revoke=False):
    request = urllib.request.Request(f"{server.url}/api/users/{user}/disconnect", method="POST",
                                     data=json.dumps({"revoke": revoke}).encode(),
                                     headers={"Authorization": f"Bearer {NOTIFY_TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_an_ended_session_shows_the_signed_out_page_and_does_not_reconnect(person, server):
    alice = person("alice")
    page = alice.open_room("general")
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.on("request", lambda request: sockets.append(request.url))
    assert disconnect(server, alice.name, revoke=True) == {"disconnected": 1}
    page.wait_for_url(re.compile(r"/login\?ended=disconnected_by_admin"))
    expect(page.locator("#signed-out")).to_contain_text("You were signed out: an administrator disconnected you")
    page.wait_for_timeout(1500)  # the client's first retry would come after 500 ms
    assert [url for url in sockets if "/socket.io/" in url] == []
    page.goto(f"{server.url}/")  # the revoked cookie is refused too
    page.wait_for_url(re.compile(r"/login"))


def test_an_admin_whose_session_ends_leaves_the_monitor_for_the_signed_out_page(chromium, tmp_path):
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "ADMIN_USERS": "boss"}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as server:
        context = chromium.new_context()
        try:
            boss = Person(context, server.url, "boss").register()
            page = boss.page
            page.goto(f"{server.url}/monitor")
            expect(page.locator("#monitor-status")).to_have_attribute("data-status", "online")
            assert disconnect(server, "boss", revoke=True)["disconnected"] >= 1
            page.wait_for_url(re.compile(r"/login\?ended=disconnected_by_admin"))
            expect(page.locator("#signed-out")).to_contain_text("an administrator disconnected you")
        finally:
            context.close()


def test_the_page_refreshes_its_identity_before_it_expires(chromium, tmp_path):
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env={"TOKEN_TTL": "5"}) as server:
        context = chromium.new_context()
        try:
            bo = Person(context, server.url, "bo").register()
            page = bo.open_room("general")
            for _ in range(100):  # two expiries of 5 s each, at most 20 s
                if page.evaluate("() => window.papoState.session.refreshes") >= 2:
                    break
                page.wait_for_timeout(200)
            assert page.evaluate("() => window.papoState.session") == {"ended": None, "refreshes": 2}
            bo.wait_online()
            bo.say("still here")
            expect(bo.message("still here", status="delivered")).to_have_count(1)
            page.reload()  # the cookie was renewed beside the token
            bo.wait_online()
        finally:
            context.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two processes in the default mode sharing a Redis of their own and a fresh PostgreSQL database."""
    need_redis()
    with fresh_database("papo_browser_sessions") as url:
        redis = RedisServer().start()
        env = {"REDIS_URL": redis.url, "NOTIFY_TOKEN": NOTIFY_TOKEN}
        servers = [ServerProcess(DEFAULT_MODE, url, env=env) for _ in range(2)]
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.close()
            redis.stop()


def log_in(someone):
    page = someone.page
    page.goto(f"{someone.base_url}/login")
    page.fill("#username", someone.name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{someone.base_url}/")
    return someone


def test_log_out_everywhere_on_one_process_signs_out_the_browser_on_the_other(chromium, pair):
    first, second = pair
    contexts = [chromium.new_context(), chromium.new_context()]
    try:
        here = Person(contexts[0], first.url, f"carla{os.getpid()}").register()
        there = log_in(Person(contexts[1], second.url, here.name))
        page_here, page_there = here.open_room("general"), there.open_room("general")
        sockets = []
        page_there.on("websocket", lambda socket: sockets.append(socket.url))
        page_there.on("request", lambda request: sockets.append(request.url))
        asking = here.new_page()  # a page of no socket of its own, which the revocation does not navigate away
        asking.goto(f"{first.url}/api/rooms")
        answer = asking.evaluate("""async () => {
            const response = await fetch("/api/sessions/revoke", {method: "POST", body: "{}",
                                                                  headers: {"Content-Type": "application/json"}});
            return [response.status, await response.json()];
        }""")
        assert answer == [200, {"revoked": 2}]
        for page in (page_there, page_here):
            page.wait_for_url(re.compile(r"/login\?ended=revoked"))
            expect(page.locator("#signed-out")).to_contain_text("You were signed out: this session was ended")
        page_there.wait_for_timeout(1500)  # the client's first retry would come after 500 ms
        assert [url for url in sockets if "/socket.io/" in url] == []
        page_there.goto(f"{second.url}/room/general")  # the revoked cookie is refused on this process too
        page_there.wait_for_url(re.compile(r"/login"))
    finally:
        for context in contexts:
            context.close()
