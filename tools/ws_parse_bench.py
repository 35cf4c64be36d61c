"""Micro-benchmark: CPU to parse N masked client frames with Papo's parser, wsproto's and websockets'.

    .venv/bin/python tools/ws_parse_bench.py [frames] [frames per read]

A frame is a typical Socket.IO message of the benchmark (about 130 bytes, masked, text); the bytes are
handed over `per_read` frames at a time, as the hub reads them. Process CPU time, best of 5.
websockets is optional (it is not a dependency): put it on PYTHONPATH to include it.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chat.transport.protocol import Protocol  # noqa: E402

MESSAGE = ('42["message",{"room":"bench","text":"' + "x" * 64 + '","client_id":"c-000001"}]').encode()


def masked(payload, mask=b"\x37\xfa\x21\x3d"):
    header = struct.pack("!BB", 0x81, 0x80 | len(payload)) if len(payload) < 126 else \
        struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def papo(chunks):
    protocol = Protocol(1_000_000)
    count = 0
    for chunk in chunks:
        count += len(protocol.receive(chunk))
    return count


def wsproto_parse(chunks):
    from wsproto.connection import Connection, ConnectionType

    connection = Connection(ConnectionType.SERVER)
    count = 0
    for chunk in chunks:
        connection.receive_data(chunk)
        for event in connection.events():
            if event.message_finished:
                count += 1
    return count


def websockets_parse(chunks):
    from websockets.protocol import OPEN, Protocol as WsProtocol, Side

    protocol = WsProtocol(Side.SERVER, state=OPEN, max_size=1_000_000)
    count = 0
    for chunk in chunks:
        protocol.receive_data(chunk)
        count += len(protocol.events_received())
    return count


def best_of(fn, chunks, rounds=5):
    best = None
    for _ in range(rounds):
        began = time.process_time()
        fn(chunks)
        took = time.process_time() - began
        best = took if best is None else min(best, took)
    return best


def main(argv):
    frames = int(argv[1]) if len(argv) > 1 else 100_000
    per_read = int(argv[2]) if len(argv) > 2 else 1
    one = masked(MESSAGE)
    chunks = [one * per_read] * (frames // per_read)
    parsers = {"papo": papo, "wsproto": wsproto_parse}
    try:
        import websockets  # noqa: F401
        parsers["websockets"] = websockets_parse
    except ImportError:
        pass
    for name, fn in parsers.items():
        assert fn(chunks[:10]) == 10 * per_read, name
    results = {name: best_of(fn, chunks) for name, fn in parsers.items()}
    base = results["papo"]
    for name, took in results.items():
        print(f"{name:11s} {frames} frames, {per_read}/read: {took * 1000:7.1f} ms CPU, "
              f"{took / frames * 1e6:5.2f} us/frame, {took / base:4.2f}x papo")


if __name__ == "__main__":
    main(sys.argv)
