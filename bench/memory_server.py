"""Papo with its chat messages kept in memory, as the reference keeps them: what the stack costs a message.

The persistence workload compares Papo, which acks a message only once it is committed to disk,
with the reference, which keeps messages in memory. This server is Papo, whole (its transport,
python-socketio, sign-in, joins, the service's checks, rate limits, metrics and broadcast), with
one part swapped: the store's `queue_append` answers at once from memory, the way
bench/reference/server.js's `post` does (the next seq of the room, a repeated client_id given its
first message, the room's last HISTORY_KEEP messages kept). Nothing is written, so its figure is
the most any storage path could give on this machine: `make bench` runs it beside Papo and the
reference under the persistence load (docs/benchmarks.md). Never a server to run for users.

Usage (as app.py): ASYNC_MODE=gevent python bench/memory_server.py --host 127.0.0.1 --port N
"""
import collections
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORY_KEEP = 10_000  # bench/reference/server.js keeps as many per room


class Answered:
    """A queued message's outcome, known at once."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class MemoryMessages:
    """The rooms' messages in memory: per room its last seq, its kept messages and their client_ids.

    make(id, room, seq, author, text, ts, client_id) builds a message as the store does (chat.store.wire).
    """

    def __init__(self, make):
        self.make = make
        self.next_id = 1
        self.rooms = {}  # room -> [last seq, deque of (key, message), {key: message}]

    def queue_append(self, room, author, text, ts, client_id):
        kept = self.rooms.get(room)
        if kept is None:
            kept = self.rooms[room] = [0, collections.deque(), {}]
        key = None if client_id is None else (author, client_id)
        if key is not None and key in kept[2]:
            return Answered((kept[2][key], False))
        kept[0] += 1
        message = self.make(self.next_id, room, kept[0], author, text, ts, client_id)
        self.next_id += 1
        kept[1].append((key, message))
        if key is not None:
            kept[2][key] = message
        if len(kept[1]) > HISTORY_KEEP:
            old, _ = kept[1].popleft()
            kept[2].pop(old, None)
        return Answered((message, True))


def with_messages_in_memory(create_app):
    def create(*args, **kwargs):
        from chat.store import wire

        app = create_app(*args, **kwargs)
        app.extensions["papo"].store.queue_append = MemoryMessages(wire.message).queue_append
        return app

    return create


def main():
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    sys.argv = [str(ROOT / "app.py"), *sys.argv[1:]]
    # app.py patches the standard library before it imports chat; patch first here, so that chat.server
    # can be imported and its create_app wrapped before app.py runs (patching twice changes nothing)
    mode = os.environ.get("ASYNC_MODE") or "gevent"
    if mode == "gevent":
        from gevent import monkey
        monkey.patch_all()
    elif mode == "eventlet":
        import eventlet
        eventlet.monkey_patch()
    import chat.server

    chat.server.create_app = with_messages_in_memory(chat.server.create_app)
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")


if __name__ == "__main__":
    main()
