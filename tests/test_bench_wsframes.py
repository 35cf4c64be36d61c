"""The load generator's WebSocket client, its protocol part (bench/loadgen/lib/wsframes.js): bytes in, events out."""
import base64
import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WSFRAMES = ROOT / "bench/loadgen/lib/wsframes.js"
NODE = shutil.which("node")
KEY = base64.b64encode(b"sixteen byte key").decode()
ACCEPT = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


def node(script, *args):
    assert NODE, "node is needed: the load generator is Node"
    out = subprocess.run([NODE, "-e", script, str(WSFRAMES), *args], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return json.loads(out)


def read(*chunks, key=KEY):
    """Feed the chunks to a Reader for `key`; its events, payloads as latin-1 text."""
    script = (
        "const { Reader } = require(process.argv[1]);"
        "const r = new Reader(process.argv[2]); const out = [];"
        "for (const c of JSON.parse(process.argv[3])) for (const e of r.feed(Buffer.from(c, 'base64'))) {"
        "  const [k, v] = Object.entries(e)[0]; out.push([k, Buffer.isBuffer(v) ? v.toString('latin1') : v]); }"
        "console.log(JSON.stringify(out));"
    )
    return [tuple(e) for e in node(script, key, json.dumps([base64.b64encode(c).decode() for c in chunks]))]


def head(status="101 Switching Protocols", accept=ACCEPT):
    return (f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()


def server_frame(opcode, payload, fin=True, masked=False):
    n = len(payload)
    length = bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n) if n < 65536 else \
        bytes([127]) + struct.pack("!Q", n)
    length = bytes([length[0] | (0x80 if masked else 0)]) + length[1:]
    return bytes([(0x80 if fin else 0) | opcode]) + length + (b"\0\0\0\0" if masked else b"") + payload


def test_the_101_and_the_frames_behind_it_are_read_whatever_the_chunks():
    wire = head() + server_frame(1, b'0{"sid":"a"}') + server_frame(1, b"40")
    want = [("open", True), ("message", '0{"sid":"a"}'), ("message", "40")]
    assert read(wire) == want
    assert read(*[wire[i:i + 1] for i in range(len(wire))]) == want  # one byte at a time


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 70000])
def test_payload_lengths_take_the_short_16_and_64_bit_forms(size):
    payload = bytes(i % 251 for i in range(size))
    wire = head() + server_frame(2, payload)
    got = read(wire[:300], wire[300:])
    assert got[0] == ("open", True) and got[1] == ("message", payload.decode("latin1")) and len(got) == 2


def test_a_fragmented_message_arrives_whole_with_a_ping_between_its_fragments_answered_first():
    wire = head() + server_frame(1, b"42[", fin=False) + server_frame(9, b"p") + server_frame(0, b'"a",', fin=False) \
        + server_frame(0, b'"b"]')
    assert read(wire) == [("open", True), ("ping", "p"), ("message", '42["a","b"]')]


def test_a_close_frame_is_passed_on_with_its_code():
    assert read(head() + server_frame(8, b"\x03\xe9")) == [("open", True), ("close", "\x03\xe9")]


@pytest.mark.parametrize("wire,error", [
    (head(status="400 Bad Request"), "handshake: HTTP/1.1 400 Bad Request"),
    (head(accept="bm90IHRoZSBhbnN3ZXI="), "handshake: wrong Sec-WebSocket-Accept"),
    (head() + server_frame(1, b"x", masked=True), "a masked frame from the server"),
    (head() + server_frame(0, b"x"), "a fragment out of turn"),
    (head() + server_frame(9, b"x", fin=False), "a fragmented control frame"),
    (head() + server_frame(3, b"x"), "opcode 3"),
])
def test_what_breaks_the_protocol_ends_the_reading_with_an_error(wire, error):
    got = read(wire + server_frame(1, b"after"))
    assert got[-1] == ("error", error)
    assert ("message", "after") not in got


def test_a_head_that_never_ends_is_refused_past_its_limit():
    assert read(b"HTTP/1.1 101 Switching Protocols\r\nX: " + b"y" * 20000) == [
        ("error", "handshake: response head too long")]


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_client_frames_are_masked_final_and_unmask_to_their_payload(size):
    script = (
        "const { frame } = require(process.argv[1]);"
        "const f = frame(1, Buffer.alloc(Number(process.argv[2]), 'x'), Buffer.from([1, 2, 3, 4]));"
        "console.log(JSON.stringify(f.toString('base64')));"
    )
    wire = base64.b64decode(node(script, str(size)))
    assert wire[0] == 0x81 and wire[1] & 0x80
    n, at = wire[1] & 0x7F, 2
    if n == 126:
        n, at = struct.unpack("!H", wire[2:4])[0], 4
    elif n == 127:
        n, at = struct.unpack("!Q", wire[2:10])[0], 10
    mask, body = wire[at:at + 4], wire[at + 4:]
    assert n == size == len(body) and mask == b"\x01\x02\x03\x04"
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == b"x" * size
