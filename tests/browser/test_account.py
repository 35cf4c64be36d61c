"""The account in real Chromium: changing the password, the login lockout, and logging out clears local data.

This module's server trusts one proxy (PROXY_COUNT=1), so that a browser context sending its own
X-Forwarded-For stands for a person at another address.
"""
import re

import pytest

from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, PASSWORD, Person, expect

pytestmark = pytest.mark.browser
NEW_PASSWORD = "a-new-and-longer-one"


@pytest.fixture
def server(tmp_path, request):
    """A Papo server that takes the client's address from X-Forwarded-For (one proxy in front).

    A test adds settings of its own with `@pytest.mark.parametrize("server", [{...}], indirect=True)`.
    """
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "PROXY_COUNT": "1", **getattr(request, "param", {})}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as proc:
        yield proc


def at_address(chromium, server, name, address):
    """A person (not registered here) whose requests come from `address`."""
    context = chromium.new_context(extra_http_headers={"X-Forwarded-For": address})
    return Person(context, server.url, name)


def log_in(someone, password=PASSWORD):
    page = someone.page
    page.goto(f"{someone.base_url}/login")
    page.fill("#username", someone.name)
    page.fill("#password", password)
    page.press("#password", "Enter")
    page.wait_for_load_state()
    return page


def stored_keys(page, name):
    return page.evaluate("(prefix) => Object.keys(localStorage).filter((k) => k.startsWith(prefix))",
                         f"papo:v1:{name.lower()}:")


def test_changing_the_password_signs_out_the_other_session_and_keeps_this_one(person, chromium, server):
    ana = person("ana")
    elsewhere = at_address(chromium, server, ana.name, "198.51.100.20")
    try:
        log_in(elsewhere)
        elsewhere.page.wait_for_url(f"{server.url}/")
        elsewhere.wait_online()

        page = ana.page
        page.goto(f"{server.url}/")
        page.get_by_role("link", name="Change your password").click()
        expect(page.get_by_label("Current password")).to_be_focused()
        page.get_by_label("Current password").fill("not-my-password")
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator("#form-error")).to_have_text("Your current password is not right.")
        elsewhere.wait_online()  # a wrong attempt ends nothing

        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password again").fill(NEW_PASSWORD)
        page.get_by_label("New password again").press("Enter")
        expect(page.locator("#password-changed")).to_contain_text("every other session of yours was signed out")

        elsewhere.page.wait_for_url(re.compile(r"/login\?ended=revoked"))
        ana.open_room("general")  # this session stays signed in
        ana.say("still me")
        expect(ana.message("still me", status="delivered")).to_have_count(1)
        log_in(elsewhere, NEW_PASSWORD)
        elsewhere.page.wait_for_url(f"{server.url}/")
    finally:
        elsewhere.context.close()


# A sign-in regained every 50 s, not every 10 (the default): ten wrong passwords through a page take
# a slow machine more than 10 s, and the right one after them then found a sign-in regained already.
@pytest.mark.parametrize("server", [{"LOGIN_PER_SECOND": "0.02"}], indirect=True)
def test_a_lockout_says_when_to_try_again_keeps_focus_and_does_not_reach_another_address(person, chromium, server):
    ana = person("ana")  # registered from 127.0.0.1, her usual address
    guesser = at_address(chromium, server, ana.name, "203.0.113.5")
    owner_elsewhere = at_address(chromium, server, ana.name, "198.51.100.7")
    try:
        for _ in range(10):  # LOGIN_BURST: ten wrong passwords from the guesser's address
            log_in(guesser, "wrong-wrong-wrong")
            expect(guesser.page.locator("#form-error")).to_have_text("Wrong username or password.")
            expect(guesser.page.locator("#password")).to_be_focused()
        log_in(guesser)  # now even the right password is refused there, with when to try again
        expect(guesser.page.locator("#form-error")).to_have_text(
            re.compile(r"^There were too many failed logins\. Try again in ([1-9]|[1-4][0-9]|50) seconds?\.$"))
        expect(guesser.page.locator("#password")).to_be_focused()
        expect(guesser.page.locator("#password")).to_have_attribute("aria-describedby", "form-error")

        log_in(owner_elsewhere)  # the owner, from another address, is not locked out
        owner_elsewhere.page.wait_for_url(f"{server.url}/")
        ana.page.goto(f"{server.url}/")
        ana.wait_online()
    finally:
        guesser.context.close()
        owner_elsewhere.context.close()


def test_logging_out_clears_the_users_local_data(person):
    ana = person("ana")
    page = ana.open_room("general")
    ana.say("kept locally")
    expect(ana.message("kept locally", status="delivered")).to_have_count(1)
    assert stored_keys(page, ana.name)  # the page keeps rooms (and more) in localStorage
    page.evaluate("() => localStorage.setItem('someone-else', 'stays')")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login"))
    assert stored_keys(page, ana.name) == []
    assert page.evaluate("() => localStorage.getItem('someone-else')") == "stays"


def test_logging_out_with_unsent_messages_asks_first_and_names_how_many(person):
    ana = person("ana")
    page = ana.open_room("general")
    ana.cut_off()  # the page's socket cannot reach the server from its next load on
    page.reload()
    page.wait_for_selector('#connection:not([data-status="online"])')
    ana.say("unsent one")
    ana.say("unsent two")
    expect(page.locator("#messages li[data-status=pending]")).to_have_count(2)

    logout = page.get_by_role("button", name="Log out")
    logout.click()
    dialog = page.get_by_role("dialog", name="Unsent messages")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("2 messages you wrote have not been sent yet.")
    expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(logout).to_be_focused()
    assert len(page.evaluate("(k) => JSON.parse(localStorage.getItem(k))", f"papo:v1:{ana.name.lower()}:outbox")) == 2

    logout.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Log out and delete 2 messages").click()
    page.wait_for_url(re.compile(r"/login"))
    assert stored_keys(page, ana.name) == []
    assert ana.errors == []


def test_a_late_close_of_the_unsent_dialog_does_not_take_the_next_answer(person):
    """The dialog's close event is a task of its own: under load the one of an answer (Escape) may come
    after the dialog opened again. It must not take the answer of the new opening (which then did nothing)."""
    ana = person("ana")
    page = ana.open_room("general")
    ana.cut_off()
    page.reload()
    page.wait_for_selector('#connection:not([data-status="online"])')
    ana.say("unsent")
    expect(page.locator("#messages li[data-status=pending]")).to_have_count(1)
    page.get_by_role("button", name="Log out").click()
    dialog = page.get_by_role("dialog", name="Unsent messages")
    expect(dialog).to_be_visible()
    # closed and opened again within one task: the first close event is dispatched after the reopening
    page.evaluate("""() => {
        document.getElementById("logout-confirm").close();
        document.querySelector('form[data-form="logout"]').requestSubmit();
    }""")
    expect(dialog).to_be_visible()
    page.wait_for_timeout(100)  # the late close event has been dispatched by now
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Log out and delete it").click()
    page.wait_for_url(re.compile(r"/login"), timeout=5000)
    assert stored_keys(page, ana.name) == []
    assert ana.errors == []
