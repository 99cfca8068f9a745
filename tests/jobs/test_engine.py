"""The engine's dispatch: never more than ConcurrentJobs Running, highest priority first, even when several
workers dispatch at the same moment (found by bench/jobs.py: two jobs finishing together started three)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connections

from jobs import engine
from jobs.models import Job, State


def _dispatch(barrier: threading.Barrier, errors: list[Exception]) -> None:
    barrier.wait()
    try:
        for _ in range(200):
            try:
                engine.jobs_dispatch(enqueue=lambda job_id: None)  # claim only; nothing runs
                return
            except OperationalError as exc:
                # The tests' in-memory SQLite (shared cache) has table locks and no busy timeout:
                # wait as the file database's busy timeout does.
                if "locked" not in str(exc):
                    raise
                time.sleep(0.005)
        errors.append(TimeoutError("still locked"))
    except Exception as exc:  # noqa: BLE001 - reported below
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_respect_concurrent_jobs(settings) -> None:
    settings.ORTHANC = {**settings.ORTHANC, "ConcurrentJobs": 2}
    for rounds in range(5):
        Job.objects.all().delete()
        Job.objects.bulk_create([Job(type="Archive", priority=k % 10) for k in range(30)])
        barrier = threading.Barrier(4)
        errors: list[Exception] = []

        threads = [threading.Thread(target=_dispatch, args=(barrier, errors)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        running = list(Job.objects.filter(state=State.RUNNING).values_list("priority", flat=True))
        assert len(running) == 2, f"round {rounds}: {running}"
        assert sorted(running) == [9, 9]


@pytest.mark.django_db(transaction=True)
def test_progress_is_rounded_as_orthanc(monkeypatch) -> None:
    """JobInfo's Progress is iround(progress * 100): 2 of 3 steps is 67 (int() made it 66)."""
    from jobs import tasks
    from jobs.kinds import KINDS

    seen: list[int] = []

    def kind(job):
        yield 100.0 * 1 / 3
        time.sleep(tasks.SAVE_INTERVAL * 1.5)
        yield 100.0 * 2 / 3
        seen.append(Job.objects.get(id=job.id).progress)

    monkeypatch.setitem(KINDS, "RoundingTest", kind)
    job = Job.objects.create(type="RoundingTest", parameters={}, state=State.RUNNING)
    tasks.job_run(job.id)
    assert seen == [67]
    assert Job.objects.get(id=job.id).state == State.SUCCESS


@pytest.mark.django_db
def test_a_failure_whose_details_hold_a_nul_is_recorded() -> None:
    from archive.errors import BadFileFormat

    job = Job.objects.create(type="Test", state=State.RUNNING)
    engine.job_finish(job=job, state=State.FAILURE, error=BadFileFormat("Unknown tag: a\x00b"))
    job.refresh_from_db()
    assert job.state == State.FAILURE and job.error_details == "Unknown tag: a\ufffdb"
