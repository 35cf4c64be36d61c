"""The conformance cases, modelled on the Autobahn testsuite's case list, and the verdict on each run.

Sections follow Autobahn's numbering: 1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes,
5 fragmentation, 6 UTF-8, 7 close handling, 9 sizes; L adds Papo's message size limit and H the
opening handshake on Engine.IO's path. A case sends bytes to an echo endpoint and says what must
come back: the echoed messages, the pongs, and the close code the server's close frame carries.
"""
import dataclasses
import struct

from .peer import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, Peer, client_frame, close_payload

LIMIT = 1_000_000  # the server's MAX_FRAME_BYTES in the conformance run
READ_AFTER = 3.0  # seconds the server gets to finish after the case's last bytes
FAIL_FAST_PAUSE = 0.5

# {case id: the RFC 6455 sentence that allows the server's non-strict behaviour}
_FAIL_AT_ONCE = ("7.1.7: \"[...] the endpoint MUST NOT continue to attempt to process data (including a "
                 "responding Close frame) from the remote endpoint after being instructed to _Fail the WebSocket "
                 "Connection_.\" Nothing asks to answer the messages before the broken frame first: under the "
                 "development server, simple-websocket fails the connection as it parses, before its echo of an "
                 "earlier message in the same read goes out (Autobahn rates this non-strict too).")
NON_STRICT_ALLOWED = {
    **{case: _FAIL_AT_ONCE for case in ("3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5",
                                        "5.15")},
    "7.1.6": "5.5.1: \"[...] an endpoint MAY delay sending a Close frame until its current message is sent\": "
             "MAY, not MUST. Under the development server the close can overtake the echo of the 256 KB message "
             "before it (Autobahn's case 7.1.6 is informational for the same reason).",
    **{case: "7.4.2: \"Status codes in the range 1000-2999 are reserved for definition by this protocol, its "
             "future revisions, and extensions specified in a permanent and readily available public "
             "specification.\" 1014 (Bad Gateway) is in IANA's registry but in no revision of RFC 6455; "
             "wsproto, under the development server, answers it as an unknown code with 1002. Papo's own "
             "transport echoes it." for case in ("7.7.12",)},
    "6.4.3": "8.1: \"When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream is "
             "not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_.\" "
             "No sentence asks for it before the frame is complete: Papo checks a frame's text once the "
             "whole frame is in (fragments are checked one by one).",
    "6.4.4": "8.1, as for 6.4.3: the invalid sequence is inside one frame, checked when that frame is complete.",
}


@dataclasses.dataclass
class Expect:
    """What the server must send: messages [(opcode, payload)], pongs [payload], and a close code in `close`."""

    messages: list = dataclasses.field(default_factory=list)
    pongs: list = dataclasses.field(default_factory=list)
    close: frozenset = frozenset({1000})
    ends_normally: bool = True  # the client closes with 1000 after the steps
    fail_fast: bool = False  # the close must come before the last pause
    lenient_close: frozenset = frozenset()  # close codes that make the case non-strict rather than failed
    echo_may_be_lost: bool = False  # missing messages make the case non-strict rather than failed


@dataclasses.dataclass
class Case:
    id: str
    title: str
    steps: object  # steps(peer)
    expect: Expect


@dataclasses.dataclass
class Result:
    id: str
    title: str
    verdict: str  # OK, NON-STRICT, FAILED
    detail: str = ""


def _fail(code=1002):
    return Expect(close=frozenset({code}), ends_normally=False)


def _send(*frames, chunk=None, delay=0.0):
    def steps(peer):
        for n, data in enumerate(frames):
            if delay and n:
                peer.pause(delay)
            peer.send(data, chunk=chunk)
    return steps


