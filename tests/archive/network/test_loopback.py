"""Two of our servers as each other's modality, real processes on loopback: our SCU (REST) against our SCP,
C-STORE with storage commitment, C-FIND through /query, retrieval with C-MOVE and with C-GET."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from bench.network import wait_dicom
from tests.dicom_factory import make_dicom
from tests.live import free_port, live_server


def _wait_report(url: str) -> dict:
    for _ in range(400):
        report = requests.get(url, timeout=5).json()
        if report.get("Status") != "Pending":
            return report
        time.sleep(0.05)
    return report


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ports = {"A": free_port(), "B": free_port()}
    modalities = {name: {"AET": name, "Host": "127.0.0.1", "Port": port} for name, port in ports.items()}
    with live_server(Path(tmp_path_factory.mktemp("a")), DicomAet="A", DicomPort=ports["A"],
                     DicomModalities={"B": modalities["B"]}) as a, \
            live_server(Path(tmp_path_factory.mktemp("b")), DicomAet="B", DicomPort=ports["B"],
                        DicomModalities={"A": modalities["A"]}) as b:
        for port in ports.values():     # the DICOM servers start a few seconds after the HTTP ones
            wait_dicom(port)
        yield a.url, b.url


def test_store_commit_query_and_retrieve_between_two_servers(pair) -> None:
    a, b = pair
    for k in range(3):
        stored = requests.post(f"{a}/instances", data=make_dicom(SOPInstanceUID=f"1.2.3.7.{k}",
                                                                 SeriesInstanceUID="1.2.3.7",
                                                                 StudyInstanceUID="1.2.3.70",
                                                                 InstanceNumber=str(k + 1)), timeout=10).json()
    study = stored["ParentStudy"]

    assert requests.post(f"{a}/modalities/B/echo", json={}, timeout=10).json() == {}
    content = requests.post(f"{a}/modalities/B/store", json={"Resources": [study], "StorageCommitment": True},
                            timeout=60).json()
    assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
    assert sorted(requests.get(f"{b}/instances", timeout=10).json()) == sorted(
        requests.get(f"{a}/instances", timeout=10).json())
    report = _wait_report(f"{a}/storage-commitment/{content['StorageCommitmentTransactionUID']}")
    assert report["Status"] == "Success" and len(report["Success"]) == 3 and report["Failures"] == []

    # C-FIND from A to B, then C-MOVE back into A (B sends to A's SCP), after A forgot the study
    assert requests.delete(f"{a}/studies/{study}", timeout=10).status_code == 200
    query = requests.post(f"{a}/modalities/B/query", json={"Level": "Study",
                                                           "Query": {"StudyInstanceUID": "1.2.3.70"}},
                          timeout=30).json()
    answers = requests.get(f"{a}/queries/{query['ID']}/answers?expand", timeout=10).json()
    assert [x["StudyInstanceUID"]["Value"] if isinstance(x.get("StudyInstanceUID"), dict)
            else x.get("0020,000d", {}).get("Value") for x in answers] == ["1.2.3.70"]
    moved = requests.post(f"{a}/queries/{query['ID']}/retrieve", json={"TargetAet": "A"}, timeout=60)
    assert moved.status_code == 200, moved.text
    assert len(requests.get(f"{a}/studies/{study}/instances", timeout=10).json()) == 3

    # C-GET of the same study, after A forgot it again
    assert requests.delete(f"{a}/studies/{study}", timeout=10).status_code == 200
    got = requests.post(f"{a}/modalities/B/get", json={"Level": "Study",
                                                       "Resources": [{"StudyInstanceUID": "1.2.3.70"}]},
                        timeout=60)
    assert got.status_code == 200, got.text
    assert len(requests.get(f"{a}/studies/{study}/instances", timeout=10).json()) == 3
