"""chat.http_head against the standard library's request parsing it stands in for."""
import http.server
import io
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat import http_head


class Handler(http.server.BaseHTTPRequestHandler):
    """A request handler without a socket: the head in, what parsing it set out."""

    protocol_version = "HTTP/1.1"

    def __init__(self, head: bytes):  # no super().__init__: it would serve a connection
        line, _, rest = head.partition(b"\n")
        self.raw_requestline = line + b"\n"
        self.rfile = io.BytesIO(rest)
        self.errors: list[tuple[int, str]] = []
        self.headers: Any = None

    def send_error(self, code, message=None, explain=None):
        self.errors.append((int(code), message))

    def handle_expect_100(self):
        return True

    def outcome(self, ok):
        fields = list(self.headers.items()) if ok else None
        return (ok, self.command, getattr(self, "path", None), self.request_version, self.close_connection,
                fields, self.errors)


def both(head: bytes):
    """(the standard library's outcome, chat.http_head's) for one head."""
    theirs, ours = Handler(head), Handler(head)
    return theirs.outcome(theirs.parse_request()), ours.outcome(http_head.parse_request(ours))


names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1,
                max_size=20)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
spaced = st.builds(lambda a, b: a + " " + b, values, values).map(str.strip)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1", "HTTP/1.1.1", "HTTP/x.y",
                            "HTTP/\u00b2.1", "HTTP/01.01", "HTTP/12345678901.1", "HTTPS/1.1", "http/1.1"])
paths = st.sampled_from(["/", "/healthz", "//evil.example/x", "/socket.io/?EIO=4&transport=websocket", "*"])
methods = st.sampled_from(["GET", "POST", "FROB", "get"])


@settings(max_examples=300, deadline=None)
@given(method=methods, path=paths, version=st.one_of(versions, st.none()), extra=st.booleans(),
       fields=st.lists(st.tuples(names, st.one_of(values, spaced)), max_size=8))
def test_a_head_is_parsed_as_the_standard_library_parses_it(method, path, version, extra, fields):
    words = [method, path] + ([version] if version else []) + (["extra"] if extra else [])
    head = " ".join(words).encode() + b"\r\n"
    head += b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields) + b"\r\n"
    theirs, ours = both(head)
    assert ours == theirs


@pytest.mark.parametrize("fields", [
    b"Connection: close\r\n", b"Connection: keep-alive\r\n", b"Expect: 100-continue\r\n", b"",
    b"Host: a\r\nHost: b\r\n", b"X-Empty:\r\n", b"X-Lead:   \tvalue\r\n"])
def test_the_fields_that_steer_the_connection_steer_it_alike(fields):
    for version in (b"HTTP/1.0", b"HTTP/1.1"):
        theirs, ours = both(b"GET / " + version + b"\r\n" + fields + b"\r\n")
        assert ours == theirs


def test_optional_whitespace_after_a_value_is_not_part_of_it():
    handler = Handler(b"GET / HTTP/1.1\r\nSec-WebSocket-Key: abc== \t\r\n\r\n")
    assert http_head.parse_request(handler)
    assert handler.headers["sec-websocket-key"] == "abc=="


@pytest.mark.parametrize("line", [b"nonsense", b"Bad Name: x", b" folded: x", b"\tfolded", b": no name",
                                  b"X-CR: a\rInjected: b", b"X-NUL: a\0b", b"X-\xff: v"])
def test_a_line_that_is_no_field_is_refused(line):
    handler = Handler(b"GET / HTTP/1.1\r\nHost: a\r\n" + line + b"\r\n\r\n")
    assert http_head.parse_request(handler) is False
    assert handler.errors == [(HTTPStatus.BAD_REQUEST, "Bad header line")]


def test_too_long_a_line_or_too_many_fields_are_refused_as_the_standard_library_does():
    long_line = b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    for head, reason in ((long_line, "Line too long"), (many, "Too many headers")):
        theirs, ours = both(head)
        assert ours[0] is False and ours[6] == [(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, reason)]
        assert theirs[0] is False and theirs[6][0][0] == ours[6][0][0]


gevent_names = st.one_of(names, st.sampled_from(["Content-Type", "content-length", "Connection", "Upgrade",
                                                 "Transfer-Encoding", "X_Under", "Expect", "Cookie"]))
latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(gevent_names, st.one_of(values, spaced, latin1)), max_size=10),
       asked=st.lists(gevent_names, max_size=6))
def test_gevent_sees_the_fields_as_its_own_header_class_shows_them(fields, asked):
    """chat.internals' header class and environ fields give gevent.pywsgi what its own OldMessage would."""
    from gevent.pywsgi import OldMessage, WSGIHandler

    from chat import internals

    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields) + b"\r\n"
    theirs = http_head.read_fields(io.BytesIO(head).readline, OldMessage)
    ours = internals.gevent_fields(io.BytesIO(head), http_head.read_fields)
    stock = WSGIHandler.__new__(WSGIHandler)
    stock.headers = theirs
    assert list(internals.gevent_environ_fields(ours)) == list(stock._headers())
    for name in asked + ["content-type", "CONTENT-LENGTH", "connection"]:
        assert ours.get(name) == theirs.get(name) and ours.get(name, "") == theirs.get(name, "")
    assert ours.typeheader == theirs.typeheader
    assert ours.getheader("content-length") == theirs.getheader("content-length")
    assert list(ours.headers) == list(theirs.headers) and ours.items() == theirs.items()
