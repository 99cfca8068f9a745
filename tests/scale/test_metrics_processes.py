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
        value = _metrics(url).get(name, -1.0)   # a timer is listed once recorded and flushed
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


def test_timers_of_the_dicom_server_and_of_job_workers(tmp_path, monkeypatch):
    """orthanc_store_dicom_duration_ms and its kin, as Orthanc lists them: absent until something was timed,
    then the longest of the last 10 s, from whichever process did it (DICOM server, job worker)."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind

    from bench.network import wait_dicom
    from tests.dicom_factory import make_dataset

    monkeypatch.setenv("METRICS_FLUSH_SECONDS", "0.3")
    timers = ("orthanc_store_dicom_duration_ms", "orthanc_storage_create_duration_ms", "orthanc_find_scp_duration_ms")
    with live_server(tmp_path, DicomAet="ORTHANC", DicomAlwaysAllowFind=True) as server:
        wait_dicom(server.config["DicomPort"])
        assert not set(timers) & set(_metrics(server.url))
        ae = AE(ae_title="SCU")
        ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate("127.0.0.1", server.config["DicomPort"], ae_title="ORTHANC")
        assert assoc.is_established
        ds = make_dataset()
        assert assoc.send_c_store(ds).Status == 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ds.StudyInstanceUID
        assert [s.Status for s, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)][-1] == 0
        assoc.release()
        # the DICOM server process stored and answered: its figures reach the HTTP process's answer
        for name in timers:
            assert _wait_for(server.url, name, 0.001) > 0, name
        # free threads: one DICOM process of DicomThreadsCount 4 that served our association (and the start-up
        # probes) in the last 10 s, two HTTP workers of 4 threads serving at least this scrape
        seen = _metrics(server.url)
        assert 1 <= seen["orthanc_available_dicom_threads"] <= 3
        assert 0 < seen["orthanc_available_http_threads_count"] < 8
        # a job worker stores the modified copy: wait until the DICOM server's figures are older than 10 s
        time.sleep(10.5)
        assert _metrics(server.url)["orthanc_store_dicom_duration_ms"] == 0   # listed, nothing in the window
        # every slot free again: the probes that only opened and closed a connection hold none
        assert _metrics(server.url)["orthanc_available_dicom_threads"] == 4
        study = requests.post(server.url + "/tools/lookup", data=str(ds.StudyInstanceUID), timeout=10).json()[0]["ID"]
        job = requests.post(f"{server.url}/studies/{study}/modify", json={"Replace": {"StudyDescription": "COPY"},
                            "Asynchronous": True}, timeout=10).json()["ID"]
        deadline = time.time() + 60
        while requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["State"] != "Success":
            assert time.time() < deadline
            time.sleep(0.3)
        assert _wait_for(server.url, "orthanc_store_dicom_duration_ms", 0.001) > 0
