"""Search in real Chromium finds a direct message for the two people in the conversation, never for a third,
and its result opens the conversation."""
import re

import pytest

from .conftest import expect

pytestmark = pytest.mark.browser


def search(person, words):
    box = person.page.get_by_role("searchbox", name="Search messages")
    box.fill(words)
    box.press("Enter")
    return person.page.locator("#search-results li")


def test_a_direct_message_is_found_by_its_two_people_and_opens_their_conversation(person, server):
    alice, bob, carol = person("alice"), person("bob"), person("carol")
    alice.open_direct(bob.name)
    alice.say("the <i>haystack</i> pin")
    expect(alice.message("the <i>haystack</i> pin", status="delivered")).to_have_count(1)

    bob.page.goto(f"{server.url}/")
    bob.wait_online()
    result = search(bob, "haystack")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("haystack")
    expect(result.locator(".snippet")).to_have_text("the <i>haystack</i> pin")
    link = result.get_by_role("link", name=f"{alice.name} to {bob.name}, direct message: the <i>haystack</i> pin")
    link.click()
    bob.page.wait_for_url(re.compile(f"/dm/{alice.name}$"))
    expect(bob.message("the <i>haystack</i> pin")).to_have_count(1)

    expect(search(alice, "hay").locator("a")).to_have_attribute("href", f"/dm/{bob.name}")
    carol.page.goto(f"{server.url}/")
    carol.wait_online()
    expect(search(carol, "haystack")).to_have_text(["Nothing found."])
    for someone in (alice, bob, carol):
        assert someone.errors == [] and someone.console_errors == []
