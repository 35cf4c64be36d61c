"""Fixtures for the browser suite: a real server process, Debian's Chromium, and people using it.

Each person is a Playwright browser context (own cookies and localStorage) with one page.
The server is `python app.py` (the default mode) on a free loopback port over a SQLite file in
tmp_path (tests/servers.py); a test may kill it and start it again on the same port and database.
"""
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.needs import need
from tests.servers import DEFAULT_MODE, ServerProcess

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or fails under CI) with the reason
    expect = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PAPO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct-horse-battery"
NOTIFY_TOKEN = "browser-test-notify-token"
WAIT = 15_000  # ms: how long a page may take to show what a test expects
_names = itertools.count(1)


def wait_for(page, expression, timeout=WAIT):
    """Wait until a JavaScript expression is true in the page, checked through the DevTools protocol.

    Playwright's wait_for_function polls by evaluating a string inside the page, which Papo's CSP
    (no 'unsafe-eval') refuses: it worked only when the first look already found it true.
    """
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} ms: {expression}")
        page.wait_for_timeout(50)


class Person:
    """One user in their own browser context: cookies, localStorage and pages of their own."""

    def __init__(self, context, base_url, name):
        self.context = context
        self.base_url = base_url
        self.name = name
        self.dialogs = []
        self.errors = []
        self.console_errors = []
        self.cut = False  # cut_off(): Socket.IO unreachable, by either transport
        # Playwright routes only the WebSockets of documents loaded after this; it passes them through until cut.
        context.route_web_socket("**/socket.io/**", self._route_socket)
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.set_default_timeout(WAIT)
        page.on("dialog", self._dismiss)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        return page

    def _dismiss(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text)

    def cut_off(self):
        """Keep this person's pages from reaching Socket.IO, by WebSocket and by polling, until reconnect()."""
        self.cut = True
        self.context.route("**/socket.io/**", lambda route: route.abort())

    def reconnect(self):
        """Let this person's pages reach Socket.IO again."""
        self.cut = False
        self.context.unroute("**/socket.io/**")

    def _route_socket(self, socket):
        if self.cut:
            socket.close()
        else:
            socket.connect_to_server()

    def register(self):
        page = self.page
        page.goto(f"{self.base_url}/register")
        page.fill("#username", self.name)
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.base_url}/")
        return self

    def open_room(self, room, page=None):
        page = page or self.page
        page.goto(f"{self.base_url}/room/{room}")
        self.wait_online(page)
        page.wait_for_selector(f'#members li[data-user="{self.name}"]')
        return page

    def open_direct(self, peer, page=None):
        page = page or self.page
        page.goto(f"{self.base_url}/dm/{peer}")
        self.wait_online(page)
        return page

    def wait_online(self, page=None):
        (page or self.page).wait_for_selector('#connection[data-status="online"]')

    def say(self, text, page=None):
        page = page or self.page
        page.fill("#composer-text", text)
        page.press("#composer-text", "Enter")

    def texts(self, page=None):
        """The message texts on screen, in order."""
        return (page or self.page).locator("#messages li .text").all_text_contents()

    def message(self, text, page=None, status=None):
        """Locator of the messages whose text is exactly `text` (in that status, if given)."""
        page = page or self.page
        sel = "#messages li" + (f'[data-status="{status}"]' if status else "")
        return page.locator(sel).filter(has=page.get_by_text(text, exact=True))


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium under Playwright; skipped (failed under CI) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
    need(sync_playwright is not None, "playwright (requirements-dev.txt) is not installed")
    need(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    vendor = subprocess.run([sys.executable, "tools/vendor.py"], cwd=ROOT, capture_output=True, text=True)
    need(vendor.returncode == 0, f"static/vendor could not be installed: {vendor.stderr.strip()[-500:]}")
    expect.set_options(timeout=WAIT)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path):
    """A Papo server process on a free port; killed at the end of the test."""
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env={"NOTIFY_TOKEN": NOTIFY_TOKEN}) as proc:
        yield proc


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Put what each page saw (its address, script and console errors) and the server's log in a failed report."""
    outcome = yield
    report = outcome.get_result()
    make, server = getattr(item, "funcargs", {}).get("person"), getattr(item, "funcargs", {}).get("server")
    if report.when == "call" and report.failed and make is not None:
        report.sections.append(("what the pages saw", "\n".join(
            f"{p.name}: pages {[page.url for page in p.context.pages]}, script errors {p.errors}, "
            f"console errors {p.console_errors}, dialogs {p.dialogs}" for p in make.people)))
        if server is not None:
            report.sections.append(("server log", server.log_tail(60)))


@pytest.fixture
def person(chromium, server):
    """Make a registered user with their own browser context: person(prefix="alice")."""
    contexts, people = [], []

    def make(prefix="user", register=True, viewport=None):
        context = chromium.new_context(viewport=viewport or {"width": 1280, "height": 800})
        contexts.append(context)
        someone = Person(context, server.url, f"{prefix}{next(_names)}")
        people.append(someone)
        return someone.register() if register else someone

    make.people = people  # type: ignore[attr-defined]  # for a failure's report
    yield make
    for context in contexts:
        context.close()
