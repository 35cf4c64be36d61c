"""SIGTERM's drain on a hub driven by hand: batches over the window, then done, within the bound."""
import socket

from chat.transport import drain, hubs
from chat.transport.connection import Connection, Flusher
from chat.transport.driver import EchoEndpoint


def drained(count, window):
    """(time of each close, in the order called; the times done() was called) for `count` connections."""
    hub = hubs.FakeHub()
    closed, done = [], []
    calls = [lambda: closed.append(hub.now) for _ in range(count)]
    drain.drain(hub, calls, lambda: done.append(hub.now), window, shuffle=lambda calls: None)
    hub.run(window + drain.SEND_WAIT + 1)
    return closed, done


def test_the_connections_close_in_batches_spread_over_the_window():
    closed, done = drained(1000, 2.0)
    assert len(closed) == 1000
    assert closed == sorted(closed) and closed[0] == 0.0
    assert 2.0 - 2 * drain.TICK <= closed[-1] < 2.0
    assert len(set(closed)) == int(2.0 / drain.TICK)
    assert done == [closed[-1] + drain.TICK]  # nothing is left open: done at the first check


def test_a_window_of_nothing_closes_everything_at_once():
    closed, done = drained(50, 0.0)
    assert closed == [0.0] * 50 and done == [drain.TICK]


def test_a_connection_that_fails_to_close_does_not_stop_the_rest():
    hub = hubs.FakeHub()
    closed = []

    def broken():
        raise OSError("gone")

    drain.drain(hub, [broken, lambda: closed.append(1)], lambda: None, 0.0, shuffle=lambda calls: None)
    hub.run(1)
    assert closed == [1]


def test_the_drain_ends_once_every_close_frame_is_out_without_waiting_for_the_answers():
    server, client = socket.socketpair()
    server.setblocking(False)
    hub = hubs.FakeHub()
    connection = Connection(server, Flusher(hub), 1000, EchoEndpoint())
    connection.start()
    done = []
    try:
        drain.drain(hub, [lambda: connection.hang_up(1001)], lambda: done.append(hub.now), 0.0)
        hub.run(drain.SEND_WAIT + 1)
        assert done == [drain.TICK] and not connection.closed  # the client never answered
        assert client.recv(16) == b"\x88\x02\x03\xe9"
    finally:
        connection.close()
        client.close()


def test_the_drain_waits_for_a_close_frame_stuck_behind_a_client_that_does_not_read():
    server, client = socket.socketpair()
    server.setblocking(False)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    hub = hubs.FakeHub()
    connection = Connection(server, Flusher(hub), 1000, EchoEndpoint())
    connection.start()
    connection.send(b"x" * (1 << 20))  # more than the socket takes: the close frame waits behind it
    done = []
    try:
        drain.drain(hub, [lambda: connection.hang_up(1001)], lambda: done.append(hub.now), 0.0)
        hub.run(drain.SEND_WAIT + 1)
        assert not connection.outbox.finished
        assert done == [drain.SEND_WAIT]  # the bound, not the first check
    finally:
        connection.close()
        client.close()
