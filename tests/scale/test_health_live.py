"""GET /health on real processes: 200 on a running server, 503 naming the database when it cannot be reached."""

from __future__ import annotations

import requests

from tests.live import free_port, live_server
from tests.scale.processes import http_process


def test_health_is_ok_on_a_running_server(tmp_path):
    with live_server(tmp_path, AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"}) as server:
        response = requests.get(server.url + "/health", timeout=10)    # no credentials
        assert response.status_code == 200
        assert response.json()["Status"] == "OK"
        assert response.json()["Checks"] == {"Database": "OK", "Storage": "OK"}


def test_health_is_503_naming_the_database_when_it_is_unreachable(tmp_path):
    # A PostgreSQL URL on a port nobody listens on: the process starts (nothing reads the database at start)
    # and every request that needs the database fails; /health must say so, quickly.
    unreachable = f"postgres://explorer:explorer@127.0.0.1:{free_port()}/explorer"
    config = {"StorageDirectory": str(tmp_path / "storage"), "IndexDirectory": str(tmp_path / "index"),
              "RemoteAccessAllowed": True}
    (tmp_path / "storage").mkdir()
    with http_process(tmp_path, config=config, database_url=unreachable, ready_path="/health") as web:
        response = requests.get(web.url + "/health", timeout=15)
        assert response.status_code == 503
        body = response.json()
        assert body["Status"] == "Unavailable"
        assert body["Checks"] == {"Database": "Failed", "Storage": "OK"}
        assert "health: database check failed" in web.log.read_text()
