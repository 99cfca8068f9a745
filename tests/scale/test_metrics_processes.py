"""/tools/metrics-prometheus summed over processes: a live server (gunicorn workers) and a second HTTP process
on the same database each log warnings; either one reports the total."""

from __future__ import annotations

import time

import requests

from tests.live import live_server
from tests.scale.processes import http_process


def _metrics(url: str) -> dict[str, float]:
    text = requests.get(url + "/tools/metrics-prometheus", timeout=10).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()}


def _wait_for(url: str, name: str, expected: float, timeout: float = 20) -> float:
    deadline = time.time() + timeout
    while True:
        value = _metrics(url)[name]
        if value >= expected or time.time() > deadline:
            return value
        time.sleep(0.3)


def test_logged_warnings_are_summed_over_two_http_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_FLUSH_SECONDS", "0.3")
    with live_server(tmp_path) as a, http_process(tmp_path, config=a.config, database_url=a.database_url,
                                                  env={"METRICS_FLUSH_SECONDS": "0.3"}) as b:
        time.sleep(1)   # start-up lines are flushed
        base = _metrics(a.url)["orthanc_logged_warnings_count"]
        for _ in range(3):
            assert requests.get(a.url + "/patients/nope", timeout=10).status_code == 404   # one warning each
        for _ in range(2):
            assert requests.get(b.url + "/studies/nope", timeout=10).status_code == 404
        assert _wait_for(a.url, "orthanc_logged_warnings_count", base + 5) == base + 5
        time.sleep(1)   # and no more than that, from either side
        assert _metrics(a.url)["orthanc_logged_warnings_count"] == base + 5
        assert _metrics(b.url)["orthanc_logged_warnings_count"] == base + 5


def test_active_requests_and_duration_include_the_other_process(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_FLUSH_SECONDS", "0.3")
    with live_server(tmp_path) as a, http_process(tmp_path, config=a.config, database_url=a.database_url,
                                                  env={"METRICS_FLUSH_SECONDS": "0.3"}) as b:
        for _ in range(5):
            requests.get(b.url + "/patients", timeout=10)
        time.sleep(1)
        seen_by_a = _metrics(a.url)
        # b's workers served requests within the last 10 s: its figures count in a's answer, besides a's own
        # scrape (active requests are Orthanc's max over 10 s per process, summed over processes).
        assert seen_by_a["orthanc_rest_api_active_requests"] >= 2
        assert seen_by_a["orthanc_rest_api_duration_ms"] >= 0
        for name in ("orthanc_jobs_pending", "orthanc_jobs_running", "orthanc_jobs_completed"):
            assert name in seen_by_a
