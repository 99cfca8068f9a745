"""The jobs engine: submit, dispatch by priority within ConcurrentJobs, pause/resume/cancel/resubmit, wait.

Jobs live in the database, so any process can submit, list or control them; django-q2 runs them (the ORM
broker inside ``manage.py serve``, or Redis and any number of ``qcluster`` workers) and only ever imports
``jobs.tasks``. A job is stepped by its kind (jobs/kinds): between steps the runner saves the progress and
looks at the job's ``request`` (pause or cancel), so both take effect within one step.

Dispatch is a claim in the database: a pending job becomes Running with a conditional UPDATE, so two
dispatchers never start the same job, and no more than ConcurrentJobs run at once. A worker holds the job's
run lock while it runs it (``job_run_lock``): a server that starts on the same database recovers only the
Running jobs nobody holds (those of a server that stopped), and a job queued twice runs once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from archive.errors import ArchiveError, BadRequest, OrthancError, UnknownResource
from jobs.models import Job, State

CANCELED = OrthancError.CANCELED_JOB
DONE = (State.SUCCESS, State.FAILURE)


def _option(name: str, default):
    return settings.ORTHANC.get(name, default)


def concurrent_jobs() -> int:
    return max(1, int(_option("ConcurrentJobs", 2) or 2))


def job_submit(*, kind: str, parameters: dict, priority: int = 0, content: dict | None = None,
               user_data: Any = None) -> Job:
    """A new pending job of ``kind`` (a name of jobs.kinds.KINDS), dispatched at once if a slot is free.
    ``user_data``: the request's UserData, which travels with the job (GET /jobs/{id})."""
    job = Job.objects.create(type=kind, parameters=parameters, priority=priority, content=content or {},
                             user_data=user_data)
    jobs_dispatch()
    return job


def job_get(*, job_id: str) -> Job:
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        raise UnknownResource()
    return job


JOBS_LOCK = 0x4A4F4253  # "JOBS": the PostgreSQL advisory lock that serializes dispatchers


def jobs_dispatch(enqueue: Callable[[str], None] | None = None) -> int:
    """Start pending jobs, highest priority first (then oldest), while fewer than ConcurrentJobs run.
    Counting the running jobs and claiming the next must be one step for all dispatchers (two workers finish
    together and both dispatch): a transaction holding a lock, SQLite's write lock (IMMEDIATE transactions)
    or a PostgreSQL advisory lock. The claimed jobs are queued after it. Returns how many were started."""
    claimed: list[str] = []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [JOBS_LOCK])
        running = Job.objects.filter(state=State.RUNNING).count()
        while running < concurrent_jobs():
            candidate = (Job.objects.filter(state=State.PENDING).order_by("-priority", "creation_time", "id")
                         .values_list("id", flat=True).first())
            if candidate is None:
                break
            if Job.objects.filter(id=candidate, state=State.PENDING).update(state=State.RUNNING, request=""):
                claimed.append(candidate)
                running += 1
    for job_id in claimed:
        (enqueue or _enqueue)(job_id)
    return len(claimed)


def _enqueue(job_id: str) -> None:
    from django_q.tasks import async_task

    if getattr(settings, "JOBS_RUN_INLINE", False):
        # django-q2's own synchronous mode (tests, scripts): the job runs here and now.
        async_task("jobs.tasks.job_run", job_id, task_name=f"job {job_id}", sync=True)
        return
    # After the commit: a worker must see the Running row (and the job's data) when it starts.
    transaction.on_commit(lambda: async_task("jobs.tasks.job_run", job_id, task_name=f"job {job_id}"))


def job_finish(*, job: Job, state: State, error: ArchiveError | None = None) -> None:
    """Record the end of a run (Success, Failure, or Paused between steps), then start what waits."""
    job.state = state
    if error is not None:
        job.error_code = error.orthanc_error.code
        job.error_description = error.orthanc_error.description
        # PostgreSQL text cannot hold a NUL, which a detail quoting a client's text may carry: unsaved, the
        # job would stay Running
        job.error_details = (error.details or "").replace("\x00", "\ufffd")
        job.error_payload = getattr(error, "payload", None)
    if state in DONE:
        job.completion_time = dt.datetime.now(dt.UTC)
        if state is State.SUCCESS:
            job.progress = 100
    job.request = ""
    job.save()
    jobs_history_trim()
    jobs_dispatch()


def job_cancel(*, job_id: str) -> None:
    """Pending or paused: failed at once as canceled; running: at its next step; done: nothing (Orthanc)."""
    job = job_get(job_id=job_id)
    if job.state in (State.PENDING, State.PAUSED, State.RETRY):
        job_finish(job=job, state=State.FAILURE, error=ArchiveError(orthanc_error=CANCELED))
    elif job.state is State.RUNNING or job.state == State.RUNNING:
        Job.objects.filter(id=job_id, state=State.RUNNING).update(request="cancel")


def job_pause(*, job_id: str) -> None:
    job = job_get(job_id=job_id)
    if job.state in (State.PENDING, State.RETRY):
        Job.objects.filter(id=job_id, state=job.state).update(state=State.PAUSED)
    elif job.state == State.RUNNING:
        Job.objects.filter(id=job_id, state=State.RUNNING).update(request="pause")


