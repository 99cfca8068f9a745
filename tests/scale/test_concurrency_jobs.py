"""Jobs submitted from several processes and run by two django-q2 clusters (as two ``manage.py qcluster``,
or two servers, on one database): each job is claimed by one worker and runs exactly once, and no more than
ConcurrentJobs run at a time across both clusters."""

from __future__ import annotations

import os
import time

from tests.scale.concurrency import shared_archive

HERE = "tests.scale.test_concurrency_jobs"
PROBE = -1  # the change type of the rows the probe job writes: one per run


def _probe(job):
    """A job kind that records each of its runs (and how many jobs were running meanwhile)."""
    from archive.models import Change
    from jobs.models import Job, State

    running = Job.objects.filter(state=State.RUNNING).count()
    Change.objects.create(change_type=PROBE, level=0, public_id=job.id, date=f"{os.getpid()}:{running}")
    yield 100


def _cluster_or_submit(ctx, jobs_per_submitter: int) -> list[str]:
    """Processes 0 and 1 run a django-q2 cluster until every job is done; the others submit jobs."""
    from jobs.engine import job_submit
    from jobs.kinds import KINDS
    from jobs.models import Job, State

    KINDS["ScaleProbe"] = _probe  # the cluster's workers are forked from here
    expected = (ctx.n - 2) * jobs_per_submitter
    if ctx.index >= 2:
        return [job_submit(kind="ScaleProbe", parameters={}, priority=k % 3).id for k in range(jobs_per_submitter)]
    from django_q.cluster import Cluster

    cluster = Cluster()
    cluster.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Job.objects.filter(state=State.SUCCESS).count() >= expected:
                break
            time.sleep(0.05)
    finally:
        cluster.stop()
    return []


def _runs(ctx) -> dict:
    from archive.models import Change
    from jobs.models import Job

    return {"runs": list(Change.objects.filter(change_type=PROBE).values_list("public_id", "date")),
            "states": dict(Job.objects.values_list("id", "state"))}


def test_jobs_from_several_processes_run_once_on_two_clusters(tmp_path):
    processes, per_submitter, concurrent = 4, 15, 3
    with shared_archive(tmp_path, ConcurrentJobs=concurrent, JobsHistorySize=1000) as archive:
        *submitted, final = archive.run(f"{HERE}:_cluster_or_submit", processes, per_submitter,
                                        after=f"{HERE}:_runs")

    ids = sorted(i for per_process in submitted for i in per_process)
    assert len(ids) == (processes - 2) * per_submitter
    assert final["states"] == dict.fromkeys(ids, "Success")
    assert sorted(job for job, _ in final["runs"]) == ids  # each job ran, and only once
    assert max(int(date.split(":")[1]) for _, date in final["runs"]) <= concurrent


def _slow_probe(job):
    time.sleep(0.4)
    yield from _probe(job)


def _cluster_and_restart(ctx, jobs: int) -> list[str]:
    """Process 0 runs a cluster; process 1 submits jobs, then, while some run, does what a second server
    started on the same database does first (jobs_recover); then both wait for every job to finish."""
    from jobs.engine import job_submit, jobs_recover
    from jobs.kinds import KINDS
    from jobs.models import Job, State

    KINDS["ScaleProbe"] = _slow_probe
    if ctx.index == 1:
        ids = [job_submit(kind="ScaleProbe", parameters={}).id for _ in range(jobs)]
        deadline = time.monotonic() + 30
        while Job.objects.filter(state=State.RUNNING).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.15)  # the cluster's two workers have taken them (their probes sleep 0.4 s)
        # Those the workers run are left alone; one claimed but not started yet may be dispatched again, but
        # the run lock makes the queued copy that comes second a no-op.
        jobs_recover()
        ctx.barrier.wait(timeout=60)
        return ids
    from django_q.cluster import Cluster

    cluster = Cluster()
    cluster.start()
    try:
        ctx.barrier.wait(timeout=60)
        deadline = time.monotonic() + 60
        while Job.objects.exclude(state=State.SUCCESS).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a job run a second time would start now
    finally:
        cluster.stop()
    return []


def test_a_second_server_starting_does_not_run_the_first_ones_jobs_again(tmp_path):
    with shared_archive(tmp_path, ConcurrentJobs=2, JobsHistorySize=1000) as archive:
        _, ids, final = archive.run(f"{HERE}:_cluster_and_restart", 2, 6, after=f"{HERE}:_runs")

    assert final["states"] == dict.fromkeys(ids, "Success")
    assert sorted(job for job, _ in final["runs"]) == sorted(ids)  # each job ran, and only once
