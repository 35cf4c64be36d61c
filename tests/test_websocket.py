"""The transport's sans-I/O RFC 6455 (chat.transport.protocol): frames, the close and opening handshakes, limits."""
import base64
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.transport.protocol import (BINARY, CLOSE, PING, PONG, TEXT, FrameParser, Protocol, ProtocolError, State,
                                     accept_response, frame, refusal, unmask)

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
    assert FrameParser(MAX).feed(client_frame(b'42["join"]')) == [(TEXT, '42["join"]')]


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
            for opcode, _ in parser.feed(data[i:i + step]):
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


# The close handshake (RFC 6455 5.5.1, 7.4)


@pytest.mark.parametrize("payload, code", [
    (b"\x03", 1002),                                      # a 1-byte body
    *[(struct.pack("!H", c), 1002) for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)],
    (struct.pack("!H", 1000) + b"\xff\xfe", 1007),       # a reason that is not UTF-8
])
def test_a_close_frame_that_may_not_be_sent_fails_the_connection(payload, code):
    protocol = Protocol(MAX)
    assert protocol.receive(client_frame(payload, CLOSE)) == []
    assert protocol.state is State.CLOSED and protocol.failure == code
    assert protocol.data_to_send() == b"\x88\x02" + struct.pack("!H", code)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999])
def test_a_valid_close_code_is_echoed(code):
    protocol = Protocol(MAX)
    protocol.receive(client_frame(struct.pack("!H", code) + "déjà".encode(), CLOSE))
    assert protocol.state is State.CLOSED and protocol.failure is None and protocol.close_code == code
    assert protocol.data_to_send() == b"\x88\x02" + struct.pack("!H", code)


def test_an_empty_close_is_answered_with_an_empty_close():
    protocol = Protocol(MAX)
    protocol.receive(client_frame(b"", CLOSE))
    assert protocol.data_to_send() == b"\x88\x00"


def test_after_our_close_the_clients_close_ends_it_without_a_second_answer():
    protocol = Protocol(MAX)
    assert protocol.close(1001) == b"\x88\x02\x03\xe9"
    assert protocol.receive(client_frame(b"late", TEXT) + client_frame(b"\x03\xe9", CLOSE)) == []
    assert protocol.state is State.CLOSED and protocol.data_to_send() == b""


def test_messages_before_a_broken_frame_in_the_same_bytes_are_still_delivered():
    protocol = Protocol(MAX)
    assert protocol.receive(client_frame(b"first") + client_frame(b"x", rsv=0x40)) == ["first"]
    assert protocol.failure == 1002


def test_a_failed_connection_drops_its_buffers_at_once():
    second = client_frame(b"y" * 500, opcode=0, fin=False)
    protocol = Protocol(MAX)
    protocol.receive(client_frame(b"x" * 400, fin=False) + second[:300])
    assert protocol.parser.parts and protocol.parser.buffer
    protocol.receive(second[300:] + client_frame(b"z", opcode=0x3))
    assert protocol.failure == 1002
    assert not protocol.parser.parts and not protocol.parser.buffer


def test_a_lost_connection_drops_its_buffers_at_once():
    protocol = Protocol(MAX)
    protocol.receive(client_frame(b"x" * 400, fin=False) + client_frame(b"y" * 500, opcode=0)[:300])
    protocol.lost()
    assert protocol.state is State.CLOSED and not protocol.parser.parts and not protocol.parser.buffer


def test_control_frames_inside_a_fragmented_message_do_not_count_against_its_size():
    data = b"".join(client_frame(b"x" * 100, fin=False, opcode=TEXT if n == 0 else 0) + client_frame(b"p" * 125, PING)
                    for n in range(9)) + client_frame(b"x" * 100, opcode=0)
    protocol = Protocol(MAX)
    assert protocol.receive(data) == ["x" * MAX]
    assert protocol.failure is None and protocol.data_to_send().count(b"\x8a\x7d") == 9


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends():
    with pytest.raises(ProtocolError) as refused:
        FrameParser(MAX).feed(client_frame(b"ok", fin=False) + client_frame(b"\xed\xa0\x80", opcode=0, fin=False))
    assert refused.value.code == 1007


@pytest.mark.parametrize("header", [b"\x81\xfe\x00\x05", b"\x81\xff" + (5).to_bytes(8, "big"),
                                    b"\x81\xff" + (1 << 63).to_bytes(8, "big")])
def test_a_length_not_in_the_fewest_bytes_is_refused(header):
    with pytest.raises(ProtocolError) as refused:
        FrameParser(MAX).feed(header + b"\0\0\0\0hello")
    assert refused.value.code == 1002


# The opening handshake (RFC 6455 4.2)


def handshake(**headers):
    environ = {"REQUEST_METHOD": "GET", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "keep-alive, Upgrade",
               "HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(b"k" * 16).decode(), "HTTP_SEC_WEBSOCKET_VERSION": "13"}
    for name, value in headers.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return refusal(environ)


def test_a_valid_handshake_is_accepted_with_the_rfc_example_answer():
    assert handshake() is None
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in accept_response("dGhlIHNhbXBsZSBub25jZQ==")


@pytest.mark.parametrize("key", ["!!", base64.b64encode(b"k" * 15).decode(), base64.b64encode(b"k" * 17).decode(),
                                 "", None])
def test_a_key_that_is_not_16_bytes_in_base64_gets_400(key):
    assert handshake(HTTP_SEC_WEBSOCKET_KEY=key)[0] == "400 Bad Request"


@pytest.mark.parametrize("version", ["8", "14", "", None])
def test_another_version_gets_426_naming_13(version):
    status, headers, _ = handshake(HTTP_SEC_WEBSOCKET_VERSION=version)
    assert status == "426 Upgrade Required" and ("Sec-WebSocket-Version", "13") in headers


@given(st.dictionaries(st.sampled_from(["HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_SEC_WEBSOCKET_KEY",
                                        "HTTP_SEC_WEBSOCKET_VERSION", "REQUEST_METHOD"]), st.text(max_size=40)))
def test_any_headers_give_an_answer_never_a_crash(headers):
    answer = handshake(**headers)
    assert answer is None or answer[0].split()[0] in ("400", "426")
