"""``manage.py serve``: where its HTTP server listens (HttpBindAddresses, Orthanc 1.12.10)."""

from __future__ import annotations

import socket

import pytest
import requests
from django.core.management.base import CommandError

from explorer.management.commands.serve import http_binds
from tests.live import free_port, live_server
from tests.scale.processes import http_process


def test_http_binds_of_the_configuration():
    assert http_binds({"HttpPort": 8042}) == ["0.0.0.0:8042"]
    assert http_binds({"HttpPort": 8042, "HttpBindAddresses": []}) == ["0.0.0.0:8042"]
    assert http_binds({"HttpPort": 9000, "HttpBindAddresses": ["1.2.3.4", " 127.0.0.1", "::1"]}) == [
        "1.2.3.4:9000", "127.0.0.1:9000", "[::1]:9000"]
    for wrong in ("127.0.0.1", ["localhost"], [1], ["1.2.3.4:80"]):
        with pytest.raises(CommandError, match="HttpBindAddresses"):
            http_binds({"HttpPort": 8042, "HttpBindAddresses": wrong})


def _answers(address: str, port: int) -> bool:
    try:
        return requests.get(f"http://{address}:{port}/system", timeout=10).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_http_server_listens_on_the_bind_addresses_only(tmp_path):
    # Every 127.x.y.z reaches this machine's loopback: the server bound to two of them does not answer on a third
    port = free_port()
    with live_server(tmp_path, HttpPort=port, HttpBindAddresses=["127.0.0.1", "127.0.0.3"]):
        assert _answers("127.0.0.1", port) and _answers("127.0.0.3", port)
        assert not _answers("127.0.0.2", port)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.2", port)) != 0     # refused: nothing listens there


def test_the_procfile_web_process_listens_on_the_bind_addresses_too(tmp_path):
    # The Procfile starts gunicorn without --bind: explorer/gunicorn_conf.py binds the configuration's addresses
    with live_server(tmp_path) as first, http_process(
            tmp_path, config={**first.config, "HttpBindAddresses": ["127.0.0.1", "127.0.0.3"]},
            database_url=first.database_url, bind=False) as web:
        port = int(web.url.rsplit(":", 1)[1])
        assert _answers("127.0.0.1", port) and _answers("127.0.0.3", port)
        assert not _answers("127.0.0.2", port)
