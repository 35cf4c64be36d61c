"""axe-core on every page, in real Chromium: no serious or critical accessibility violation.

axe-core is vendored like the other browser code (package-lock.json pins it, tools/vendor.py puts
axe.min.js in static/vendor) but no page loads it: the test hands its source to the page through
the DevTools protocol, which the page's strict CSP does not govern, so the CSP stays as users get it.
"""
import tempfile
from pathlib import Path

import pytest

from chat import create_app
from tests.servers import DEFAULT_MODE, ServerProcess

from .conftest import NOTIFY_TOKEN, PASSWORD, ROOT, Person, expect

pytestmark = pytest.mark.browser
ADMIN = "boss"
AXE = ROOT / "static" / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")

# Every HTML page by its endpoint: the path a test opens. A new page must be added here (or to
# REDIRECTS when it only sends the browser elsewhere): test_every_page_is_checked says so.
PAGES = {
    "pages.lobby": "/",
    "pages.room": "/room/axe",
    "pages.direct": "/dm/{peer}",
    "pages.monitor": "/monitor",
    "pages.register": "/register",
    "pages.login": "/login",
    "pages.stream": "/room/axe/live",
    "pages.room_settings": "/room/axe/settings",
    "pages.password": "/password",
}
REDIRECTS = {"pages.go"}
NOT_PAGES = {"static", "metrics", "sse.stream"}  # files, the Prometheus text and /api/stream


@pytest.fixture
def server(tmp_path):
    """The suite's server with an admin (ADMIN_USERS) for /monitor."""
    env = {"NOTIFY_TOKEN": NOTIFY_TOKEN, "ADMIN_USERS": ADMIN}
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env=env) as proc:
        yield proc


def axe_violations(page):
    """Run axe-core in the page; the serious and critical violations, each with its nodes' targets."""
    # A form's answer is a new document whose elements can show before its stylesheet applies:
    # unstyled links on the dark canvas fail contrast where no user ever sees them (render-blocking).
    page.wait_for_load_state("load")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    results = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map((n) => n.target.join(' '))}));
    }""")
    return [v for v in results if v["impact"] in BLOCKING]


def check(page, what):
    """Fail with axe's words when the page has a serious or critical violation."""
    found = axe_violations(page)
    assert not found, f"{what}: " + "; ".join(f"{v['impact']} {v['id']} ({v['help']}): {v['nodes'][:5]}"
                                             for v in found)


def test_every_page_is_checked():
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATABASE_URL": f"sqlite:///{Path(folder)}/papo.db",
                          "SECRET_KEY": "axe-test-secret-key-long-enough", "TESTING": True})
        try:
            endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                         if "GET" in (rule.methods or ()) and not rule.endpoint.startswith("api.")}
        finally:
            app.extensions["papo"].store.close()
    assert endpoints - NOT_PAGES - REDIRECTS == set(PAGES), "add the new page to PAGES in tests/browser/test_axe.py"


def test_axe_is_vendored_but_served_to_no_page(server, person):
    assert AXE.is_file(), "static/vendor/axe.min.js is missing: run python tools/vendor.py"
    alice = person("alice")
    for path in ("/", "/room/axe", "/login"):
        alice.page.goto(f"{server.url}{path}")
        assert alice.page.locator('script[src*="axe"]').count() == 0
    assert alice.page.evaluate("typeof window.axe") == "undefined"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_violation_on_any_page(chromium, server, scheme):
    contexts = []

    def someone(name, viewport=None):
        context = chromium.new_context(viewport=viewport or {"width": 1280, "height": 800}, color_scheme=scheme)
        contexts.append(context)
        return Person(context, server.url, name)

    try:
        visitor = someone("visitor")
        page = visitor.page
        page.goto(f"{server.url}/login")
        check(page, "login")
        page.fill("#username", "nobody")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        expect(page.locator(".form-error")).to_be_visible()
        check(page, "login with an error")
        page.goto(f"{server.url}/register")
        check(page, "register")

        boss = someone(ADMIN).register()
        bob = someone("bob").register()
        boss.wait_online()
        check(boss.page, "lobby, empty")

        boss.open_room("axe")
        bob.open_room("axe")
        boss.say("hello, see https://example.com/docs.")
        bob.say("a reply <b>not bold</b>")
        expect(boss.message("a reply <b>not bold</b>", status="delivered")).to_have_count(1)
        boss.page.locator("#composer-text").fill("x" * 3990)  # the counter near the limit shows
        expect(boss.page.locator("#composer-count")).not_to_be_empty()
        check(boss.page, "room")
        boss.page.press("#composer-text", "Enter")
        boss.page.locator("#composer-text").fill("")
        boss.page.press("#composer-text", "Enter")  # the empty-send feedback shows
        expect(boss.page.locator("#composer-feedback")).not_to_be_empty()
        check(boss.page, "room with the composer's feedback")

        boss.page.goto(f"{server.url}/")
        expect(boss.page.locator('#room-rows tr[data-room="axe"]')).to_have_count(1)
        check(boss.page, "lobby with a room")

        boss.open_direct("bob")
        boss.say("just us")
        expect(boss.message("just us", status="delivered")).to_have_count(1)
        check(boss.page, "direct messages")

        for path in ("/room/axe/live", "/room/axe/settings", "/password"):
            boss.page.goto(f"{server.url}{path}")
            boss.page.wait_for_load_state("networkidle")
            check(boss.page, path)

        boss.page.goto(f"{server.url}/monitor")
        expect(boss.page.locator("#monitor-status")).to_have_attribute("data-status", "online")
        expect(boss.page.locator("#tile-users")).not_to_have_text("–")
        check(boss.page, "monitor")

        for path, status in (("/monitor", 403), ("/no/such/page", 404)):
            assert bob.page.goto(f"{server.url}{path}").status == status
            check(bob.page, f"error page {status}")

        boss.open_room("axe")
        boss.say("while bob was away")  # bob's next look at the room shows the "New messages" divider
        expect(boss.message("while bob was away", status="delivered")).to_have_count(1)

        phone = someone("bob", viewport={"width": 390, "height": 844})
        phone.page.goto(f"{server.url}/login")
        phone.page.fill("#username", "bob")
        phone.page.fill("#password", PASSWORD)
        phone.page.click("button[type=submit]")
        phone.page.wait_for_url(f"{server.url}/")
        phone.open_room("axe")
        expect(phone.page.locator("#messages li.divider")).to_have_text("New messages")
        check(phone.page, "room on a phone")
        server.kill()  # offline: the member list greyed, the connection line says so
        expect(phone.page.locator("#members")).to_have_attribute("data-stale", "true")
        check(phone.page, "room on a phone, offline")
    finally:
        for context in contexts:
            context.close()
