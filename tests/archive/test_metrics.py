"""Timers of one process (archive.metrics), and how the rows of several processes combine."""

from __future__ import annotations

import time

from archive.metrics import LIVE_SECONDS, TIMERS, ProcessRegistry, metrics_aggregate


def test_a_timer_is_listed_once_recorded_with_the_longest_of_the_window():
    registry = ProcessRegistry()
    assert not TIMERS & set(registry.snapshot())
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
