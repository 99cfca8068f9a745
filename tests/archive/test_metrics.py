"""Timers of one process (archive.metrics), and how the rows of several processes combine."""

from __future__ import annotations

import time

from archive.metrics import LIVE_SECONDS, OPTIONAL, ProcessRegistry, metrics_aggregate


def test_a_timer_is_listed_once_recorded_with_the_longest_of_the_window():
    registry = ProcessRegistry()
    assert not OPTIONAL & set(registry.snapshot())
    registry.duration_add(name="orthanc_store_dicom_duration_ms", duration_ms=3.5)
    registry.duration_add(name="orthanc_store_dicom_duration_ms", duration_ms=1.25)
    values = registry.snapshot()
    assert values["orthanc_store_dicom_duration_ms"] == 3.5
    assert "orthanc_find_scp_duration_ms" not in values


def test_timers_combine_by_max_over_live_processes_and_stay_listed():
    now = time.time()
    rows = [
        ("dicom:1", {"orthanc_store_dicom_duration_ms": 4.0}, now - 1),
        ("jobs:2", {"orthanc_store_dicom_duration_ms": 9.0}, now - 2),
        ("dead:3", {"orthanc_store_dicom_duration_ms": 90.0, "orthanc_move_scp_duration_ms": 50.0},
         now - LIVE_SECONDS - 1),
    ]
    combined = metrics_aggregate(rows, now=now)
    assert combined["orthanc_store_dicom_duration_ms"] == 9.0
    assert combined["orthanc_move_scp_duration_ms"] == 0      # once recorded: listed, the dead value not counted
    assert "orthanc_find_scp_duration_ms" not in combined
    assert combined["orthanc_rest_api_duration_ms"] == 0      # the REST figures are always there


def test_free_threads_are_the_fewest_of_the_window_and_only_where_they_serve():
    registry = ProcessRegistry()
    assert "orthanc_available_http_threads_count" not in registry.snapshot()   # not an HTTP worker
    registry.http_threads = 4
    for _ in range(3):
        registry.rest_request_started()
    for _ in range(3):
        registry.rest_request_finished(duration_ms=1)
    registry.dicom_threads_set(4)
    registry.dicom_associations(2)
    registry.dicom_associations(0)
    values = registry.snapshot()
    assert values["orthanc_available_http_threads_count"] == 1      # 3 of 4 busy at the worst moment
    assert values["orthanc_available_dicom_threads"] == 2


def test_free_threads_add_up_over_live_processes():
    now = time.time()
    rows = [("dicom:1", {"orthanc_available_dicom_threads": 4}, now - 1),
            ("dicom:2", {"orthanc_available_dicom_threads": 3}, now - 1),
            ("dead:3", {"orthanc_available_dicom_threads": 4}, now - LIVE_SECONDS - 1),
            ("http:4", {"orthanc_available_http_threads_count": 2}, now)]
    combined = metrics_aggregate(rows, now=now)
    assert (combined["orthanc_available_dicom_threads"], combined["orthanc_available_http_threads_count"]) == (7, 2)


def test_storage_bytes_written_and_read_are_counted_as_stored(tmp_path):
    """orthanc_storage_written_bytes / orthanc_storage_read_bytes (Orthanc 1.12.1): every attachment's bytes as
    the storage area holds them, listed once counted and summed over the processes as counters."""
    from archive.metrics import registry
    from archive.storage import DicomFileStorage

    storage = DicomFileStorage(location=str(tmp_path))
    before = registry.snapshot()
    storage.stage("0123abcd-written", b"x" * 1000)
    storage.publish("0123abcd-written")
    storage.stage("0123abcd-staged", b"y" * 10)      # read while still staged (crash between commit and move)
    assert storage.read("0123abcd-written") == b"x" * 1000
    assert storage.read("0123abcd-staged") == b"y" * 10
    after = registry.snapshot()
    assert after["orthanc_storage_written_bytes"] - before.get("orthanc_storage_written_bytes", 0) == 1010
    assert after["orthanc_storage_read_bytes"] - before.get("orthanc_storage_read_bytes", 0) == 1010
    assert {"orthanc_storage_written_bytes", "orthanc_storage_read_bytes"} <= OPTIONAL
    now = time.time()
    rows = [("http:1", {"orthanc_storage_read_bytes": 5}, now - 1),
            ("dead:2", {"orthanc_storage_read_bytes": 7}, now - LIVE_SECONDS - 1)]
    assert metrics_aggregate(rows, now=now)["orthanc_storage_read_bytes"] == 12     # a dead process's count stays
