"""The chaos harness's own bookkeeping, without a server: a slow drain names who is still waiting."""
import types

from .harness import drain


class Waiting:
    """A client whose outbox empties after `ticks` rounds of the drain."""

    def __init__(self, name, ticks):
        self.name, self.ticks = name, ticks
        self.transport = "websocket"
        self.sio = types.SimpleNamespace(connected=True, _reconnect_task=None)
        self.outbox = ["pending"] if ticks else []

    def stranded(self):
        return False

    def tick(self, now, generating):
        self.ticks -= 1
        if self.ticks <= 0:
            self.outbox = []

    def state(self):
        return {"outbox": list(self.outbox)}


def test_a_drain_slower_than_its_bound_logs_once_the_clients_still_waiting():
    said: list[str] = []
    drain([Waiting("quick", 1), Waiting("slow", 8)], deadline=float("inf"), log=said.append, slow=0.1)
    assert len(said) == 1
    assert '"slow"' in said[0] and '"quick"' not in said[0]


def test_a_quick_drain_logs_nothing():
    said: list[str] = []
    drain([Waiting("quick", 2)], deadline=float("inf"), log=said.append, slow=5)
    assert said == []
