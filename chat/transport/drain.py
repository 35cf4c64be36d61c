"""SIGTERM's drain: close every connection in small batches spread over a bounded window, then stop.

Clients reconnect as soon as their connection closes; closing them all in one instant brings them all
back in the same second (to this server's successor, or its neighbours). Closing them in batches, in
a random order, one batch per tick over the window (the setting DRAIN_SECONDS), spreads the
reconnects over it. The drain is over once every close frame is out, our half of each connection
shut behind it: the clients' answers are not awaited, as each has its close frame and our end of
TCP already, and a successor on this port starts only once this process has left. A close frame
that a client does not take within SEND_WAIT seconds of the last batch is left to the process's
exit: the drain always ends within the window + SEND_WAIT, however many connections there are.
"""
import contextlib
import math
import random

from chat import internals

from .connection import Connection
from .protocol import CloseCode
from .stream import Stream

TICK = 0.05  # seconds between two batches
SEND_WAIT = 1.0  # seconds the last batch's close frames get to leave


def closers(eio) -> list:
    """A callable per open connection that starts closing it: WebSockets with 1001, long-polling sessions, streams."""
    found = [lambda c=connection: c.hang_up(CloseCode.GOING_AWAY) for connection in list(Connection.open)
             if not connection.closed]
    found += [lambda s=session: internals.close_polling_session(s) for session in internals.sessions(eio)
              if internals.is_polling(session) and not internals.session_ended(session)]
    found += [stream.finish for stream in list(Stream.open) if not stream.closed]  # Server-Sent Events
    return found


def drain(hub, close_calls: list, done, window: float, shuffle=random.shuffle):
    """Call each of close_calls in batches over `window` seconds; done() once all are closed, or at the bound."""
    shuffle(close_calls)
    batches = max(1, int(window / TICK))
    size = max(1, math.ceil(len(close_calls) / batches))
    finished: list[bool] = []

    def finish():
        if not finished:
            finished.append(True)
            done()

    def batch(start):
        for close in close_calls[start:start + size]:
            with contextlib.suppress(Exception):  # a broken connection must not stop the drain
                close()

    for n, start in enumerate(range(0, len(close_calls), size)):
        hub.later(n * TICK, lambda start=start: batch(start))
    last = (math.ceil(len(close_calls) / size) - 1) * TICK if close_calls else 0.0

    def check():
        if all(connection.outbox.finished for connection in list(Connection.open)) and \
                all(stream.closed for stream in list(Stream.open)):
            finish()
        else:
            hub.later(TICK, check)

    hub.later(last + TICK, check)
    hub.later(last + SEND_WAIT, finish)
