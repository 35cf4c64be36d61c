"""The chat domain against a recording broadcaster: no transport involved."""
import threading
import time

import pytest

from chat.errors import ChatError
from chat.limits import RateLimiter
from chat.presence import Presence
from chat.service import ChatService
from chat.store import Store


class Recorder:
    """A broadcaster that remembers what it was asked to send and who is in which channel."""

    def __init__(self):
        self.sent = []
        self.channels = {}

    def emit(self, event, data, to, skip=None):
        self.sent.append((event, data, to, tuple(skip or ())))

    def enter(self, sid, channel):
        self.channels.setdefault(channel, set()).add(sid)

    def exit(self, sid, channel):
        self.channels.get(channel, set()).discard(sid)

    def named(self, event):
        return [(data, to, skip) for name, data, to, skip in self.sent if name == event]


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/service.db")
    store.migrate()
    store.add_user("bo", "h", 1)
    yield store
    store.close()


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def service(store, recorder):
    service = ChatService(store, Presence(), recorder, RateLimiter(burst=100, rate=10))
    service.connect("s-ana", "ana")
    service.connect("s-bo", "bo")
    return service


def refusal(call, *args):
    with pytest.raises(ChatError) as caught:
        call(*args)
    return caught.value.code


def test_post_assigns_seq_and_broadcasts_once(service, recorder):
    service.join("s-ana", "lobby")
    first, created = service.send("s-ana", "lobby", "  hello  ", "c1")
    again, created_again = service.send("s-ana", "lobby", "hello", "c1")
    assert (first["seq"], first["text"], first["user"], created) == (1, "hello", "ana", True)
    assert again == first and not created_again
    assert recorder.named("message") == [(first, "room:lobby", ())]


def test_join_with_since_replays_exactly_the_missed_messages(service):
    for i in range(5):
        service.post("ana", "lobby", f"m{i}", None)
    answer = service.join("s-bo", "lobby", since=3)
    assert [m["seq"] for m in answer["messages"]] == [4, 5]
    assert answer["last_seq"] == 5 and answer["truncated"] is False


def test_join_replay_is_capped_and_says_so(service, store):
    for i in range(503):
        store.append("busy", "ana", f"m{i}", 1, None)
    answer = service.join("s-bo", "busy", since=0)
    assert len(answer["messages"]) == 500 and answer["truncated"] is True
    assert answer["messages"][0]["seq"] == 1
    recent = service.join("s-ana", "busy")
    assert [m["seq"] for m in recent["messages"]] == list(range(454, 504)) and not recent["truncated"]


def test_presence_joins_once_per_user_and_leaves_with_the_last_connection(service, recorder):
    service.connect("s-ana-2", "ana")
    service.join("s-ana", "lobby")
    service.join("s-ana-2", "lobby")
    service.join("s-bo", "lobby")
    actions = [(d["user"], d["action"]) for d, _, _ in recorder.named("presence")]
    assert actions == [("ana", "join"), ("bo", "join")]
    service.disconnect("s-ana")
    service.leave("s-ana-2", "lobby")
    last = recorder.named("presence")[-1][0]
    assert (last["user"], last["action"], last["members"]) == ("ana", "leave", ["bo"])


def test_typing_skips_every_connection_of_the_typist(service, recorder):
    service.connect("s-ana-2", "ana")
    service.join("s-ana", "lobby")
    service.join("s-ana-2", "lobby")
    service.typing("s-ana", "lobby", True)
    data, to, skip = recorder.named("typing")[0]
    assert data == {"room": "lobby", "user": "ana", "typing": True}
    assert to == "room:lobby" and set(skip) == {"s-ana", "s-ana-2"}


def test_events_before_join_are_refused(service):
    assert refusal(service.send, "s-ana", "lobby", "hi", None) == "not_in_room"
    assert refusal(service.typing, "s-ana", "lobby", True) == "not_in_room"


@pytest.mark.parametrize("room", ["", "Lobby", "-x", "a" * 65, "a b", None, 3, ["a"]])
def test_bad_room_names(service, room):
    assert refusal(service.join, "s-ana", room) == "invalid_room"


UNSTORABLE = ["lone \ud800", "\udcff", "low \udc00 first \ud83d", "nul \x00 inside"]  # what JSON can carry


