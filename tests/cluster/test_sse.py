"""Server-Sent Events through nginx in front of several processes: any process serves a stream and resumes another's."""
import time

import pytest

from tests.integration.sse_client import EventStream
from tests.servers import post_message, request

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]


def streams(server):
    """How many Server-Sent Event streams the process holds (/healthz)."""
    return request(server.url, "GET", "/healthz")[1]["streams"]


def holder(cluster, before):
    """The one process that holds one more stream than in `before` ({server: streams}).

    Counting TCP connections would not do: nginx may carry the stream on a kept-alive upstream connection.
    """
    gained = [s for s in cluster.servers if streams(s) > before[s]]
    assert len(gained) == 1, f"{len(gained)} processes gained a stream"
    return gained[0]


def test_a_stream_through_nginx_hears_every_process_and_resumes_on_another(cluster, user, room):
    _, token = user("sse")
    _, writer = user("sw")
    route = f"papo_route=sse-{time.monotonic_ns()}"  # a browser's cookie: nginx sends it to one process
    before = {s: streams(s) for s in cluster.servers}
    victim = None
    stream = EventStream(cluster.url, token, rooms=[room], cookie=route)
    try:
        assert stream.status == 200
        stream.wait_until(lambda s: s.last_id is not None)
        victim = holder(cluster, before)
        others = [s for s in cluster.servers if s is not victim]
        heard = [post_message(s.url, writer, room, f"from {s.port}") for s in cluster.servers]
        stream.wait_until(lambda s: len(s.events) == len(heard))
        assert stream.of("message") == heard  # each posted on another process, in seq order
        cursor = stream.events[1]["id"]  # as if the connection had dropped after the second

        victim.kill()
        stream.wait_until(lambda s: s.ended.is_set())
        missed = [post_message(others[n % len(others)].url, writer, room, f"missed {n}") for n in range(3)]
        # The same cookie: nginx finds its process down and takes the next one on the ring.
        resumed = EventStream(cluster.url, token, rooms=[room], cookie=route, last_event_id=cursor)
        try:
            assert resumed.status == 200
            resumed.wait_until(lambda s: len(s.events) == len(heard) - 2 + len(missed))
            assert resumed.of("message") == heard[2:] + missed
            last = post_message(others[0].url, writer, room, "live")
            resumed.wait_until(lambda s: s.of("message")[-1:] == [last])
            assert [m["seq"] for m in resumed.of("message")] == list(range(3, len(heard) + len(missed) + 2))
        finally:
            resumed.close()
    finally:
        stream.close()
        if victim is not None and not victim.alive():
            cluster.restart(victim)
        cluster.wait_healthy()


def test_a_cursor_from_one_process_resumes_on_every_other(cluster, user, room):
    _, token = user("sse")
    first, *others = cluster.servers
    with EventStream(first.url, token, rooms=[room], notifications=True) as stream:
        stream.wait_until(lambda s: s.last_id is not None)
        posted = [post_message(first.url, token, room, f"m{n}") for n in range(3)]
        stream.wait_until(lambda s: len(s.events) == 3)
        cursor = stream.events[0]["id"]
    for server in others:
        with EventStream(server.url, token, rooms=[room], notifications=True, last_event_id=cursor) as again:
            again.wait_until(lambda s: len(s.events) == 2)
            assert again.of("message") == posted[1:]


def test_logging_out_on_one_process_ends_a_stream_on_another(cluster, user, room):
    _, token = user("sse")
    first, second = cluster.servers[:2]
    with EventStream(first.url, token, rooms=[room]) as stream:
        stream.wait_until(lambda s: s.last_id is not None)
        status, _ = request(second.url, "POST", "/api/logout", token=token)
        assert status == 204
        stream.wait_until(lambda s: s.ended.is_set())
        assert [(e["event"], e["data"]["code"]) for e in stream.events] == [("session_ended", "logged_out")]
