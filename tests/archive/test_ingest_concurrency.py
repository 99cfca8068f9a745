"""Concurrent uploads into the same new patient, study and series, through a live server with several
workers, as every multi-client upload does. On PostgreSQL, READ COMMITTED lets two transactions both see the
series missing and both insert it; the loser must look again and store, not answer 500."""

from __future__ import annotations

import threading

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server


def test_concurrent_uploads_into_one_new_series_all_succeed(tmp_path):
    rounds, clients = 10, 4
    statuses: list[object] = []
    lock = threading.Lock()
    with live_server(tmp_path) as server:
        def upload(data: bytes, barrier: threading.Barrier) -> None:
            barrier.wait()
            response = requests.post(server.url + "/instances", data=data, timeout=30,
                                     headers={"Content-Type": "application/dicom"})
            with lock:
                statuses.append(response.json().get("Status") if response.ok else response.text)

        for r in range(rounds):
            barrier = threading.Barrier(clients)
            threads = [threading.Thread(target=upload, args=(make_dicom(
                PatientID=f"P{r}", StudyInstanceUID=f"1.9.{r}", SeriesInstanceUID=f"1.9.{r}.1",
                SOPInstanceUID=f"1.9.{r}.1.{k}"), barrier)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        series = requests.get(server.url + "/series?expand", timeout=30).json()

    assert statuses == ["Success"] * (rounds * clients)
    assert len(series) == rounds
    assert all(len(s["Instances"]) == clients for s in series)


def test_uploads_into_a_patient_being_deleted_all_succeed(tmp_path):
    """Forward-then-delete routing: a patient is deleted while its late instances keep arriving. Each
    upload finds its ancestors gone or re-created under it; it must look again and store, not answer 500."""
    clients, per_client = 3, 15
    statuses: list[object] = []
    lock = threading.Lock()
    done = threading.Event()
    with live_server(tmp_path) as server:
        def upload(k: int) -> None:
            with requests.Session() as session:
                for n in range(per_client):
                    response = session.post(server.url + "/instances", timeout=30, headers={
                        "Content-Type": "application/dicom"}, data=make_dicom(
                        PatientID="PD", StudyInstanceUID="1.8", SeriesInstanceUID="1.8.1",
                        SOPInstanceUID=f"1.8.1.{k}.{n}"))
                    with lock:
                        statuses.append(response.json().get("Status") if response.ok else response.text)

        def delete() -> None:
            with requests.Session() as session:
                while not done.is_set():
                    for patient in session.get(server.url + "/patients", timeout=30).json():
                        session.delete(f"{server.url}/patients/{patient}", timeout=30)

        deleter = threading.Thread(target=delete)
        deleter.start()
        threads = [threading.Thread(target=upload, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        done.set()
        deleter.join(timeout=60)
        statistics = requests.get(server.url + "/statistics", timeout=30).json()
        instances = requests.get(server.url + "/instances", timeout=30).json()

    assert statuses == ["Success"] * (clients * per_client)
    assert statistics["CountInstances"] == len(instances)
