"""Sessions in real Chromium: the page refreshes its identity by itself, and shows why it was signed out."""
import json
import re
import urllib.request

import pytest

from tests.servers import ServerProcess

from .conftest import NOTIFY_TOKEN, Person, expect

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


def test_the_page_refreshes_its_identity_before_it_expires(chromium, tmp_path):
    with ServerProcess("eventlet", f"sqlite:///{tmp_path}/papo.db", env={"TOKEN_TTL": "5"}) as server:
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
