"""chat.turns without tasks or sockets: which event may start when."""
import pytest

from chat.turns import Turns


class WouldWait(Exception):
    """Raised where a real event would block."""


class Event:
    """An event that says, instead of blocking, that its waiter would have waited."""

    def __init__(self):
        self.is_set = False

    def set(self):
        self.is_set = True

    def wait(self):
        if not self.is_set:
            raise WouldWait


def test_a_message_starts_at_once_when_nothing_is_under_way():
    turns = Turns(Event)
    turns.start(turns.message("a"))


def test_the_next_message_waits_until_the_one_before_is_queued_not_until_it_ends():
    turns = Turns(Event)
    first, second = turns.message("a"), turns.message("a")
    turns.start(first)
    with pytest.raises(WouldWait):
        turns.start(second)

    turns.queued("a")

    turns.start(second)  # while the first still waits for its commit


def test_a_message_that_ends_without_being_queued_lets_the_next_start():
    turns = Turns(Event)
    first, second = turns.message("a"), turns.message("a")
    turns.start(first)
    turns.end(first)  # refused before it was queued
    turns.start(second)


def test_other_connections_never_wait_for_each_other():
    turns = Turns(Event)
    mine = turns.message("a")
    turns.start(mine)
    turns.start(turns.message("b"))
    with pytest.raises(WouldWait):
        turns.wait_until_drained("a")


def test_another_event_waits_until_every_message_before_it_has_ended():
    turns = Turns(Event)
    first, second = turns.message("a"), turns.message("a")
    turns.start(first)
    turns.queued("a")
    turns.start(second)
    turns.queued("a")
    turns.end(first)
    with pytest.raises(WouldWait):
        turns.wait_until_drained("a")

    turns.end(second)

    turns.wait_until_drained("a")


def test_an_event_after_the_last_message_ended_does_not_wait_and_nothing_is_kept():
    turns = Turns(Event)
    only = turns.message("a")
    turns.start(only)
    turns.queued("a")
    turns.end(only)

    turns.wait_until_drained("a")
    assert turns._lines == {}


def test_queued_without_a_holder_is_harmless():
    turns = Turns(Event)
    turns.queued("nobody")
    only = turns.message("a")
    turns.start(only)
    turns.queued("a")
    turns.queued("a")
    turns.end(only)
    assert turns._lines == {}
