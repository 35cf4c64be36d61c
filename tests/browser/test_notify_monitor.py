"""Notifications and the monitor in real Chromium: a toast on notify, the unread badge, the desktop
alert of a hidden tab, and the /monitor charts moving while two people chat."""
import itertools
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, PASSWORD, ROOT, Person, wait_for

pytestmark = pytest.mark.browser
ADMIN = "boss"
SOON = 3_000  # ms: "at once", with room for a loaded machine

# A Notification API that records instead of showing, in a tab that says it is hidden.
HIDDEN_TAB_WITH_NOTIFICATIONS = """
window.shownNotifications = [];
window.Notification = class {
  constructor(title, options) { window.shownNotifications.push({ title, body: options && options.body }); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
"""


@pytest.fixture
def server(tmp_path):
    """The suite's server with an admin (ADMIN_USERS) for the monitor."""
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "ADMIN_USERS": ADMIN}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as proc:
        yield proc


def post(server, path, body, token=NOTIFY_TOKEN):
    """POST JSON as curl would; (status, answer)."""
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refusal:
        return refusal.code, json.load(refusal)


def toast(page, title):
    return page.locator("#toasts .toast").filter(has=page.locator(".title", has_text=title))


def test_notify_shows_a_toast_at_once_and_the_badge_counts_it(person, server):
    alice, bob = person("alice"), person("bob")
    alice.open_room("ops")
    bob.open_room("elsewhere")
    status, answer = post(server, "/api/notify", {"room": "ops", "title": "Deploy done", "body": "v2 is live",
                                                  "level": "success"})
    assert status == 202 and answer["recipients"] == 1
    shown = alice.page.locator(f'#toasts .toast[data-id="{answer["id"]}"]')
    expect(shown.locator(".title")).to_have_text("Deploy done", timeout=SOON)
    expect(shown).to_have_attribute("data-level", "success")
    expect(alice.page.locator("#notes-badge")).to_have_text("1")
    assert post(server, "/api/notify", {"room": "ops", "title": "x", "body": "y"}, token="wrong")[0] == 401
    # The CLI, as a cron job would run it, through the same running server.
    env = server.environment()  # the server's own settings: its database and NOTIFY_TOKEN
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "notify", "--everyone", "--title",
                           "Maintenance at 22:00", "--level", "warning", "--url", server.url],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for someone in (alice, bob):
        expect(toast(someone.page, "Maintenance at 22:00")).to_have_count(1, timeout=SOON)
    expect(alice.page.locator("#notes-badge")).to_have_text("2")
    expect(bob.page.locator("#notes-badge")).to_have_text("1")
    expect(toast(bob.page, "Deploy done")).to_have_count(0)  # never to a room bob is not in
    assert alice.errors == [] and bob.errors == []


def test_an_offline_user_sees_it_on_return_once_and_reading_clears_the_badge(person, server):
    carol = person("carol")
    carol.page.goto("about:blank")  # offline: no page of hers is open
    status, answer = post(server, "/api/notify", {"user": carol.name, "title": "Your export is ready",
                                                  "body": "report.csv", "level": "info"})
    assert status == 202
    carol.page.goto(f"{server.url}/")
    carol.wait_online()
    expect(toast(carol.page, "Your export is ready")).to_have_count(1)
    badge = carol.page.locator("#notes-badge")
    expect(badge).to_have_text("1")
    carol.page.reload()  # replayed again (still unread), but not toasted twice
    carol.wait_online()
    expect(badge).to_have_text("1")
    carol.page.wait_for_timeout(500)
    expect(toast(carol.page, "Your export is ready")).to_have_count(0)
    carol.page.click("#notes-bell")
    panel = carol.page.locator("#notes-panel")
    expect(panel.locator(f'.note[data-id="{answer["id"]}"] .title')).to_have_text("Your export is ready")
    expect(badge).to_be_hidden()
    # Read on the server too: a new browser of hers gets nothing replayed.
    other = Person(carol.context.browser.new_context(), server.url, carol.name)
    other.page.goto(f"{server.url}/login")
    other.page.fill("#username", carol.name)
    other.page.fill("#password", PASSWORD)
    other.page.click("button[type=submit]")
    other.wait_online()
    other.page.wait_for_timeout(500)
    expect(other.page.locator("#toasts .toast")).to_have_count(0)
    expect(other.page.locator("#notes-badge")).to_be_hidden()
    other.context.close()


def test_a_hidden_tab_shows_the_desktop_notification(person, server):
    dana = person("dana")
    dana.context.add_init_script(HIDDEN_TAB_WITH_NOTIFICATIONS)
    dana.page.goto(f"{server.url}/")
    dana.wait_online()
    post(server, "/api/notify", {"user": dana.name, "title": "Build failed", "body": "main #812", "level": "error"})
    wait_for(dana.page, "window.shownNotifications.length > 0", timeout=SOON)
    assert dana.page.evaluate("window.shownNotifications") == [{"title": "Build failed", "body": "main #812"}]


def test_the_monitor_is_for_admins_only(person, server):
    alice = person("alice")
    assert alice.page.goto(f"{server.url}/monitor").status == 403


def test_the_monitor_charts_move_as_messages_flow_and_catch_up_after_a_reconnect(chromium, person, server):
    boss = Person(chromium.new_context(viewport={"width": 1280, "height": 900}), server.url, ADMIN).register()
    page = boss.page
    page.goto(f"{server.url}/monitor")
    expect(page.locator("#monitor-status")).to_have_attribute("data-status", "online")
    messages = page.locator('figure[data-chart="messages"]')
    expect(messages).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    expect(messages).to_have_attribute("data-max", "0")

    alice, bob = person("alice"), person("bob")
    alice.open_room("busy")
    bob.open_room("busy")
    nonzero = re.compile(r"^0*\.?0*[1-9]")
    deadline = time.monotonic() + 15
    sent = 0
    while time.monotonic() < deadline:
        (alice if sent % 2 else bob).say(f"message {sent}")
        sent += 1
        page.wait_for_timeout(150)
        if nonzero.match(messages.get_attribute("data-max") or ""):
            break
    expect(messages).to_have_attribute("data-max", nonzero)
    expect(page.locator('figure[data-chart="latency"]')).to_have_attribute("data-max", nonzero)
    expect(page.locator('#busiest-rooms li[data-room="busy"]')).to_contain_text("2 online")
    expect(page.locator("#tile-connections")).to_have_text(re.compile(r"^[2-9]"))

    # A backend's own series appears as a chart of its own, live.
    assert post(server, "/api/metrics/queue_depth", {"value": 42})[0] == 202
    expect(page.locator('figure[data-series="queue_depth"]')).to_have_attribute("data-last", "42", timeout=SOON)
    assert post(server, "/api/metrics/Bad-Name", {"value": 1})[1]["error"]["code"] == "invalid_payload"

    # Offline for a few seconds: on reconnect the backlog fills the gap, so no second goes missing.
    page.evaluate("papoMonitor.socket.disconnect()")
    expect(page.locator("#monitor-status")).to_have_attribute("data-status", "offline")
    page.wait_for_timeout(3500)
    before = page.evaluate("papoMonitor.samples.length")
    page.evaluate("papoMonitor.socket.connect()")
    expect(page.locator("#monitor-status")).to_have_attribute("data-status", "online")
    wait_for(page, f"papoMonitor.samples.length >= {before + 3}")
    stamps = page.evaluate("papoMonitor.samples.map(s => s.ts)")
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 1900, gaps
    assert boss.errors == []
    boss.context.close()
