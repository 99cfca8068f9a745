"""How many processes ``manage.py dicomserver`` forks when not told."""

from __future__ import annotations

import os

import pytest

from explorer.management.commands.dicomserver import default_processes


@pytest.mark.parametrize("cpus", [1, 2, 8])
def test_one_process_per_association_orthanc_serves_at_once_up_to_four(monkeypatch, cpus):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    # DicomThreadsCount 4 (Orthanc's default): four associations in parallel, more with more CPUs
    assert default_processes(4) == max(cpus, 4)
    # DicomThreadsCount 1: never more than one association per process, one process per CPU
    assert default_processes(1) == cpus
    # a large DicomThreadsCount does not fork dozens of processes on a small machine
    assert default_processes(64) == max(cpus, 4)


def test_unknown_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_processes(4) == 4
    assert default_processes(1) == 1
