"""The HTTP worker (explorer.http_worker): a thread that answered a kept-alive connection waits a little for its
next request, but gives the connection back as soon as another one waits for a thread."""

from __future__ import annotations

import http.client
import os
import threading
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


def _workers(server) -> list[int]:
    """The gunicorn worker processes of a live server (children of its gunicorn master)."""
    from bench.servers import process_tree

    def cmdline(pid: int) -> str:
        try:
            return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            return ""

    def parent(pid: int) -> int:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

    return [pid for pid in process_tree(server.process.pid)
            if "gunicorn" in cmdline(pid) and "gunicorn" in cmdline(parent(pid))]


def _serving_worker(workers: list[int], server_port: int, client_port: int) -> int | None:
    """The worker holding the server side of the connection from ``client_port`` (/proc/net/tcp, then fds)."""
    inode = None
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                pass
    return None


def test_connections_opened_at_once_are_shared_out_over_the_workers(tmp_path, monkeypatch):
    """Four clients uploading at once: each kept-alive connection stays with the worker that accepted it, so
    two on one worker share its interpreter while another worker idles."""
    monkeypatch.setenv("LIVE_WORKERS", "4")
    with live_server(tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while len(workers := _workers(server)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)       # the HTTP port answers once the first worker is up; the others follow
        assert len(workers) == 4
        time.sleep(1)             # each in its loop (a worker still starting counts as idle for up to 20 ms)
        for attempt in range(3):
            connections = [_connection(server) for _ in range(4)]
            threads = [threading.Thread(target=lambda c=c: _get(c, "/system")) for c in connections]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            serving = [_serving_worker(workers, port, c.sock.getsockname()[1]) for c in connections]
            assert None not in serving and len(set(serving)) == 4, (attempt, serving)
            for connection in connections:
                connection.close()
            time.sleep(0.3)        # the workers see the connections closed (their counts go back to 0)