def framing_cases():
    cases = []
    for section, opcode in (("1.1", TEXT), ("1.2", BINARY)):
        sizes = (0, 125, 126, 127, 128, 65535, 65536)
        for n, size in enumerate(sizes, 1):
            payload = b"*" * size if opcode == TEXT else bytes([0xFE]) * size
            cases.append(Case(f"{section}.{n}", f"{'text' if opcode == TEXT else 'binary'} of {size} bytes",
                              _send(client_frame(payload, opcode)), Expect(messages=[(opcode, payload)])))
        payload = b"*" * 65536 if opcode == TEXT else bytes([0xFE]) * 65536
        cases.append(Case(f"{section}.8", "65536 bytes in chops of 997",
                          _send(client_frame(payload, opcode), chunk=997), Expect(messages=[(opcode, payload)])))
    cases.append(Case("1.3.1", "an unmasked client frame", _send(client_frame(b"hello", mask=False)), _fail()))
    long_2 = struct.pack("!BBH", 0x81, 0x80 | 126, 5) + b"\0\0\0\0hello"
    long_8 = struct.pack("!BBQ", 0x81, 0x80 | 127, 5) + b"\0\0\0\0hello"
    cases.append(Case("1.3.2", "a 5-byte length sent in 2 bytes (5.2: the fewest bytes MUST be used)", _send(long_2),
                      _fail()))
    cases.append(Case("1.3.3", "a 5-byte length sent in 8 bytes", _send(long_8), _fail()))
    return cases


