"""Direct messages in real Chromium, like rooms: listed from the server with unread badges, their history
loaded when opened, read on one browser cleared on the others, "Seen by", and a 404 for a user who does not exist."""
import re

import pytest

from .conftest import PASSWORD, Person, expect

pytestmark = pytest.mark.browser
RECONNECT = 20_000  # ms: the client backs off up to 4 s between tries


def log_in_elsewhere(chromium, someone, viewport=None):
    """The same user in a second browser (own cookies and storage), logged in through the form."""
    context = chromium.new_context(viewport=viewport or {"width": 1280, "height": 800})
    other = Person(context, someone.base_url, someone.name)
    other.page.goto(f"{someone.base_url}/login")
    other.page.fill("#username", someone.name)
    other.page.fill("#password", PASSWORD)
    other.page.click("button[type=submit]")
    other.page.wait_for_url(f"{someone.base_url}/")
    other.wait_online()
    return other


def conversation(page, peer):
    return page.locator(f'#my-directs a[data-peer="{peer}"]')


def test_a_direct_sent_while_the_recipient_is_offline_is_listed_and_loads_when_opened(person):
    alice, bob = person("alice"), person("bob")
    bob.page.goto("about:blank")  # bob has no page open
    alice.open_direct(bob.name)
    for text in ("are you there?", "call me when you are back"):
        alice.say(text)
        expect(alice.message(text, status="delivered")).to_have_count(1)

    bob.page.goto(f"{bob.base_url}/")
    bob.wait_online()
    link = conversation(bob.page, alice.name)
    expect(link.locator(".badge")).to_have_text("2")
    expect(link).to_have_accessible_name(re.compile(rf"^@ {alice.name}\s*call me when you are back\s*, 2 unread$"))
    expect(link.locator(".preview")).to_have_text("call me when you are back")
    expect(bob.page.locator("#side-unread")).to_have_text("2")
    link.click()
    bob.page.wait_for_url(re.compile(f"/dm/{alice.name}$"))
    expect(bob.page.locator("#messages li .text")).to_have_text(["are you there?", "call me when you are back"])
    expect(conversation(bob.page, alice.name).locator(".badge")).to_have_count(0)
    expect(alice.message("call me when you are back").locator(".seen")).to_have_text(f"Seen by {bob.name}")
    expect(alice.page.locator("#messages .seen")).to_have_count(1)

    bob.page.reload()  # nothing doubled, nothing unread again
    bob.wait_online()
    expect(bob.page.locator("#messages li .text")).to_have_text(["are you there?", "call me when you are back"])
    alice.page.reload()  # the receipt comes from the server's answer too, not only live
    alice.wait_online()
    expect(alice.message("call me when you are back").locator(".seen")).to_have_text(f"Seen by {bob.name}")
    assert alice.errors == [] and bob.errors == []
    assert alice.console_errors == [] and bob.console_errors == []


def test_a_second_browser_sees_the_conversation_and_reading_there_clears_the_first(person, chromium):
    alice, bob = person("alice"), person("bob")
    alice.open_direct(bob.name)
    alice.say("first")
    expect(alice.message("first", status="delivered")).to_have_count(1)
    badge = conversation(bob.page, alice.name).locator(".badge")
    expect(badge).to_have_text("1")  # bob's lobby, live

    laptop = log_in_elsewhere(chromium, bob)
    try:
        expect(conversation(laptop.page, alice.name).locator(".badge")).to_have_text("1")
        alice.say("second")
        expect(conversation(laptop.page, alice.name).locator(".badge")).to_have_text("2")
        expect(badge).to_have_text("2")
        laptop.open_direct(alice.name)
        expect(laptop.page.locator("#messages li .text")).to_have_text(["first", "second"])
        expect(badge).to_have_count(0)  # read on the laptop: cleared on the first browser at once
        expect(bob.page.locator("#side-unread")).to_be_hidden()
        laptop.say("on my laptop")
        expect(alice.message("on my laptop", status="delivered")).to_have_count(1)
        conversation(bob.page, alice.name).click()
        bob.page.wait_for_url(re.compile(f"/dm/{alice.name}$"))
        expect(bob.page.locator("#messages li .text")).to_have_text(["first", "second", "on my laptop"])
        assert laptop.errors == [] and laptop.console_errors == []
    finally:
        laptop.context.close()


def test_a_conversation_catches_up_after_the_connection_comes_back(person, server):
    alice, bob = person("alice"), person("bob")
    bob.open_direct(alice.name)
    alice.open_direct(bob.name)
    alice.say("before the cut")
    expect(bob.message("before the cut")).to_have_count(1)
    bob.cut_off()
    server.kill()  # both lose their connection; only alice may reconnect
    server.start()
    expect(alice.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    for text in ("while you were away 1", "while you were away 2"):
        alice.say(text)
        expect(alice.message(text, status="delivered")).to_have_count(1)
    expect(bob.page.locator("#connection")).not_to_have_attribute("data-status", "online")
    assert bob.texts() == ["before the cut"]
    bob.reconnect()
    expect(bob.page.locator("#connection")).to_have_attribute("data-status", "online", timeout=RECONNECT)
    expect(bob.page.locator("#messages li .text")).to_have_text(
        ["before the cut", "while you were away 1", "while you were away 2"])
    expect(alice.message("while you were away 2").locator(".seen")).to_have_text(f"Seen by {bob.name}")


def test_the_page_of_a_user_who_does_not_exist_is_a_404(person):
    alice = person("alice")
    answer = alice.page.goto(f"{alice.base_url}/dm/nobody-here")
    assert answer.status == 404
    expect(alice.page.locator("#composer")).to_have_count(0)
    assert "nobody-here" in alice.page.content()


def test_a_room_reload_shows_seen_by_from_the_join(person):
    alice, bob = person("alice"), person("bob")
    alice.open_room("receipts")
    bob.open_room("receipts")
    alice.say("did you read this?")
    expect(alice.message("did you read this?").locator(".seen")).to_have_text(f"Seen by {bob.name}")
    bob.page.goto("about:blank")
    alice.page.reload()
    alice.wait_online()
    expect(alice.message("did you read this?").locator(".seen")).to_have_text(f"Seen by {bob.name}")


def test_conversations_work_by_keyboard_on_a_390_px_screen(person):
    alice = person("alice")
    bob = person("bob", viewport={"width": 390, "height": 800})
    alice.open_direct(bob.name)
    alice.say("small screen hello")
    expect(alice.message("small screen hello", status="delivered")).to_have_count(1)
    long = "a preview far too long for a phone's sidebar " * 4
    alice.say(long)
    expect(alice.message(long.strip(), status="delivered")).to_have_count(1)
    link = conversation(bob.page, alice.name)
    expect(link.locator(".badge")).to_have_text("2")
    expect(link.locator(".preview")).to_contain_text("a preview far too long")
    assert bob.page.evaluate("document.scrollingElement.scrollWidth") <= 390  # the lobby, its list open
    link.focus()
    bob.page.keyboard.press("Enter")
    bob.page.wait_for_url(re.compile(f"/dm/{alice.name}$"))
    expect(bob.message("small screen hello")).to_be_in_viewport()
    expect(bob.page.get_by_role("textbox", name=f"Message {alice.name}")).to_be_in_viewport()
    assert bob.page.evaluate("document.scrollingElement.scrollWidth") <= 390
    bob.page.get_by_role("textbox", name=f"Message {alice.name}").press_sequentially("typed with keys")
    bob.page.keyboard.press("Enter")
    expect(alice.message("typed with keys", status="delivered")).to_have_count(1)
