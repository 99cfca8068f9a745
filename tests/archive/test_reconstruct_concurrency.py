"""Reconstructions of the same instance's files at once, through a live server with two workers: each
replaces the attachments the other wrote; none may answer 500, leave two "dicom" rows, or make the running
statistics drift from the attachments."""

from __future__ import annotations

import threading

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server


def test_concurrent_file_reconstructions_leave_one_file_and_true_statistics(tmp_path):
    clients, rounds = 4, 3
    statuses: list[int] = []
    lock = threading.Lock()
    with live_server(tmp_path, StorageCompression=True) as server:
        instance = requests.post(server.url + "/instances", data=make_dicom(), timeout=30).json()["ID"]

        def reconstruct(barrier: threading.Barrier) -> None:
            barrier.wait()
            response = requests.post(f"{server.url}/instances/{instance}/reconstruct", timeout=60,
                                     json={"ReconstructFiles": True})
            with lock:
                statuses.append(response.status_code)

        for _ in range(rounds):
            barrier = threading.Barrier(clients)
            threads = [threading.Thread(target=reconstruct, args=(barrier,)) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        attachments = requests.get(f"{server.url}/instances/{instance}/attachments?full", timeout=30).json()
        sizes = [requests.get(f"{server.url}/instances/{instance}/attachments/{name}/info", timeout=30).json()
                 for name in attachments]
        statistics = requests.get(server.url + "/statistics", timeout=30).json()
        assert requests.get(f"{server.url}/instances/{instance}/file", timeout=30).content == \
            requests.get(f"{server.url}/instances/{instance}/file", timeout=30).content

    assert statuses == [200] * (clients * rounds)
    assert sorted(attachments) == ["dicom", "dicom-until-pixel-data"]
    assert int(statistics["TotalDiskSize"]) == sum(s["CompressedSize"] for s in sizes)
    assert int(statistics["TotalUncompressedSize"]) == sum(s["UncompressedSize"] for s in sizes)