def ping_cases():
    ping, pong = (lambda payload=b"": client_frame(payload, PING)), (lambda payload=b"": client_frame(payload, PONG))
    return [
        Case("2.1", "ping without payload", _send(ping()), Expect(pongs=[b""])),
        Case("2.2", "ping with a text payload", _send(ping(b"Hello, world!")), Expect(pongs=[b"Hello, world!"])),
        Case("2.3", "ping with a binary payload", _send(ping(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")),
             Expect(pongs=[b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"])),
        Case("2.4", "ping with 125 bytes", _send(ping(b"\xfe" * 125)), Expect(pongs=[b"\xfe" * 125])),
        Case("2.5", "ping with 126 bytes", _send(ping(b"\xfe" * 126)), _fail()),
        Case("2.6", "ping with 125 bytes in chops of 1", _send(ping(b"\xfe" * 125), chunk=1),
             Expect(pongs=[b"\xfe" * 125])),
        Case("2.7", "unsolicited pong without payload", _send(pong()), Expect()),
        Case("2.8", "unsolicited pong with payload", _send(pong(b"unsolicited pong payload")), Expect()),
        Case("2.9", "unsolicited pong, then ping", _send(pong(b"unsolicited"), ping(b"solicited")),
             Expect(pongs=[b"solicited"])),
        Case("2.10", "10 pings", _send(*[ping(b"ping %d" % n) for n in range(10)]),
             Expect(pongs=[b"ping %d" % n for n in range(10)])),
        Case("2.11", "10 pings in chops of 1", _send(b"".join(ping(b"ping %d" % n) for n in range(10)), chunk=1),
             Expect(pongs=[b"ping %d" % n for n in range(10)])),
    ]


def _text_bad_then_ping(bad, chunk=None, delay=0.0):
    return _send(client_frame(b"Hello, world!"), bad, client_frame(b"", PING), chunk=chunk, delay=delay)


def reserved_bit_cases():
    after_hello = Expect(messages=[(TEXT, b"Hello, world!")], close=frozenset({1002}), ends_normally=False,
                         echo_may_be_lost=True)
    return [
        Case("3.1", "text with RSV1", _send(client_frame(b"Hello, world!", rsv=4)), _fail()),
        Case("3.2", "text, text with RSV2, ping", _text_bad_then_ping(client_frame(b"Hello, world!", rsv=2)),
             after_hello),
        Case("3.3", "as 3.2, frame by frame", _text_bad_then_ping(client_frame(b"Hello, world!", rsv=3), delay=0.1),
             after_hello),
        Case("3.4", "as 3.2, in chops of 1", _text_bad_then_ping(client_frame(b"Hello, world!", rsv=4), chunk=1),
             after_hello),
        Case("3.5", "binary with RSV1 and RSV3", _send(client_frame(b"\xff" * 8, BINARY, rsv=5)), _fail()),
        Case("3.6", "ping with RSV2 and RSV3", _send(client_frame(b"Hello", PING, rsv=3)), _fail()),
        Case("3.7", "close with all RSV bits", _send(client_frame(close_payload(1000), CLOSE, rsv=7)), _fail()),
    ]


def opcode_cases():
    cases = []
    after_hello = Expect(messages=[(TEXT, b"Hello, world!")], close=frozenset({1002}), ends_normally=False,
                         echo_may_be_lost=True)
    for section, opcodes in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (11, 12, 13, 14, 15))):
        a, b, c, d, e = opcodes
        cases += [
            Case(f"{section}.1", f"opcode {a}", _send(client_frame(b"", a)), _fail()),
            Case(f"{section}.2", f"opcode {b} with payload", _send(client_frame(b"reserved", b)), _fail()),
            Case(f"{section}.3", f"text, opcode {c}, ping", _text_bad_then_ping(client_frame(b"", c)), after_hello),
            Case(f"{section}.4", f"text, opcode {d} with payload, ping",
                 _text_bad_then_ping(client_frame(b"reserved", d)), after_hello),
            Case(f"{section}.5", f"text, opcode {e}, ping, in chops of 1",
                 _text_bad_then_ping(client_frame(b"reserved", e), chunk=1), after_hello),
        ]
    return cases


def _fragments(parts, opcode=TEXT, pings=()):
    """Frames of a message in `parts`, a ping after the fragments whose indexes are in `pings`."""
    frames = []
    for n, part in enumerate(parts):
        frames.append(client_frame(part, opcode if n == 0 else CONTINUATION, fin=n == len(parts) - 1))
        if n in pings:
            frames.append(client_frame(b"ping %d" % n, PING))
    return frames


def fragmentation_cases():
    two = [b"fragment1", b"fragment2"]
    whole = (TEXT, b"fragment1fragment2")
    nothing = client_frame(b"nothing to continue", CONTINUATION)
    nothing_open = client_frame(b"nothing to continue", CONTINUATION, fin=False)
    five = [b"fragment%d" % n for n in range(1, 6)]
    return [
        Case("5.1", "ping in 2 fragments", _send(client_frame(b"ping", PING, fin=False),
                                                 client_frame(b"ping", CONTINUATION)), _fail()),
        Case("5.2", "pong in 2 fragments", _send(client_frame(b"pong", PONG, fin=False),
                                                 client_frame(b"pong", CONTINUATION)), _fail()),
        Case("5.3", "text in 2 fragments", _send(*_fragments(two)), Expect(messages=[whole])),
        Case("5.4", "as 5.3, in chops of 1", _send(b"".join(_fragments(two)), chunk=1), Expect(messages=[whole])),
        Case("5.5", "as 5.3, with pauses", _send(*_fragments(two), delay=0.1), Expect(messages=[whole])),
        Case("5.6", "text in 2 fragments, a ping between", _send(*_fragments(two, pings=(0,))),
             Expect(messages=[whole], pongs=[b"ping 0"])),
        Case("5.7", "as 5.6, in chops of 1", _send(b"".join(_fragments(two, pings=(0,))), chunk=1),
             Expect(messages=[whole], pongs=[b"ping 0"])),
        Case("5.8", "as 5.6, with pauses", _send(*_fragments(two, pings=(0,)), delay=0.1),
             Expect(messages=[whole], pongs=[b"ping 0"])),
        Case("5.9", "a final continuation with nothing to continue, then text",
             _send(nothing, *_fragments(two)), _fail()),
        Case("5.10", "as 5.9, frame by frame", _send(nothing, *_fragments(two), delay=0.1), _fail()),
        Case("5.11", "as 5.9, in chops of 1", _send(b"".join([nothing, *_fragments(two)]), chunk=1), _fail()),
        Case("5.12", "a continuation (not final) with nothing to continue, then text",
             _send(nothing_open, *_fragments(two)), _fail()),
        Case("5.13", "as 5.12, frame by frame", _send(nothing_open, *_fragments(two), delay=0.1), _fail()),
        Case("5.14", "as 5.12, in chops of 1", _send(b"".join([nothing_open, *_fragments(two)]), chunk=1), _fail()),
        Case("5.15", "text in 2 fragments, then a continuation with nothing to continue",
             _send(*_fragments(two), nothing_open, client_frame(b"text")),
             Expect(messages=[whole], close=frozenset({1002}), ends_normally=False, echo_may_be_lost=True)),
        Case("5.16", "2x: a continuation with nothing to continue, then a fragmented text",
             _send(nothing_open, *_fragments(two), nothing_open, *_fragments(two)), _fail()),
        Case("5.17", "as 5.16, with final continuations", _send(nothing, *_fragments(two), nothing, *_fragments(two)),
             _fail()),
        Case("5.18", "a text fragment, then a new text message inside it",
             _send(client_frame(b"fragment1", fin=False), client_frame(b"fragment2")), _fail()),
        Case("5.19", "text in 5 fragments with pauses, pings between", _send(*_fragments(five, pings=(1, 3)),
                                                                              delay=0.1),
             Expect(messages=[(TEXT, b"".join(five))], pongs=[b"ping 1", b"ping 3"])),
        Case("5.20", "as 5.19, in chops of 1", _send(b"".join(_fragments(five, pings=(1, 3))), chunk=1),
             Expect(messages=[(TEXT, b"".join(five))], pongs=[b"ping 1", b"ping 3"])),
    ]


VALID_UTF8 = [
    ("Hello-µ@ßöäüàá-UTF-8!!".encode(), "mixed Latin"), ("κόσμε".encode(), "Greek"),
    (b"\x00", "U+0000"), (b"\x7f", "U+007F"), (b"\xc2\x80", "U+0080"), (b"\xdf\xbf", "U+07FF"),
    (b"\xe0\xa0\x80", "U+0800"), (b"\xed\x9f\xbf", "U+D7FF"), (b"\xee\x80\x80", "U+E000"),
    (b"\xef\xbf\xbd", "U+FFFD"), (b"\xef\xbf\xbe", "U+FFFE (a noncharacter, still UTF-8)"),
    (b"\xef\xbf\xbf", "U+FFFF"), (b"\xf0\x90\x80\x80", "U+10000"), (b"\xf4\x8f\xbf\xbf", "U+10FFFF"),
]
INVALID_UTF8 = [
    (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", "a surrogate inside text"),
    (b"\x80", "a lone continuation byte"), (b"\x80\xbf\x80\xbf", "continuation bytes only"),
    (b"\xc0 ", "a lone start byte"), (b"\xc2", "a 2-byte sequence cut at the end"),
    (b"\xe0\x80", "a 3-byte sequence cut at the end"), (b"\xf0\x80\x80", "a 4-byte sequence cut at the end"),
    (b"\xfe", "byte 0xFE"), (b"\xff", "byte 0xFF"), (b"\xfe\xfe\xff\xff", "bytes 0xFE 0xFF"),
    (b"\xc0\xaf", "overlong '/' in 2 bytes"), (b"\xe0\x80\xaf", "overlong '/' in 3 bytes"),
    (b"\xf0\x80\x80\xaf", "overlong '/' in 4 bytes"), (b"\xc1\xbf", "overlong U+007F"),
    (b"\xe0\x9f\xbf", "overlong U+07FF"), (b"\xf0\x8f\xbf\xbf", "overlong U+FFFF"),
    (b"\xed\xa0\x80", "surrogate U+D800"), (b"\xed\xbf\xbf", "surrogate U+DFFF"),
    (b"\xed\xa0\x80\xed\xb0\x80", "a surrogate pair"), (b"\xf4\x90\x80\x80", "U+110000, past Unicode"),
    (b"\xf8\x88\x80\x80\x80", "a 5-byte sequence"), (b"\xfc\x84\x80\x80\x80\x80", "a 6-byte sequence"),
]


def _one_frame_in_chops(payload, cuts, delay):
    """One text frame whose bytes go out cut at these payload offsets, with pauses between the pieces."""
    data = client_frame(payload, mask=b"\0\0\0\0")
    header = len(data) - len(payload)
    edges = [0] + [header + cut for cut in cuts] + [len(data)]

    def steps(peer):
        for n in range(len(edges) - 1):
            if n:
                peer.pause(delay)
            peer.send(data[edges[n]:edges[n + 1]])
    return steps


def utf8_cases():
    cases = [
        Case("6.1.1", "empty text", _send(client_frame(b"")), Expect(messages=[(TEXT, b"")])),
        Case("6.1.2", "empty text in 3 empty fragments", _send(*_fragments([b"", b"", b""])),
             Expect(messages=[(TEXT, b"")])),
        Case("6.1.3", "empty fragment, text fragment, empty fragment", _send(*_fragments([b"", b"middle", b""])),
             Expect(messages=[(TEXT, b"middle")])),
    ]
    greek = "κόσμε".encode()
    cases += [
        Case("6.2.1", "Greek, fragmented between code points", _send(*_fragments([greek[:2], greek[2:]])),
             Expect(messages=[(TEXT, greek)])),
        Case("6.2.2", "Greek, fragmented inside a code point", _send(*_fragments([greek[:3], greek[3:]])),
             Expect(messages=[(TEXT, greek)])),
        Case("6.2.3", "Greek, one byte per fragment", _send(*_fragments([greek[i:i + 1] for i in range(len(greek))])),
             Expect(messages=[(TEXT, greek)])),
        Case("6.2.4", "U+10000 split over 4 fragments",
             _send(*_fragments([b"\xf0", b"\x90", b"\x80", b"\x80"])), Expect(messages=[(TEXT, b"\xf0\x90\x80\x80")])),
    ]
    for n, (payload, name) in enumerate(VALID_UTF8, 1):
        cases.append(Case(f"6.5.{n}", f"valid: {name}", _send(client_frame(payload)),
                          Expect(messages=[(TEXT, payload)])))
        pieces = [payload[i:i + 1] for i in range(len(payload))]
        cases.append(Case(f"6.6.{n}", f"valid, one byte per fragment: {name}", _send(*_fragments(pieces)),
                          Expect(messages=[(TEXT, payload)])))
    for n, (payload, name) in enumerate(INVALID_UTF8, 1):
        cases.append(Case(f"6.7.{n}", f"invalid: {name}", _send(client_frame(payload)), _fail(1007)))
        pieces = [payload[i:i + 1] for i in range(len(payload))]
        cases.append(Case(f"6.8.{n}", f"invalid, one byte per fragment: {name}", _send(*_fragments(pieces)),
                          _fail(1007)))
    fast = dataclasses.replace(_fail(1007), fail_fast=True)
    valid, invalid, tail = greek, b"\xed\xa0\x80", b"edited"
    cases += [
        Case("6.4.1", "fail fast: an invalid fragment, then a pause before the last",
             _send(*_fragments([valid, invalid, tail]), delay=FAIL_FAST_PAUSE), fast),
        Case("6.4.2", "fail fast: a sequence broken across fragments, then a pause",
             _send(*_fragments([valid + invalid[:1], invalid[1:], tail]), delay=FAIL_FAST_PAUSE), fast),
        Case("6.4.3", "fail fast inside one frame: invalid bytes, then a pause before the frame's end",
             _one_frame_in_chops(valid + invalid + tail, [len(valid), len(valid) + len(invalid)], FAIL_FAST_PAUSE),
             fast),
        Case("6.4.4", "fail fast inside one frame: the invalid byte alone, then a pause",
             _one_frame_in_chops(valid + invalid + tail, [len(valid) + 1, len(valid) + 2], FAIL_FAST_PAUSE), fast),
    ]
    return cases


def _close(payload):
    return _send(client_frame(payload, CLOSE))


def close_cases():
    hello = client_frame(b"Hello World!")
    normal = client_frame(close_payload(1000), CLOSE)
    cases = [
        Case("7.1.1", "text, then close", _send(hello), Expect(messages=[(TEXT, b"Hello World!")])),
        Case("7.1.2", "close twice", _send(normal, normal), Expect(ends_normally=False)),
        Case("7.1.3", "close, then ping: no pong", _send(normal, client_frame(b"ping", PING)),
             Expect(ends_normally=False)),
        Case("7.1.4", "close, then text: no echo", _send(normal, hello), Expect(ends_normally=False)),
        Case("7.1.5", "a text fragment, close, then its end", _send(client_frame(b"fragment1", fin=False), normal,
                                                                    client_frame(b"fragment2", CONTINUATION)),
             Expect(ends_normally=False)),
        Case("7.1.6", "256 KB text, close, ping: echo, close, no pong",
             _send(client_frame(b"BAsd7&jh23" * 26214 + b"BAsd"), normal, client_frame(b"ping", PING)),
             Expect(messages=[(TEXT, b"BAsd7&jh23" * 26214 + b"BAsd")], ends_normally=False,
                    echo_may_be_lost=True)),
        Case("7.3.1", "close without payload", _close(b""), Expect(close=frozenset({None, 1000}), ends_normally=False)),
        Case("7.3.2", "close with a 1-byte payload", _close(b"\x03"), _fail()),
        Case("7.3.3", "close with code 1000", _close(close_payload(1000)), Expect(ends_normally=False)),
        Case("7.3.4", "close with code and reason", _close(close_payload(1000, b"Hello World!")),
             Expect(ends_normally=False)),
        Case("7.3.5", "close with a 123-byte reason", _close(close_payload(1000, b"*" * 123)),
             Expect(ends_normally=False)),
        Case("7.3.6", "close with a 124-byte reason (a 126-byte control frame)",
             _close(close_payload(1000, b"*" * 124)), _fail()),
        Case("7.5.1", "close with a reason that is not UTF-8",
             _close(close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")),
             _fail(1007)),
    ]
    valid = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999)
    for n, code in enumerate(valid, 1):
        lenient = frozenset({1002}) if code == 1014 else frozenset()
        cases.append(Case(f"7.7.{n}", f"close with code {code}: echoed", _close(close_payload(code)),
                          Expect(close=frozenset({code}), ends_normally=False, lenient_close=lenient)))
    invalid = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
    for n, code in enumerate(invalid, 1):
        cases.append(Case(f"7.9.{n}", f"close with code {code}, which may not be sent", _close(close_payload(code)),
                          _fail()))
    return cases


def size_cases():
    text = (b"*" * 1000)
    cases = [
        Case("9.1.1", "64 KB text", _send(client_frame(text * 64)), Expect(messages=[(TEXT, text * 64)])),
        Case("9.1.2", "256 KB text", _send(client_frame(text * 256)), Expect(messages=[(TEXT, text * 256)])),
        Case("9.1.3", "999 KB text", _send(client_frame(text * 999)), Expect(messages=[(TEXT, text * 999)])),
        Case("9.2.1", "256 KB binary", _send(client_frame(b"\xfe" * 256_000, BINARY)),
             Expect(messages=[(BINARY, b"\xfe" * 256_000)])),
        Case("9.3.1", "999 KB text in 4 KB fragments", _send(*_fragments([text * 4] * 249 + [text * 3])),
             Expect(messages=[(TEXT, text * 999)])),
        Case("9.4.1", "999 KB binary in 64 KB fragments",
             _send(*_fragments([b"\xfe" * 64_000] * 15 + [b"\xfe" * 39_000], BINARY)),
             Expect(messages=[(BINARY, b"\xfe" * 999_000)])),
        Case("L.1", "a message of exactly the limit", _send(client_frame(b"*" * LIMIT)),
             Expect(messages=[(TEXT, b"*" * LIMIT)])),
        Case("L.2", "one byte over the limit, in one frame", _send(client_frame(b"*" * (LIMIT + 1))), _fail(1009)),
        Case("L.3", "a 64 MB frame: refused before its end", _send(client_frame(b"", length=64 << 20, mask=b"\0\0\0\0")
                                                                    + b"*" * (LIMIT + 100_000)), _fail(1009)),
        Case("L.4", "one byte over the limit, in fragments",
             _send(*_fragments([b"*" * 600_000, b"*" * (LIMIT - 600_000 + 1)])), _fail(1009)),
        Case("L.5", "the limit in fragments with 10 pings of 125 bytes between: control frames do not count",
             _send(*_fragments([b"*" * 100_000] * 10, pings=range(10))),
             Expect(messages=[(TEXT, b"*" * LIMIT)], pongs=[b"ping %d" % n for n in range(10)])),
    ]
    return cases


def all_cases():
    return (framing_cases() + ping_cases() + reserved_bit_cases() + opcode_cases() + fragmentation_cases()
            + utf8_cases() + close_cases() + size_cases())


def run(case, host, port, path):
    """Run one case against the echo endpoint; its Result."""
    peer = Peer(host, port, path)
    try:
        if not peer.accepted:
            return Result(case.id, case.title, "FAILED", f"handshake answered {peer.status}")
        case.steps(peer)
        if case.expect.ends_normally:  # as Autobahn, close once the answers are in (or a second has passed)
            peer.read_until(lambda: _answered(peer, case.expect), 1.0)
            peer.send(client_frame(close_payload(1000), CLOSE))
        peer.read(READ_AFTER)
    finally:
        peer.close()
    return judge(case, peer)


def _answered(peer, expect):
    frames = [detail for _, kind, detail in peer.events if kind == "frame"]
    return (sum(1 for fin, _, opcode, _ in frames if fin and opcode in (TEXT, BINARY, CONTINUATION))
            >= len(expect.messages) and sum(1 for _, _, opcode, _ in frames if opcode == PONG) >= len(expect.pongs))


@dataclasses.dataclass
class Seen:
    """What the server sent during a case, in order."""

    messages: list = dataclasses.field(default_factory=list)
    pongs: list = dataclasses.field(default_factory=list)
    close: bytes | None = None
    close_at: float | None = None
    after_close: int = 0
    marks: list = dataclasses.field(default_factory=list)
    broken: str = ""


def seen(peer):
    """Sort the server's frames into messages (reassembled), pongs and the close frame."""
    found, parts = Seen(), []
    for at, kind, detail in peer.events:
        if kind == "masked-server-frame":
            found.broken = "the server masked a frame"
        elif kind == "mark":
            found.marks.append(at)
        elif kind == "frame":
            fin, rsv, opcode, payload = detail
            if rsv:
                found.broken = "the server set a reserved bit"
            if found.close is not None:
                found.after_close += 1
            elif opcode == CLOSE:
                found.close, found.close_at = payload, at
            elif opcode == PONG:
                found.pongs.append(payload)
            else:
                parts.append((opcode, payload))
                if fin:
                    found.messages.append((parts[0][0], b"".join(p for _, p in parts)))
                    parts = []
    return found


def judge(case, peer):
    """The verdict on what the server sent during a case."""
    expect, found = case.expect, seen(peer)
    if found.broken:
        return Result(case.id, case.title, "FAILED", found.broken)
    problems, lenient = [], []
    if found.messages != expect.messages:
        (lenient if expect.echo_may_be_lost and not found.messages else problems).append(
            f"messages {_short(found.messages)} instead of {_short(expect.messages)}")
    if found.pongs != expect.pongs:
        problems.append(f"pongs {_short(found.pongs)} instead of {_short(expect.pongs)}")
    if found.after_close:
        problems.append(f"{found.after_close} frames after the close frame")
    code = None
    if found.close is None:
        problems.append("no close frame")
    else:
        code = struct.unpack("!H", found.close[:2])[0] if len(found.close) >= 2 else None
        if len(found.close) == 1 or code not in expect.close:
            (lenient if code in expect.lenient_close else problems).append(
                f"close code {code} instead of one of {sorted(expect.close, key=str)}")
    if not peer.tcp_closed:
        problems.append("the server kept TCP open after the close handshake")
    if problems:
        return Result(case.id, case.title, "FAILED", "; ".join(problems))
    if expect.fail_fast and found.marks and found.close_at is not None and found.close_at > found.marks[-1]:
        lenient.append("failed once the frame was complete, not at the bad byte")
    if lenient:
        return Result(case.id, case.title, "NON-STRICT", "; ".join(lenient))
    return Result(case.id, case.title, "OK", f"close {code}")


def _short(items):
    return [(opcode, payload[:20] + (b"..." if len(payload) > 20 else b""), len(payload)) if isinstance(opcode, int)
            else opcode for opcode, payload in items] if items and isinstance(items[0], tuple) else \
        [p[:20] for p in items]


HANDSHAKE_PATH = "/socket.io/?EIO=4&transport=websocket"


@dataclasses.dataclass
class Handshake:
    id: str
    title: str
    headers: dict  # replaces the valid request's headers; None drops one
    status: int
    version_header: bool = False  # the answer must name Sec-WebSocket-Version: 13


def handshake_cases():
    import base64

    b64 = base64.b64encode
    return [
        Handshake("H.1", "a valid handshake", {}, 101),
        Handshake("H.2", "a key that is not base64", {"Sec-WebSocket-Key": "!!"}, 400),
        Handshake("H.3", "a key of 15 bytes", {"Sec-WebSocket-Key": b64(b"x" * 15).decode()}, 400),
        Handshake("H.4", "a key of 17 bytes", {"Sec-WebSocket-Key": b64(b"x" * 17).decode()}, 400),
        Handshake("H.5", "no key", {"Sec-WebSocket-Key": None}, 400),
        Handshake("H.6", "version 8", {"Sec-WebSocket-Version": "8"}, 426, True),
        Handshake("H.7", "version 14", {"Sec-WebSocket-Version": "14"}, 426, True),
        Handshake("H.8", "no version", {"Sec-WebSocket-Version": None}, 426, True),
    ]


def run_handshake(case, host, port, path=HANDSHAKE_PATH):
    """Send one opening handshake by hand; its Result."""
    import base64
    import os
    import socket

    headers = {"Host": f"{host}:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13"}
    headers.update(case.headers)
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall((request + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Result(case.id, case.title, "FAILED", f"no HTTP answer: {data[:80]!r}")
    answer = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    problems = []
    if status != case.status:
        problems.append(f"status {status} instead of {case.status}")
    if case.version_header and answer.get("sec-websocket-version") != "13":
        problems.append("no Sec-WebSocket-Version: 13 in the answer")
    if problems:
        return Result(case.id, case.title, "FAILED", "; ".join(problems))
    return Result(case.id, case.title, "OK", f"status {status}")


__all__ = ["Case", "Expect", "Peer", "Result", "all_cases", "handshake_cases", "run", "run_handshake", "BINARY"]
