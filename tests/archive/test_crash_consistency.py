"""SIGKILL the server during concurrent uploads: after a restart, index and storage agree."""

from __future__ import annotations

import os
import threading
import time

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server, restart


def _files_on_disk(storage: str) -> set[str]:
    found = set()
    for dirpath, _dirs, files in os.walk(storage):
        if os.path.basename(dirpath) == ".incoming":
            continue
        found.update(files)
    return found


def test_sigkill_during_four_concurrent_uploads_leaves_a_consistent_archive(tmp_path):
    payloads = [make_dicom(PatientID=f"P{i % 7}", StudyInstanceUID=f"1.2.{i % 7}",
                           SeriesInstanceUID=f"1.2.{i % 7}.1", SOPInstanceUID=f"1.2.{i % 7}.1.{i}",
                           PixelData=os.urandom(200_000), Rows=100, Columns=1000)
                for i in range(400)]
    with live_server(tmp_path) as server:
        stop = threading.Event()
        sent = [0] * 4

        def upload(k: int) -> None:
            session = requests.Session()
            for data in payloads[k::4]:
                if stop.is_set():
                    return
                try:
                    session.post(server.url + "/instances", data=data, timeout=5,
                                 headers={"Content-Type": "application/dicom"})
                    sent[k] += 1
                except requests.RequestException:
                    return

        threads = [threading.Thread(target=upload, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while sum(sent) < 20 and time.time() < deadline:
            time.sleep(0.01)
        server.kill()  # mid-flight: some uploads are between file write and commit
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert sum(sent) >= 20

        server = restart(server)
        try:
            instances = requests.get(server.url + "/instances?expand", timeout=30).json()
            indexed = {i["FileUuid"] for i in instances}
            storage = server.config["StorageDirectory"]
            assert indexed == _files_on_disk(storage)
            assert os.listdir(os.path.join(storage, ".incoming")) == []
            for instance in instances[:50]:
                assert requests.get(f"{server.url}/instances/{instance['ID']}/file", timeout=10).status_code == 200
            stats = requests.get(server.url + "/statistics", timeout=10).json()
            assert stats["CountInstances"] == len(instances)
        finally:
            server.kill()
