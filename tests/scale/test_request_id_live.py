"""Request IDs on a real server: echoed on the response, and on the request's log lines (LOG_FORMAT=json)."""

from __future__ import annotations

import json
import time

import requests

from tests.live import live_server


def test_request_id_is_echoed_and_in_the_json_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "json")
    with live_server(tmp_path) as server:
        response = requests.get(server.url + "/patients/unknown", headers={"X-Request-ID": "trace-42.live"},
                                timeout=10)
        assert response.status_code == 404
        assert response.headers["X-Request-ID"] == "trace-42.live"
        made = requests.get(server.url + "/system", timeout=10).headers["X-Request-ID"]
        assert len(made) == 32
        deadline = time.time() + 10
        while True:
            lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
                     if line.startswith("{")]
            ours = [line for line in lines if line["request_id"] == "trace-42.live"]
            if ours or time.time() > deadline:
                break
            time.sleep(0.2)
    assert ours, (tmp_path / "server.log").read_text()[-3000:]
    assert ours[0]["message"] == "Not Found: /patients/unknown"
    assert ours[0]["level"] == "WARNING" and ours[0]["logger"] == "django.request"
    assert isinstance(ours[0]["pid"], int) and ours[0]["ts"].endswith("+00:00")
