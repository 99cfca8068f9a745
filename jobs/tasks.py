"""The one module django-q2 imports: run a job, step by step."""

from __future__ import annotations

import logging
import time

from archive.errors import ArchiveError, OrthancError
from jobs.engine import CANCELED, job_add_runtime, job_finish, job_run_lock
from jobs.models import Job, State

logger = logging.getLogger(__name__)
# Seconds between two saves of a running job's progress (and reads of a pause or cancel request).
SAVE_INTERVAL = 0.1
# Seconds a run waits for the job's lock while the job is Running (see job_run)
LOCK_WAIT = 10.0


def job_run(job_id: str) -> None:
    """Run a claimed (Running) job through its kind's steps. Between steps (at most every SAVE_INTERVAL):
    progress and runtime saved, then a pause stops it (Paused) and a cancel fails it. A kind that sets
    ``job.checkpoint`` (the store jobs, the retrieve jobs: Orthanc's sets of instances or commands) finds it in
    its parameters when resumed and goes on from there; the others start again, their outputs rebuilt.
    Never raises: a failure is the job's state, with Orthanc's error code and details. Runs under the job's run
    lock: a job queued twice (recovered by a server that started meanwhile) runs once; a run that finds the
    lock held waits for it a while (a job resumed at once: its previous run may still hold it)."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        with job_run_lock(job_id) as mine:
            if mine:
                _job_run(job_id)
                return
        # Held: by a run still ending (a job resumed or resubmitted right after its pause or failure was saved,
        # before that run let its lock go), or by a duplicate run, which holds it until the job is done
        if time.monotonic() > deadline or not Job.objects.filter(id=job_id, state=State.RUNNING).exists():
            return
        time.sleep(0.05)


def _job_run(job_id: str) -> None:
    from jobs.kinds import KINDS

    job = Job.objects.filter(id=job_id, state=State.RUNNING).first()
    if job is None:
        return  # canceled or deleted before a worker took it
    kind = KINDS.get(job.type)
    if kind is None:
        job_finish(job=job, state=State.FAILURE, error=ArchiveError(f"Unknown job type: {job.type}"))
        return
    started = time.perf_counter()
    try:
        for progress in kind(job):
            now = time.perf_counter()
            if now - started < SAVE_INTERVAL:
                continue  # short steps (one instance of a modification): progress saved a few times a second
            # rounded, as Orthanc's JobInfo (boost::math::iround): 2 of 3 instances is 67, not 66
            request = job_add_runtime(job_id=job.id, seconds=now - started, progress=int(progress + 0.5))
            started = now
            if request == "cancel":
                job.refresh_from_db()
                job_finish(job=job, state=State.FAILURE, error=ArchiveError(orthanc_error=CANCELED))
                return
            if request == "pause":
                checkpoint = getattr(job, "checkpoint", None)
                job.refresh_from_db()
                if checkpoint is not None:     # where a kind that can go on from there resumes
                    job.parameters = {**job.parameters, "checkpoint": checkpoint}
                job_finish(job=job, state=State.PAUSED)
                return
    except ArchiveError as error:
        job.refresh_from_db()
        job_finish(job=job, state=State.FAILURE, error=error)
        return
    except Exception as exc:  # noqa: BLE001 - a job's bug fails the job, never the worker
        logger.exception("job %s (%s) failed", job.id, job.type)
        job.refresh_from_db()
        job_finish(job=job, state=State.FAILURE,
                   error=ArchiveError(f"{type(exc).__name__}: {exc}", orthanc_error=OrthancError.INTERNAL_ERROR))
        return
    content = job.content
    job.refresh_from_db()
    job.content = content
    job.runtime += time.perf_counter() - started
    job_finish(job=job, state=State.SUCCESS)
