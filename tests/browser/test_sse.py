"""The room's live page in real Chromium: EventSource shows what curl posts and edits, and resumes after a drop."""
import json
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

from tests.servers import login

from .conftest import PASSWORD, wait_for

pytestmark = pytest.mark.browser


def curl(server, method, path, body, token):
    """Call the API with curl, as a shell script would; the decoded answer."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    done = subprocess.run(["curl", "-sS", "-X", method, "-H", "Content-Type: application/json",
                           "-H", f"Authorization: Bearer {token}", "-d", json.dumps(body), server.url + path],
                          capture_output=True, text=True, timeout=15, check=True)
    return json.loads(done.stdout)


def test_the_live_page_shows_what_curl_posts_and_edits(person, server):
    ana = person("ana")
    page = ana.page
    page.goto(f"{server.url}/room/news/live")
    page.wait_for_selector('#connection[data-status="online"]')
    token = login(server.url, ana.name, PASSWORD)

    posted = curl(server, "POST", "/api/rooms/news/messages", {"text": "posted with curl", "client_id": "c1"},
                  token)["message"]
    item = page.locator(f'#messages li[data-seq="{posted["seq"]}"] .text')
    expect(item).to_have_text("posted with curl")
    curl(server, "PATCH", f"/api/rooms/news/messages/{posted['seq']}", {"text": "edited with curl"}, token)
    expect(item).to_have_text("edited with curl")
    assert page.locator("#messages li").count() == 1
    assert ana.console_errors == [] and ana.errors == []  # the strict CSP lets the page's module run


def test_the_live_page_resumes_after_the_server_restarts(person, server):
    ana = person("ana")
    page = ana.page
    token = login(server.url, ana.name, PASSWORD)
    first = curl(server, "POST", "/api/rooms/news/messages", {"text": "before", "client_id": "b"}, token)["message"]
    page.goto(f"{server.url}/room/news/live")
    page.wait_for_selector('#connection[data-status="online"]')
    expect(page.locator(f'#messages li[data-seq="{first["seq"]}"]')).to_have_count(1)
    server.kill()
    page.wait_for_selector('#connection[data-status="connecting"]')
    server.start()  # posted before the page is back (it waits `retry:`, 3 s): its Last-Event-ID brings them
    later = [curl(server, "POST", "/api/rooms/news/messages", {"text": f"after {n}", "client_id": f"a{n}"},
                  token)["message"] for n in range(2)]
    wait_for(page, "document.getElementById('connection').dataset.status === 'online'")
    expect(page.locator(f'#messages li[data-seq="{later[-1]["seq"]}"] .text')).to_have_text("after 1")
    assert page.locator("#messages li .text").all_text_contents() == ["before", "after 0", "after 1"]
