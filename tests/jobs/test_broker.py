"""The ORM job queue woken by a datagram (jobs/broker.py): an idle pusher waits, a queued task wakes it."""

from __future__ import annotations

import threading
import time

import pytest
from django_q.brokers import get_broker

from jobs import broker as wakeable
from jobs.broker import WakeableORM

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pusher_side():
    queue = WakeableORM(list_key="test-broker")
    yield queue
    if queue._listener is not None:
        queue._listener.close()


def test_the_settings_use_it():
    assert isinstance(get_broker(), WakeableORM)


def test_an_idle_pusher_waits_about_a_second_for_nothing(pusher_side, monkeypatch):
    monkeypatch.setattr(wakeable, "IDLE_WAIT", 0.3)
    started = time.monotonic()
    assert pusher_side.dequeue() is None
    assert 0.25 <= time.monotonic() - started < 2


def test_a_queued_task_wakes_the_waiting_pusher_at_once(pusher_side, monkeypatch):
    monkeypatch.setattr(wakeable, "IDLE_WAIT", 0.05)
    pusher_side.dequeue()           # binds the socket (and takes any stale wake-up)
    monkeypatch.setattr(wakeable, "IDLE_WAIT", 5.0)
    woke: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        pusher_side.dequeue()
        woke.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    WakeableORM(list_key="test-broker").enqueue("a task")     # what async_task does, in any process
    waiter.join(timeout=10)
    assert woke and woke[0] < 2, woke
    tasks = pusher_side.dequeue()
    assert [payload for _, payload in tasks] == ["a task"]


def test_without_the_socket_it_polls(pusher_side, monkeypatch):
    monkeypatch.setattr(WakeableORM, "_listening", lambda self: None)
    monkeypatch.setattr(wakeable, "FALLBACK_POLL", 0.01)
    started = time.monotonic()
    assert pusher_side.dequeue() is None
    assert time.monotonic() - started < 0.5
