"""The jobs engine in a real server: ``manage.py serve`` starts django-q2's cluster on the ORM broker, a job
submitted over HTTP runs in a worker process, and a job interrupted by a kill runs again after a restart."""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server, restart


def _wait(base: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = requests.get(f"{base}/jobs/{job_id}", timeout=5).json()
        if job["State"] in ("Success", "Failure"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['State']}")


def _upload(base: str, count: int) -> str:
    for k in range(count):
        answer = requests.post(f"{base}/instances", data=make_dicom(SOPInstanceUID=f"1.2.3.4.{k}",
                                                                   InstanceNumber=str(k + 1)), timeout=10).json()
    return answer["ParentStudy"]


def test_asynchronous_archive_runs_in_the_cluster_and_survives_a_kill(tmp_path) -> None:
    with live_server(tmp_path) as server:
        study = _upload(server.url, 20)
        job_id = requests.post(f"{server.url}/studies/{study}/archive", json={"Asynchronous": True},
                               timeout=10).json()["ID"]
        job = _wait(server.url, job_id)
        assert job["State"] == "Success", job
        archive = requests.get(f"{server.url}/jobs/{job_id}/archive", timeout=10)
        assert len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 20

        # A job caught Running by a kill (its worker gone with the server) runs again at the next start.
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        _sql(server.database_url, "UPDATE jobs_job SET state = 'Running', progress = 40, completion_time = NULL"
                                  " WHERE id = %s", job_id)
        server = restart(server)
        again = _wait(server.url, job_id)
        assert again["State"] == "Success" and again["Progress"] == 100
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=15)


def _sql(database_url: str, statement: str, *params) -> None:
    """A write straight into the live server's own database (not the test database)."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url[len("sqlite:///"):]) as db:
            db.execute(statement.replace("%s", "?"), params)
        return
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(statement, params)


def _upload_many(base: str, count: int) -> str:
    """``count`` small instances of one study in two series, uploaded from 4 threads."""
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> str:
        data = make_dicom(SOPInstanceUID=f"1.2.3.9.{k}", SeriesInstanceUID=f"1.2.3.9.{k % 2}",
                          InstanceNumber=str(k + 1))
        return requests.post(f"{base}/instances", data=data, timeout=10).json()["ParentStudy"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))[0]


def test_anonymization_killed_mid_run_runs_again_and_leaves_one_whole_copy(tmp_path) -> None:
    """SIGKILL while an anonymization job is storing copies (in its worker processes); after the restart the
    job runs again from the start (SaveJobs) and, its identifiers being derived from the job, stores the same
    copies again: one anonymized study, whole, and no half-written instance."""
    count = 300
    with live_server(tmp_path, JobsEngineThreadsCount={"ResourceModification": 2}) as server:
        study = _upload_many(server.url, count)
        job_id = requests.post(f"{server.url}/studies/{study}/anonymize", json={"Asynchronous": True},
                               timeout=10).json()["ID"]
        deadline = time.time() + 60
        while time.time() < deadline:
            job = requests.get(f"{server.url}/jobs/{job_id}", timeout=5).json()
            if job["State"] == "Running" and 5 <= job["Progress"] <= 60:
                break
            assert job["State"] in ("Pending", "Running"), job
            time.sleep(0.02)
        copies_before = len(requests.get(f"{server.url}/instances", timeout=10).json()) - count
        assert 0 < copies_before < count, copies_before  # killed in the middle of the job
        server.kill()

        server = restart(server)
        try:
            job = _wait(server.url, job_id, timeout=120)
            assert job["State"] == "Success", job
            assert job["Content"]["InstancesCount"] == count and job["Content"]["IsAnonymization"] is True
            studies = requests.get(f"{server.url}/studies", timeout=10).json()
            assert sorted(studies) == sorted([study, job["Content"]["ID"]])
            instances = requests.get(f"{server.url}/studies/{job['Content']['ID']}/instances", timeout=10).json()
            assert len(instances) == count
            assert len(requests.get(f"{server.url}/instances", timeout=10).json()) == 2 * count
            statistics = requests.get(f"{server.url}/statistics", timeout=10).json()
            assert statistics["CountInstances"] == 2 * count and statistics["CountStudies"] == 2
            for instance in instances[:: count // 10]:  # every copy readable, with its provenance
                assert requests.get(f"{server.url}/instances/{instance['ID']}/file", timeout=10).status_code == 200
                assert requests.get(f"{server.url}/instances/{instance['ID']}/metadata/AnonymizedFrom",
                                    timeout=10).status_code == 200
            from archive.storage import INCOMING

            staged = [p for p in (tmp_path / "storage" / INCOMING).iterdir()]
            assert not staged, staged  # staged files of the killed run settled at the restart
        finally:
            server.kill()  # the restarted server is not the one live_server() stops
