"""Screenshots for the README: the lobby, a room, a DM, a private room and /monitor, on a desktop and at 390 px.

PAPO_SCREENSHOTS=docs/img writes them there; otherwise they go to the test's temporary folder.
"""
import os
from pathlib import Path

import pytest

from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, PASSWORD, Person, expect
from .test_private_rooms import invite

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def server(tmp_path):
    """The suite's server with ana as an admin, so that /monitor can be shown."""
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "ADMIN_USERS": "ana"}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as proc:
        yield proc


@pytest.fixture
def people(chromium, server):
    """Open a browser context per name and viewport: people(name, viewport, register=True)."""
    contexts = []

    def make(name, viewport=DESKTOP, register=True):
        context = chromium.new_context(viewport=viewport)
        contexts.append(context)
        someone = Person(context, server.url, name)
        if register:
            return someone.register()
        someone.page.goto(f"{server.url}/login")
        someone.page.fill("#username", name)
        someone.page.fill("#password", PASSWORD)
        someone.page.click("button[type=submit]")
        someone.page.wait_for_url(f"{server.url}/")
        return someone

    yield make
    for context in contexts:
        context.close()


def shoot(page, out, name):
    """Save the page once its fonts and layout settled."""
    page.evaluate("document.fonts.ready")
    page.screenshot(path=str(out / f"{name}.png"))
    assert (out / f"{name}.png").stat().st_size > 5_000


def test_screenshots_of_every_page_on_a_desktop_and_a_phone(people, tmp_path):
    out = Path(os.environ.get("PAPO_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ana, bruno, carla = people("ana"), people("bruno"), people("carla")
    bruno.open_room("design")
    bruno.say("new icons are in the shared folder")
    carla.open_room("random")
    carla.say("anyone up for lunch?")
    for someone in (ana, bruno, carla):
        someone.open_room("general")
    script = [(ana, "Morning! The new build is on staging: https://staging.example.com/build/412"),
              (bruno, "Nice. Reconnects look instant now."),
              (carla, "I killed the server mid-message and nothing got lost.\nThe outbox resent it after the restart."),
              (ana, "That's the seq + client_id dedupe doing its job."),
              (bruno, "<b>markup</b> stays plain text, too")]
    for who, text in script:
        who.say(text)
        expect(ana.message(text, status="delivered")).to_have_count(1)

    # A direct message ana is not looking at: the sidebar lists it with its unread count.
    bruno.open_direct("ana")
    bruno.say("Can you review my PR later?")
    expect(bruno.message("Can you review my PR later?", status="delivered")).to_have_count(1)
    expect(ana.page.locator("#my-directs .badge")).to_have_text("1")
    carla.page.type("#composer-text", "Sounds g")
    expect(ana.page.locator("#typing")).to_contain_text("is typing")
    shoot(ana.page, out, "room")

    ana.page.goto(f"{ana.base_url}/")
    expect(ana.page.locator('#room-rows tr[data-room="general"] td.online')).not_to_be_empty()
    shoot(ana.page, out, "lobby")

    ana.open_direct("bruno")
    expect(ana.message("Can you review my PR later?")).to_have_count(1)
    ana.say("Sure, after lunch.")
    expect(ana.message("Sure, after lunch.", status="delivered")).to_have_count(1)
    shoot(ana.page, out, "dm")

    # A private room: created from the lobby, bruno invited, then its page and its settings.
    ana.page.goto(f"{ana.base_url}/")
    ana.wait_online()
    ana.page.get_by_label("Private room name").fill("launch")
    ana.page.get_by_label("Private room name").press("Enter")
    ana.page.wait_for_url(f"{ana.base_url}/room/launch/settings")
    invite(ana.page, "bruno")
    shoot(ana.page, out, "private-room-settings")
    ana.open_room("launch")
    bruno.open_room("launch")
    ana.say("Launch checklist goes here; only the two of us see this room.")
    expect(bruno.message("Launch checklist goes here; only the two of us see this room.",
                         status="delivered")).to_have_count(1)
    shoot(ana.page, out, "private-room")

    ana.page.goto(f"{ana.base_url}/monitor")
    expect(ana.page.locator("#monitor-status")).to_have_attribute("data-status", "online")
    expect(ana.page.locator("#tile-users")).not_to_have_text("–")
    for n in range(5):  # traffic while the dashboard watches, so its latency tiles and charts have values
        bruno.say(f"deploy step {n + 1} done")
        expect(bruno.message(f"deploy step {n + 1} done", status="delivered")).to_have_count(1)
    expect(ana.page.locator("#tile-p50")).not_to_have_text("–")
    shoot(ana.page, out, "monitor")

    phone = people("ana", viewport=PHONE, register=False)
    shoot(phone.page, out, "lobby-390")
    phone.open_room("general")
    expect(phone.message("<b>markup</b> stays plain text, too")).to_be_in_viewport()
    shoot(phone.page, out, "room-390")
    phone.open_direct("bruno")
    expect(phone.message("Sure, after lunch.")).to_have_count(1)
    shoot(phone.page, out, "dm-390")
    phone.open_room("launch")
    expect(phone.message("Launch checklist goes here; only the two of us see this room.")).to_have_count(1)
    shoot(phone.page, out, "private-room-390")
    phone.page.goto(f"{phone.base_url}/monitor")
    expect(phone.page.locator("#monitor-status")).to_have_attribute("data-status", "online")
    phone.page.wait_for_timeout(3000)
    shoot(phone.page, out, "monitor-390")