def job_resume(*, job_id: str) -> None:
    """Only a paused job resumes (Orthanc answers a bare 400 otherwise)."""
    job = job_get(job_id=job_id)
    if job.state != State.PAUSED:
        raise BadRequest().answered_bare()
    Job.objects.filter(id=job_id, state=State.PAUSED).update(state=State.PENDING)
    jobs_dispatch()


def job_resubmit(*, job_id: str) -> None:
    """Only a failed job runs again, from the start (Orthanc answers a bare 400 otherwise)."""
    job = job_get(job_id=job_id)
    if job.state != State.FAILURE:
        raise BadRequest().answered_bare()
    parameters = {k: v for k, v in job.parameters.items() if k != "checkpoint"}   # from the start (Orthanc's Reset)
    Job.objects.filter(id=job_id, state=State.FAILURE).update(
        parameters=parameters, state=State.PENDING, progress=0, error_code=0, error_description="Success", error_details="",
        error_payload=None, completion_time=None, request="", runtime=0.0)   # Orthanc resets the runtime too
    jobs_dispatch()


def job_delete(*, job_id: str) -> None:
    """1.12: forget a finished job (its outputs too); a job still to run cannot be deleted."""
    job = job_get(job_id=job_id)
    if job.state not in DONE:
        raise BadRequest("Cannot delete a job that has not completed")
    _forget(job)


def _forget(job: Job) -> None:
    from jobs.outputs import outputs_remove

    job_id = job.id
    outputs_remove(job)
    job.delete()
    if connection.vendor != "postgresql":
        with contextlib.suppress(OSError):
            (_lock_folder() / job_id).unlink()


def jobs_history_trim() -> None:
    """Keep the JobsHistorySize most recent finished jobs (Orthanc's default 10)."""
    size = max(0, int(_option("JobsHistorySize", 10) or 0))
    old = Job.objects.filter(state__in=DONE).order_by("-completion_time", "-creation_time")[size:]
    for job in list(old):
        _forget(job)


JOB_RUN_LOCK = 0x4A4F4252  # "JOBR": the namespace of the PostgreSQL advisory locks of running jobs


@contextlib.contextmanager
def job_run_lock(job_id: str) -> Iterator[bool]:
    """Hold the job's run lock for the block, if no one else holds it; yields whether it is held.

    It lives as long as the process that holds it, whatever happens to Django's connections (a job may close
    them all before it forks): on PostgreSQL a session advisory lock on a connection of its own, so it spans
    hosts; on SQLite, whose processes share one host, an flock on a file beside the database."""
    holder = _lock_postgresql(job_id) if connection.vendor == "postgresql" else _lock_file(job_id)
    try:
        yield holder is not None
    finally:
        if holder is not None:
            holder.close()


def _lock_postgresql(job_id: str):
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [JOB_RUN_LOCK, job_id])
            if cursor.fetchone()[0]:
                return raw
    except BaseException:
        raw.close()
        raise
    raw.close()
    return None


def _lock_folder() -> Path:
    """Beside the SQLite file (an in-memory test database: the temporary folder)."""
    database = Path(str(connection.settings_dict.get("NAME") or ""))
    return (database.parent if database.is_file() else Path(tempfile.gettempdir())) / "job-locks"


def _lock_file(job_id: str):
    folder = _lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / job_id, "a")  # noqa: SIM115 - held open as the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def jobs_recover() -> int:
    """At start: jobs left Running by a stopped server run again from their start (SaveJobs true), or are
    dropped with everything not finished (SaveJobs false, as Orthanc forgets them). A Running job whose run
    lock is held belongs to another server on the same database, which is running it: it is left alone."""
    if not _option("SaveJobs", True):
        lost = []
        for job in Job.objects.exclude(state__in=DONE):
            with job_run_lock(job.id) as free:
                if free or job.state != State.RUNNING:
                    _forget(job)
                    lost.append(job)
        return len(lost)
    count = 0
    for job_id in list(Job.objects.filter(state=State.RUNNING).values_list("id", flat=True)):
        # Under the lock, so that a worker starting it now finds the lock taken and leaves it to the new run.
        with job_run_lock(job_id) as free:
            if free:
                count += Job.objects.filter(id=job_id, state=State.RUNNING).update(
                    state=State.PENDING, progress=0, request="")
    jobs_dispatch()
    return count


def job_wait(*, job_id: str, timeout: float | None = None) -> Job:
    """Block until the job is finished (Synchronous requests), polling the database."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        job = job_get(job_id=job_id)
        if job.state in DONE:
            return job
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def job_add_runtime(*, job_id: str, seconds: float, progress: int) -> str:
    """Save a step's progress and runtime; returns the pending request ("pause", "cancel" or "")."""
    Job.objects.filter(id=job_id).update(runtime=F("runtime") + seconds, progress=progress)
    return Job.objects.filter(id=job_id).values_list("request", flat=True).first() or ""
