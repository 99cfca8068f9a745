"""/tools/metrics-prometheus over several processes: each process's row in ProcessMetrics, combined by the
rule of each metric (archive/metrics.py), and the jobs figures from the jobs table."""

from __future__ import annotations

import time

import pytest

from archive.metrics import (
    LIVE_SECONDS,
    RETIRED,
    metrics_aggregate,
    metrics_collect,
    metrics_flush,
    metrics_retire,
    process_key,
)
from archive.models import ProcessMetrics

pytestmark = pytest.mark.django_db


def prometheus(client) -> dict[str, str]:
    response = client.get("/tools/metrics-prometheus")
    assert response.status_code == 200
    return {line.split()[0]: line.split()[1] for line in response.content.decode().splitlines()}


def test_gauges_come_from_live_processes_and_counters_from_all():
    now = 1000.0
    rows = [
        ("a:1", {"orthanc_rest_api_active_requests": 2, "orthanc_rest_api_duration_ms": 40,
                 "orthanc_logged_errors_count": 1}, now - 1),
        ("b:2", {"orthanc_rest_api_active_requests": 3, "orthanc_rest_api_duration_ms": 90,
                 "orthanc_logged_errors_count": 2}, now - 3),
        ("dead:3", {"orthanc_rest_api_active_requests": 7, "orthanc_rest_api_duration_ms": 500,
                    "orthanc_logged_errors_count": 4}, now - LIVE_SECONDS - 1),
    ]
    combined = metrics_aggregate(rows, now=now)
    assert combined["orthanc_rest_api_active_requests"] == 5      # summed over live processes
    assert combined["orthanc_rest_api_duration_ms"] == 90         # the longest over live processes
    assert combined["orthanc_logged_errors_count"] == 7           # counted, dead process included


def test_prometheus_adds_other_processes_rows(client):
    ProcessMetrics.objects.create(process="other-host:42", updated=time.time(), values={
        "orthanc_rest_api_active_requests": 4, "orthanc_rest_api_duration_ms": 12345,
        "orthanc_logged_warnings_count": 6, "orthanc_logged_errors_count": 0})
    values = prometheus(client)
    # This process's own request (the scrape) is active too, as in Orthanc.
    assert int(values["orthanc_rest_api_active_requests"]) >= 5
    assert values["orthanc_rest_api_duration_ms"] == "12345"
    assert int(values["orthanc_logged_warnings_count"]) >= 6


def test_this_process_counts_live_not_as_last_flushed(client):
    metrics_flush()
    assert ProcessMetrics.objects.filter(process=process_key()).exists()
    client.get("/patients")
    # The row is stale for this process; metrics_collect uses the in-memory figures for it, not the row.
    combined = metrics_collect()
    assert combined["orthanc_rest_api_active_requests"] >= 1      # the /patients request of the last 10 s


def test_a_flush_writes_one_row_per_process_then_updates_it():
    from archive.metrics import registry

    metrics_flush()
    first = ProcessMetrics.objects.get(process=process_key())
    registry.counter_add(name="orthanc_storage_written_bytes", amount=1234)
    time.sleep(0.01)
    metrics_flush()
    rows = list(ProcessMetrics.objects.filter(process=process_key()))
    assert len(rows) == 1
    assert rows[0].updated > first.updated
    assert rows[0].values["orthanc_storage_written_bytes"] == first.values.get("orthanc_storage_written_bytes", 0) + 1234


def test_dead_processes_counters_are_folded_into_retired():
    old = time.time() - 3600
    ProcessMetrics.objects.create(process="gone:1", updated=old, values={"orthanc_logged_errors_count": 2,
                                                                         "orthanc_rest_api_active_requests": 9})
    ProcessMetrics.objects.create(process="gone:2", updated=old, values={"orthanc_logged_errors_count": 3})
    ProcessMetrics.objects.create(process="alive:3", updated=time.time(), values={"orthanc_logged_errors_count": 1})
    before = metrics_collect()["orthanc_logged_errors_count"]
    assert metrics_retire() == 2
    assert set(ProcessMetrics.objects.values_list("process", flat=True)) == {RETIRED, "alive:3"}
    assert ProcessMetrics.objects.get(process=RETIRED).values == {"orthanc_logged_errors_count": 5}
    assert metrics_collect()["orthanc_logged_errors_count"] == before   # nothing lost, nothing doubled
    assert metrics_retire() == 0


def test_jobs_figures_come_from_the_jobs_table(client):
    from jobs.models import Job, State

    for state, n in ((State.PENDING, 2), (State.RETRY, 1), (State.RUNNING, 1), (State.SUCCESS, 3),
                     (State.FAILURE, 1)):
        for _ in range(n):
            Job.objects.create(type="Test", state=state)
    values = prometheus(client)
    assert values["orthanc_jobs_pending"] == "3"
    assert values["orthanc_jobs_running"] == "1"
    assert values["orthanc_jobs_success"] == "3"
    assert values["orthanc_jobs_failed"] == "1"
    assert values["orthanc_jobs_completed"] == "4"
