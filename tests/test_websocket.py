"""The eventlet transport's WebSocket framing (chat.websocket), without sockets: frames in, messages out."""
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.transport.protocol import BINARY, CLOSE, PING, PONG, TEXT, FrameParser, ProtocolError, frame, unmask

MAX = 1000


def client_frame(payload, opcode=TEXT, fin=True, mask=b"\x37\xfa\x21\x3d", rsv=0):
    """A frame as a client must send it: masked."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + mask + unmask(payload, mask)


def test_server_frames_are_unmasked_and_sized_in_one_two_or_eight_bytes():
    assert frame(b"hi", TEXT) == b"\x81\x02hi"
    assert frame(b"x" * 200, TEXT)[:4] == b"\x81\x7e\x00\xc8"
    assert frame(b"x" * 70000, BINARY)[:10] == b"\x82\x7f" + (70000).to_bytes(8, "big")


def test_a_masked_text_frame_is_one_message():
    assert FrameParser(MAX).feed(client_frame("42[\"join\"]".encode())) == [(TEXT, '42["join"]')]


def test_messages_arrive_whole_however_the_bytes_are_split():
    data = client_frame(b"first") + client_frame(b"x" * 300) + client_frame(b"\x00\x01", BINARY)
    parser = FrameParser(MAX)
    got = []
    for i in range(len(data)):
        got += parser.feed(data[i:i + 1])
    assert got == [(TEXT, "first"), (TEXT, "x" * 300), (BINARY, b"\x00\x01")]


def test_fragments_are_reassembled_and_a_ping_between_them_passes_through():
    data = (client_frame(b"hel", fin=False) + client_frame(b"ping", PING) + client_frame(b"lo", opcode=0))
    assert FrameParser(MAX).feed(data) == [(PING, b"ping"), (TEXT, "hello")]


@pytest.mark.parametrize("data, code", [
    (client_frame(b"x" * (MAX + 1)), 1009),
    (client_frame(b"x" * 600, fin=False) + client_frame(b"x" * 600, opcode=0), 1009),
    (b"\x81\x05hello", 1002),                                   # not masked
    (client_frame(b"x", rsv=0x40), 1002),                        # compressed, never negotiated
    (client_frame(b"x" * 126, PING), 1002),                      # control frame over 125 bytes
    (client_frame(b"x", PING, fin=False), 1002),                 # fragmented control frame
    (client_frame(b"x", opcode=0), 1002),                        # continuation of nothing
    (client_frame(b"a", fin=False) + client_frame(b"b"), 1002),  # new message inside a fragmented one
    (client_frame(b"\xff\xfe"), 1007),                           # text that is not UTF-8
    (client_frame(b"x", opcode=0x3), 1002),                      # reserved opcode
    (client_frame(b"", opcode=0xB), 1002),                       # reserved control opcode (found by hypothesis)
], ids=["too-big", "too-big-in-fragments", "unmasked", "rsv1", "long-control", "fragmented-control",
        "orphan-continuation", "interleaved", "bad-utf8", "reserved-opcode", "reserved-control"])
def test_a_broken_frame_is_a_protocol_error_with_its_close_code(data, code):
    with pytest.raises(ProtocolError) as refused:
        FrameParser(MAX).feed(data)
    assert refused.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone():
    header = b"\x81\xff" + (64 << 20).to_bytes(8, "big")
    with pytest.raises(ProtocolError) as refused:
        FrameParser(MAX).feed(header)
    assert refused.value.code == 1009


def test_a_close_frame_is_reported_with_its_code():
    assert FrameParser(MAX).feed(client_frame(struct.pack("!H", 1000), CLOSE)) == [(CLOSE, b"\x03\xe8")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_any_bytes_give_messages_or_a_protocol_error_never_a_crash(data, step):
    parser = FrameParser(MAX)
    try:
        for i in range(0, len(data), step):
            for opcode, payload in parser.feed(data[i:i + step]):
                assert opcode in (TEXT, BINARY, CLOSE, PING, PONG)
    except ProtocolError as error:
        assert error.code in (1002, 1007, 1009)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=8), st.integers(min_value=1, max_value=97))
def test_any_text_messages_survive_framing_and_any_split(texts, step):
    data = b"".join(client_frame(text.encode(), mask=os.urandom(4)) for text in texts)
    parser = FrameParser(10_000)
    got = []
    for i in range(0, len(data), step):
        got += parser.feed(data[i:i + step])
    assert got == [(TEXT, text) for text in texts]