@pytest.mark.parametrize("text", ["", "   ", "x" * 4001, None, 5, {"a": 1}, *UNSTORABLE])
def test_bad_texts(service, text):
    assert refusal(service.post, "ana", "lobby", text, None) == "invalid_message"


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_text_no_database_can_keep_is_refused_wherever_it_would_be_stored(service, bad):
    service.join("s-ana", "lobby")
    kept, _ = service.send("s-ana", "lobby", "kept", None)
    assert refusal(service.send, "s-ana", "lobby", bad, None) == "invalid_message"
    assert refusal(service.send, "s-ana", "lobby", "hi", bad) == "invalid_payload"
    assert refusal(service.edit, "ana", "lobby", kept["seq"], bad) == "invalid_message"
    assert refusal(service.direct, "ana", "bo", bad, None) == "invalid_message"
    assert refusal(service.direct, "ana", "bo", "hi", bad) == "invalid_payload"
    assert refusal(service.direct, "ana", bad, "hi", None) == "not_found"
    assert refusal(service.notify, bad, "body", None, None, "bo") == "invalid_payload"
    assert refusal(service.notify, "title", bad, None, None, "bo") == "invalid_payload"
    assert refusal(service.notify, "title", "body", None, None, bad) == "not_found"


@pytest.mark.parametrize("text", ["🙂 \U0001f680 astral", "e\u0301 combining", "\u202e right to left",
                                  "tab\tand\nlines"])
def test_any_unicode_text_but_nul_and_unpaired_surrogates_is_kept(service, store, text):
    message, _ = service.post("ana", "lobby", text, text[:8])
    assert store.messages_after("lobby", 0, 1)[0]["text"] == message["text"] == text


def test_text_of_exactly_4000_characters_after_stripping_is_kept(service):
    message, _ = service.post("ana", "lobby", "  " + "x" * 4000 + "\n", None)
    assert len(message["text"]) == 4000


@pytest.mark.parametrize("client_id", ["", "x" * 65, 7, ["a"]])
def test_bad_client_ids(service, client_id):
    assert refusal(service.post, "ana", "lobby", "hi", client_id) == "invalid_payload"


def test_rate_limit_answers_with_retry_after(store, recorder):
    service = ChatService(store, Presence(), recorder, RateLimiter(burst=2, rate=0.5))
    service.post("ana", "lobby", "1", None)
    service.post("ana", "lobby", "2", None)
    with pytest.raises(ChatError) as caught:
        service.post("ana", "lobby", "3", None)
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 2
    assert service.post("bo", "lobby", "other user", None)[1]


def test_history_pages_backwards(service):
    for i in range(7):
        service.post("ana", "lobby", f"m{i}", None)
    page = service.history("lobby", before=6, limit=3)
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5] and page["has_more"] is True
    page = service.history("lobby", before=3, limit=3)
    assert [m["seq"] for m in page["messages"]] == [1, 2] and page["has_more"] is False
    assert refusal(service.history, "lobby", None, 101) == "invalid_payload"


def test_direct_reaches_both_users_channels_and_unknown_users_are_not_found(service, recorder):
    message, created = service.direct("ana", "BO", "psst", "d1")
    assert (message["from"], message["to"], created) == ("ana", "bo", True)
    assert sorted(to for _, to, _ in recorder.named("direct")) == ["user:ana", "user:bo"]
    assert refusal(service.direct, "ana", "nobody", "hi", None) == "not_found"


def test_long_poll_answers_at_once_when_messages_exist(service):
    service.post("ana", "lobby", "there already", None)
    started = time.monotonic()
    assert len(service.wait_for_messages("lobby", 0, 5)["messages"]) == 1
    assert time.monotonic() - started < 1


def test_long_poll_wakes_on_a_new_message(service):
    answers = []
    poller = threading.Thread(target=lambda: answers.append(service.wait_for_messages("lobby", 0, 10)))
    poller.start()
    time.sleep(0.2)
    posted = time.monotonic()
    service.post("ana", "lobby", "wake up", None)
    poller.join(5)
    assert answers and answers[0]["messages"][0]["text"] == "wake up"
    assert time.monotonic() - posted < 1


def test_long_poll_times_out_empty(service):
    assert service.wait_for_messages("lobby", 0, 0.1) == {"messages": []}
    assert refusal(service.wait_for_messages, "lobby", 0, 31) == "invalid_payload"


def test_rooms_count_users_not_connections(service):
    service.connect("s-ana-2", "ana")
    service.join("s-ana", "lobby")
    service.join("s-ana-2", "lobby")
    service.post("ana", "lobby", "hi", None)
    assert service.rooms() == [{"name": "lobby", "members": 1, "last_seq": 1}]
