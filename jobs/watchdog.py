"""Jobs whose run was lost while the server kept running: a job worker killed mid-job, a task lost with the
Redis broker, an enqueue that failed after the claim. Such a job stays Running with nobody holding its run
lock (jobs.engine.job_run_lock: a lock dies with its process). ``jobs_orphans_requeue`` runs every few seconds
in the housekeeper (``serve``): a Running job found without a holder at two passes in a row is put back to
Pending and dispatched again, from its start, as ``jobs_recover`` does at start-up. Two passes, because a
job just claimed is Running before its worker takes the lock; a second run of the same job is harmless anyway
(``jobs.tasks.job_run`` runs a job only under its lock, and only while it is Running)."""

from __future__ import annotations

from jobs.engine import job_run_lock, jobs_dispatch
from jobs.models import Job, State

_suspects: set[str] = set()


def jobs_orphans_requeue() -> int:
    """One pass; returns how many jobs were put back to Pending. Also dispatches: a dispatch that failed
    (the broker down when a job finished) leaves Pending jobs that nothing else would start."""
    global _suspects
    free = set()
    for job_id in Job.objects.filter(state=State.RUNNING).values_list("id", flat=True):
        with job_run_lock(job_id) as unheld:
            if unheld:
                free.add(job_id)
    orphans, _suspects = free & _suspects, free - _suspects
    count = 0
    for job_id in orphans:
        with job_run_lock(job_id) as unheld:   # under the lock: a worker taking it now finds it Pending
            if unheld:
                count += Job.objects.filter(id=job_id, state=State.RUNNING).update(
                    state=State.PENDING, progress=0, request="")
    jobs_dispatch()
    return count
