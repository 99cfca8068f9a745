"""POST /tools/reset and /tools/shutdown on a real ``manage.py serve``, as Orthanc 1.10.1 answers them (seen with
curl: 200, application/json, "{}"; reset restarts with the configuration read again, shutdown stops)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server

pytestmark = pytest.mark.django_db


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _name(url: str) -> str | None:
    try:
        return requests.get(url + "/system", timeout=1).json()["Name"]
    except (requests.RequestException, ValueError):
        return None


def test_reset_restarts_with_the_configuration_read_again_and_keeps_the_archive(tmp_path):
    with live_server(tmp_path, DicomServerEnabled=False) as server:
        stored = requests.post(server.url + "/instances", data=make_dicom(), timeout=10).json()
        pid = server.process.pid
        config = json.loads((tmp_path / "orthanc.json").read_text())
        (tmp_path / "orthanc.json").write_text(json.dumps({**config, "Name": "renamed"}))

        answer = requests.post(server.url + "/tools/reset", timeout=10)
        assert (answer.status_code, answer.content) == (200, b"{}")
        assert answer.headers["Content-Type"] == "application/json"   # as Orthanc, no charset on this one
        _wait_for(lambda: _name(server.url) == "renamed")
        assert server.process.poll() is None and server.process.pid == pid   # the same process, started anew
        assert requests.get(server.url + "/instances", timeout=5).json() == [stored["ID"]]


def test_shutdown_stops_the_whole_server(tmp_path):
    with live_server(tmp_path, DicomServerEnabled=False) as server:
        answer = requests.post(server.url + "/tools/shutdown", timeout=10)
        assert (answer.status_code, answer.content) == (200, b"{}")
        assert server.process.wait(timeout=30) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/system", timeout=2)


def test_reset_and_shutdown_refuse_where_serve_did_not_start_the_process(client):
    """Started by a process manager of its own (the test client here): that manager restarts and stops it."""
    for route in ("/tools/reset", "/tools/shutdown"):
        answer = client.post(route)
        assert answer.status_code == 500
        assert answer.json()["OrthancError"] == "Not implemented yet"
        assert "process manager" in answer.json()["Details"]
    assert client.get("/tools/reset").status_code == 405
