"""GreenTasks on eventlet's and gevent's real hubs: order, reuse, isolation, failures, the idle bound."""
import contextvars
import functools
import logging

import greenlet
import pytest

from chat import async_modes


def _settle(mode):
    """Let every ready green thread run to its next wait."""
    if mode == "eventlet":
        import eventlet
        for _ in range(5):
            eventlet.sleep(0)
    else:
        import gevent
        for _ in range(5):
            gevent.sleep(0)


def _fresh(mode):
    return async_modes.green_tasks.__wrapped__(mode)


@pytest.fixture(params=["eventlet", "gevent"])
def mode(request):
    return request.param


def test_tasks_run_in_the_order_started_and_a_finished_green_thread_runs_the_next(mode):
    tasks = _fresh(mode)
    ran = []
    for n in range(3):
        tasks.start(lambda n=n: ran.append((n, greenlet.getcurrent())))
    _settle(mode)
    assert [n for n, _ in ran] == [0, 1, 2]
    assert all(glet is not greenlet.getcurrent() for _, glet in ran)
    first = ran[-1][1]
    tasks.start(lambda: ran.append(("again", greenlet.getcurrent())))
    _settle(mode)
    assert ran[-1] == ("again", first)


def test_a_burst_of_tasks_that_do_not_wait_runs_on_one_green_thread(mode):
    tasks = _fresh(mode)
    ran = []
    for n in range(500):  # more than IDLE_TASKS: taking a green thread at the start made one for each
        tasks.start(lambda n=n: ran.append((n, greenlet.getcurrent())))
    _settle(mode)
    assert [n for n, _ in ran] == list(range(500))
    assert len({glet for _, glet in ran}) == 1 and len(tasks._idle) == 1


def test_a_task_that_waits_keeps_its_green_thread_and_the_next_runs_on_another(mode):
    tasks = _fresh(mode)
    event = _event(mode)
    ran = []

    def waits():
        ran.append(("waits", greenlet.getcurrent()))
        event.wait()
        ran.append(("woke", greenlet.getcurrent()))

    tasks.start(waits)
    tasks.start(lambda: ran.append(("next", greenlet.getcurrent())))
    _settle(mode)
    assert [name for name, _ in ran] == ["waits", "next"] and ran[0][1] is not ran[1][1]
    event.set()
    _settle(mode)
    assert ran[2] == ("woke", ran[0][1]) and len(tasks._idle) == 2


def test_tasks_started_while_others_wait_get_green_threads_of_their_own(mode):
    tasks = _fresh(mode)
    event = _event(mode)
    seen = set()

    def waits():
        seen.add(greenlet.getcurrent())
        event.wait()

    for _ in range(3):
        tasks.start(waits)
    _settle(mode)
    assert len(seen) == 3
    event.set()
    _settle(mode)
    assert len(tasks._idle) == 3


def test_a_task_sees_none_of_the_context_variables_an_earlier_task_set(mode):
    tasks = _fresh(mode)
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    tasks.start(lambda: var.set("first"))
    _settle(mode)
    tasks.start(lambda: seen.append(var.get()))
    _settle(mode)
    assert seen == ["unset"]


def test_a_failing_task_is_logged_and_its_green_thread_runs_the_next(mode, caplog):
    tasks = _fresh(mode)
    ran = []

    def fails():
        ran.append(greenlet.getcurrent())
        raise ZeroDivisionError

    tasks.start(fails)
    _settle(mode)
    assert "a green task failed" in caplog.text
    tasks.start(lambda: ran.append(greenlet.getcurrent()))
    _settle(mode)
    assert len(ran) == 2 and ran[0] is ran[1]


def test_at_most_idle_tasks_green_threads_stay_idle(mode, monkeypatch):
    monkeypatch.setattr(async_modes, "IDLE_TASKS", 2)
    tasks = _fresh(mode)
    event = _event(mode)
    for _ in range(5):
        tasks.start(event.wait)
    _settle(mode)
    event.set()
    _settle(mode)
    assert len(tasks._idle) == 2
    assert all(not glet.dead for glet in tasks._idle)


def test_an_idle_green_thread_woken_by_another_caller_ends_and_leaves_the_idle_set(mode, caplog):
    tasks = _fresh(mode)
    tasks.start(lambda: None)
    _settle(mode)
    [idle] = tasks._idle
    with caplog.at_level(logging.WARNING):
        _wake(mode, idle)
        _settle(mode)
    assert idle.dead and tasks._idle == []
    assert "woken with" in caplog.text
    ran = []
    tasks.start(lambda: ran.append(1))
    _settle(mode)
    assert ran == [1]


def test_calls_of_one_turn_share_a_timer_and_a_failing_one_stops_none_of_the_others(caplog):
    timers = []
    resumes = async_modes.Resumes(lambda seconds, fn: timers.append(fn))
    ran: list[int] = []

    def fails():
        raise RuntimeError("boom")

    for call in (functools.partial(ran.append, 0), fails, functools.partial(ran.append, 2)):
        resumes.soon(call)
    assert len(timers) == 1
    with caplog.at_level(logging.ERROR, logger="chat.async_modes"):
        timers[0]()
    assert ran == [0, 2] and "could not be started" in caplog.text
    resumes.soon(lambda: ran.append(3))
    assert len(timers) == 2


def test_threading_has_no_green_tasks():
    with pytest.raises(ValueError):
        async_modes.green_tasks("threading")


def _event(mode):
    if mode == "eventlet":
        import eventlet.event

        class Event:
            def __init__(self):
                self._event = eventlet.event.Event()

            def wait(self):
                self._event.wait()

            def set(self):
                self._event.send()

        return Event()
    import gevent.event
    return gevent.event.Event()


def _wake(mode, glet):
    """Switch to a parked green thread from the hub, as a stray timer would, with no value."""
    if mode == "eventlet":
        from eventlet.hubs import get_hub
        get_hub().schedule_call_global(0, glet.switch)
    else:
        import gevent
        gevent.get_hub().loop.run_callback(glet.switch)


def test_the_gevent_servers_pool_bounds_its_handlers_and_runs_them_on_kept_green_threads():
    from chat import internals

    tasks = _fresh("gevent")
    pool = internals.gevent_pool_on_kept_threads(2, tasks.start)
    release, ran, freed = _event("gevent"), [], []
    pool._semaphore.rawlink(lambda _: freed.append(True))  # as gevent's server links to accept again

    def handler(n):
        ran.append((n, greenlet.getcurrent()))
        release.wait()

    pool.spawn(handler, 1)
    assert not pool.full()
    pool.spawn(handler, 2)
    assert pool.full()
    _settle("gevent")
    assert [n for n, _ in ran] == [1, 2] and pool.full()
    release.set()
    _settle("gevent")
    assert not pool.full() and freed
    pool.spawn(handler, 3)
    _settle("gevent")
    assert ran[2][1] in {glet for _, glet in ran[:2]}  # a kept green thread, not a new one
    pool.spawn(lambda: 1 / 0)  # a failing handler gives its slot back too
    _settle("gevent")
    assert not pool.full()
