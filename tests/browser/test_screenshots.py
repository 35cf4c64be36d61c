"""Screenshots of the lobby and of a room. PAPO_SCREENSHOTS=docs/img writes them for the README."""
import os
from pathlib import Path

import pytest
from .conftest import expect

pytestmark = pytest.mark.browser


def test_lobby_and_room_screenshots(person, tmp_path):
    out = Path(os.environ.get("PAPO_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ana, bruno, carla = person("ana"), person("bruno"), person("carla")
    for someone in (ana, bruno, carla):
        someone.open_room("general")
    bruno.open_room("design")
    bruno.say("new icons are in the shared folder")
    carla.open_room("random")
    carla.say("anyone up for lunch?")
    script = [(ana, "Morning! The new build is on staging."),
              (bruno, "Nice. Reconnects look instant now."),
              (carla, "I killed the server mid-message and nothing got lost.\nThe outbox resent it after the restart."),
              (ana, "That's the seq + client_id dedupe doing its job."),
              (bruno, "<b>markup</b> stays plain text, too")]
    bruno.open_room("general")
    carla.open_room("general")
    for who, text in script:
        who.say(text)
        expect(ana.message(text, status="delivered")).to_have_count(1)
    bruno.open_direct(ana.name)
    bruno.say("Can you review my PR later?")
    expect(bruno.message("Can you review my PR later?", status="delivered")).to_have_count(1)
    # A direct arrives live only (issue 17's first item): ana's page must have it before it reloads.
    expect(ana.page.locator('#my-directs .badge')).to_have_text("1")
    ana.open_room("general")
    carla.page.type("#composer-text", "Sounds g")
    expect(ana.page.locator("#typing")).to_contain_text("is typing")
    expect(ana.page.locator('#my-directs .badge')).to_have_text("1")
    ana.page.screenshot(path=str(out / "room.png"))
    ana.page.goto(f"{ana.base_url}/")
    expect(ana.page.locator('#room-rows tr[data-room="general"] td.online')).to_have_text("3")
    expect(ana.page.locator('#room-rows tr[data-room="design"] td.online')).to_have_text("1")
    ana.page.screenshot(path=str(out / "lobby.png"))
    assert (out / "room.png").stat().st_size > 10_000
