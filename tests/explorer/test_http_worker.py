"""The HTTP worker (explorer.http_worker): a thread that answered a kept-alive connection waits a little for its
next request, but gives the connection back as soon as another one waits for a thread."""

from __future__ import annotations

import http.client
import time

import pytest

from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # One worker process (4 threads), and a linger far longer than any answer here: a thread that kept
    # lingering while another connection waits would show as a 20 s answer.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIVE_WORKERS", "1")
        patch.setenv("HTTP_LINGER_MS", "20000")
        with live_server(tmp_path_factory.mktemp("linger")) as srv:
            yield srv


def _connection(server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_requests_in_a_row_on_one_connection(server):
    conn = _connection(server)
    try:
        for _ in range(50):
            status, body = _get(conn, "/system")
            assert status == 200 and b'"ApiVersion"' in body
        status, _body = _get(conn, "/nope")
        assert status == 404
        assert _get(conn, "/patients") == (200, b"[]")
    finally:
        conn.close()


def test_a_lingering_thread_gives_way_to_another_connection(server):
    # Every thread of the worker answers a connection, then lingers on it
    held = [_connection(server) for _ in range(4)]
    try:
        for conn in held:
            assert _get(conn, "/system")[0] == 200
        other = _connection(server)
        try:
            start = time.monotonic()
            assert _get(other, "/system")[0] == 200
            assert time.monotonic() - start < 5
        finally:
            other.close()
        # The held connections are still served
        for conn in held:
            assert _get(conn, "/patients") == (200, b"[]")
    finally:
        for conn in held:
            conn.close()
