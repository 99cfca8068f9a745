"""BROKER_URL=redis://...: a real server whose django-q2 workers take their tasks from a real Redis runs an
asynchronous archive job to Success."""

from __future__ import annotations

import time

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server
from tests.scale.processes import redis_server


def test_an_asynchronous_archive_job_runs_through_redis(tmp_path, monkeypatch):
    import redis

    with redis_server(tmp_path) as url:
        monkeypatch.setenv("BROKER_URL", url)
        with live_server(tmp_path) as server:
            uploaded = requests.post(server.url + "/instances", data=make_dicom(PatientID="R1"),
                                     headers={"Content-Type": "application/dicom"}, timeout=30).json()
            answer = requests.post(f"{server.url}/studies/{uploaded['ParentStudy']}/archive",
                                   json={"Asynchronous": True}, timeout=30).json()
            job_id = answer["ID"]
            deadline = time.time() + 60
            while True:
                job = requests.get(f"{server.url}/jobs/{job_id}", timeout=10).json()
                if job["State"] in ("Success", "Failure") or time.time() > deadline:
                    break
                time.sleep(0.2)
            assert job["State"] == "Success", job
            archive = requests.get(f"{server.url}/jobs/{job_id}/archive", timeout=30)
            assert archive.status_code == 200 and archive.content[:2] == b"PK"
            # The task went through Redis: django-q2's Redis broker enqueues with RPUSH and dequeues with BLPOP.
            stats = redis.from_url(url).info("commandstats")
            assert stats["cmdstat_rpush"]["calls"] >= 1 and stats["cmdstat_blpop"]["calls"] >= 1
            health = requests.get(server.url + "/health", timeout=10).json()
            assert health["Checks"]["Broker"] == "OK"
