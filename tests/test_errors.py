"""The error codes clients learn from the server: chat/errors.py's table, carried by every page."""
import html
import json
import re

from chat import errors


def test_every_code_has_a_status_and_says_whether_a_retry_helps():
    table = errors.table()
    assert set(table) == set(errors.CODES)
    assert {code for code, info in table.items() if info["final"]} == errors.FINAL
    assert all(400 <= info["status"] < 600 for info in table.values())


def test_a_page_carries_the_table_for_its_script(client):
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'<body[^>]* data-errors="([^"]*)"', page)
    assert found and json.loads(html.unescape(found.group(1))) == errors.table()
