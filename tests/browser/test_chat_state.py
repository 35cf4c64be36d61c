"""Two people in real Chromium: edits (Up arrow too), reactions with who, deletions, and unread synced by the server."""
import os

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser


def test_edit_react_and_delete_show_on_both_sides(person):
    alice, bob = person("alice"), person("bob")
    alice.open_room("state")
    bob.open_room("state")
    alice.say("helo everyone")
    expect(bob.message("helo everyone", status="delivered")).to_have_count(1)

    alice.page.press("#composer-text", "ArrowUp")  # edits the last own message
    expect(alice.page.locator("#composer-text")).to_have_value("helo everyone")
    alice.page.fill("#composer-text", "hello everyone")
    alice.page.press("#composer-text", "Enter")
    edited = bob.message("hello everyone")
    expect(edited).to_have_count(1)
    expect(edited.locator(".edited")).to_have_text("(edited)")

    edited.locator("details summary").click()
    edited.get_by_role("button", name="React with 👍").click()
    chip = alice.message("hello everyone").locator("button.reaction")
    expect(chip).to_have_text("👍 1")
    expect(chip).to_have_attribute("aria-label", f"👍 1: {bob.name}")
    expect(bob.message("hello everyone").locator("button.reaction")).to_have_attribute("aria-pressed", "true")

    own = alice.message("hello everyone")
    own.get_by_role("button", name="Delete your message 1").click()
    own.get_by_role("button", name="Confirm: delete your message 1 for everyone").click()
    expect(bob.page.locator('#messages li[data-seq="1"] .text')).to_have_text("This message was deleted.")
    expect(bob.page.locator('#messages li[data-seq="1"] button.reaction')).to_have_count(0)
    assert alice.errors == [] and bob.errors == []
    assert alice.console_errors == [] and bob.console_errors == []


def test_reading_on_one_device_clears_the_unread_count_on_another(person, chromium, server):
    alice, bob = person("alice"), person("bob")
    bob.open_room("news")
    bob.page.goto(f"{server.url}/")  # bob's first device now sits in the lobby
    bob.wait_online()
    alice.open_room("news")
    for n in range(3):
        alice.say(f"news {n}")
    badge = bob.page.locator('#my-rooms a[href="/room/news"] .badge')
    expect(badge).to_have_text("3")
    other_device = chromium.new_context(storage_state=bob.context.storage_state())
    try:
        page = other_device.new_page()
        page.goto(f"{server.url}/room/news")
        expect(page.locator("#messages li")).to_have_count(3)
        expect(badge).to_have_count(0)
    finally:
        other_device.close()


def test_new_messages_divider_and_seen_by(person, server):
    alice, bob = person("alice"), person("bob")
    alice.open_room("seen")
    bob.open_room("seen")
    alice.say("one")
    expect(bob.message("one", status="delivered")).to_have_count(1)
    bob.page.goto(f"{server.url}/")
    bob.wait_online()
    alice.say("two")
    alice.say("three")
    expect(bob.page.locator('#my-rooms a[href="/room/seen"] .badge')).to_have_text("2")
    bob.open_room("seen")
    expect(bob.page.locator("#messages li.divider")).to_have_text("New messages")
    assert bob.page.locator("#messages li").evaluate_all(
        "(items) => items.map((li) => li.dataset.seq || li.className)") == ["1", "divider", "2", "3"]
    expect(alice.message("three").locator(".seen")).to_have_text(f"Seen by {bob.name}")
    expect(alice.page.locator("#messages .seen")).to_have_count(1)


def test_search_finds_a_message_shows_its_match_as_text_and_opens_the_room_there(person, server):
    alice = person("alice")
    alice.open_room("findme")
    alice.say("the <b>needle</b> is here")
    alice.say("something else")
    expect(alice.message("something else", status="delivered")).to_have_count(1)
    page = alice.page
    page.get_by_role("searchbox", name="Search messages").fill("needle")
    page.get_by_role("button", name="Search", exact=True).click()
    result = page.locator("#search-results li.search-result")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("needle")
    expect(result.locator(".snippet")).to_have_text("the <b>needle</b> is here")
    result.locator("a").click()
    page.wait_for_url(f"{server.url}/room/findme#seq-1")
    expect(page.locator('#messages li[data-seq="1"]')).to_be_focused()
    page.goto(f"{server.url}/")  # from another page the link loads the room, then shows the message
    alice.wait_online()
    page.get_by_role("searchbox", name="Search messages").fill("needle")
    page.get_by_role("searchbox", name="Search messages").press("Enter")
    result.locator("a").click()
    page.wait_for_url(f"{server.url}/room/findme#seq-1")
    expect(page.locator('#messages li[data-seq="1"]')).to_be_focused()
    assert alice.errors == [] and alice.console_errors == []


def test_the_controls_fit_a_390_px_wide_screen(person):
    alice = person("alice", viewport={"width": 390, "height": 800})
    bob = person("bob")
    alice.open_room("narrow")
    bob.open_room("narrow")
    bob.say("a reply to react to")
    message = alice.message("a reply to react to")
    expect(message).to_have_count(1)  # so that Alice's message is the room's second
    alice.say("my own message, with its edit and delete buttons")
    message.locator("details summary").click()
    message.get_by_role("button", name="React with 🎉").click()
    expect(message.locator("button.reaction")).to_have_text("🎉 1")
    own = alice.message("my own message, with its edit and delete buttons")
    for control in (message.locator("button.reaction"), own.get_by_role("button", name="Edit your message 2")):
        expect(control).to_be_in_viewport()
    assert alice.page.evaluate("document.scrollingElement.scrollWidth") <= 390
    if os.environ.get("PAPO_SHOTS"):
        alice.page.screenshot(path=os.environ["PAPO_SHOTS"])
