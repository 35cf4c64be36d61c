"""Security in real Chromium: the pages run under the Content-Security-Policy, and a foreign site
(another origin on the same machine, so the same site for cookies) can neither open a Socket.IO
connection with the user's cookie, nor post a message, nor submit a form in their name."""
import http.server
import json
import threading

import pytest

from chat.security import CONTENT_SECURITY_POLICY
from tests.servers import read_messages, register

from .conftest import expect

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><meta charset="utf-8"><title>cute cats</title>
<form id="logout" method="post" action="{papo}/logout" target="sink"></form>
<iframe name="sink"></iframe>
<script>
window.result = {{websocket: "pending", polling: "pending", post: "pending"}};
const ws = new WebSocket("{ws}/socket.io/?EIO=4&transport=websocket");
ws.onmessage = (e) => {{ window.result.websocket = "opened: " + e.data.slice(0, 40); }};
ws.onerror = () => {{ if (window.result.websocket === "pending") window.result.websocket = "refused"; }};
fetch("{papo}/socket.io/?EIO=4&transport=polling", {{credentials: "include"}})
  .then((r) => r.text()).then((t) => {{ window.result.polling = "read: " + t.slice(0, 40); }})
  .catch(() => {{ window.result.polling = "refused"; }});
fetch("{papo}/api/rooms/hijacked/messages", {{method: "POST", credentials: "include", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{text: "forged", client_id: "x"}})}})
  .then(() => {{ window.result.post = "sent"; }}).catch(() => {{ window.result.post = "blocked"; }});
document.getElementById("logout").submit();
</script>"""


def serve_attack(html):
    """A foreign site on another loopback port: (url, server to shut down)."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd


def test_pages_work_under_the_content_security_policy(person, server):
    alice, bob = person("alice"), person("bob")
    sockets = []
    alice.page.on("websocket", lambda ws: sockets.append(ws.url))
    answer = alice.page.goto(f"{server.url}/room/csp")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    alice.wait_online()
    bob.open_room("csp")
    alice.say("under the policy")
    expect(bob.message("under the policy")).to_have_count(1)
    bob.page.goto(f"{server.url}/")
    expect(bob.page.locator("#room-rows")).to_contain_text("csp")
    assert any("/socket.io/" in url for url in sockets), "the client never opened its WebSocket"
    for someone in (alice, bob):
        refused = [text for text in someone.console_errors if "Content Security Policy" in text or "Refused" in text]
        assert not refused and not someone.errors, refused + someone.errors


def test_a_foreign_site_cannot_use_the_session_of_a_signed_in_user(person, server, chromium):
    alice = person("alice")
    papo_ws = server.url.replace("http", "ws", 1)
    attack_url, httpd = serve_attack(ATTACK.format(papo=server.url, ws=papo_ws))
    try:
        attack = alice.new_page()
        attack.goto(attack_url)
        attack.wait_for_function(
            "() => Object.values(window.result).every((value) => value !== 'pending')", timeout=15_000)
        result = attack.evaluate("() => window.result")
        attack.wait_for_timeout(500)
    finally:
        httpd.shutdown()
    print(f"attack from {attack_url}: {json.dumps(result)}")
    assert result["websocket"] == "refused", result
    assert result["polling"] == "refused", result  # no CORS grant: the answer cannot be read
    alice.page.goto(f"{server.url}/")
    alice.wait_online()  # still signed in: the cross-site logout was refused
    token = register(server.url, f"reader{alice.name}")
    assert read_messages(server.url, token, "hijacked") == []
