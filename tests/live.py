"""A real server process for end-to-end tests: ``manage.py serve`` on spare ports, as a user starts it.

On PostgreSQL (DATABASE_URL=postgres://...) each server gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range (32768-60999 here): a port the kernel hands out
    for binding port 0 may be taken as the local port of any outgoing connection (a database or HTTP client
    of a parallel test) before the server binds it (seen in CI: "Address already in use")."""
    low, high = 20000, 32000
    try:
        low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, low_ephemeral - 1)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randint(low, high)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            _given.add(port)
            return port
    raise RuntimeError("no free port")


# Ports handed out by this process: none twice, as the port of a server not started yet is still free (seen in
# CI: a live server got the same port for HTTP and DICOM, and its HTTP server could not bind)
_given: set[int] = set()


@contextlib.contextmanager
def _database(tmp: Path) -> Iterator[str]:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        yield f"sqlite:///{tmp / 'index' / 'index.sqlite3'}"
        return
    import psycopg

    name = f"live_{uuid.uuid4().hex[:12]}"
    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LiveServer:
    def __init__(self, base_url: str, process: subprocess.Popen, tmp: Path, config: dict, database_url: str):
        self.url = base_url
        self.process = process
        self.tmp = tmp
        self.config = config
        self.database_url = database_url

    def upload(self, data: bytes) -> dict:
        """POST /instances of one file; its answer (ID, ParentSeries, ...). Raises on an error status."""
        import requests

        answer = requests.post(self.url + "/instances", data=data, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def kill(self) -> None:
        """SIGKILL the whole process group: the server, its workers and anything they run."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _dicom_ready(config: dict) -> bool:
    """The DICOM server (a process of its own, started beside the HTTP one) accepts associations."""
    if not config.get("DicomServerEnabled", True):
        return True
    try:
        socket.create_connection(("127.0.0.1", config["DicomPort"]), timeout=1).close()
        return True
    except OSError:
        return False


def _start(tmp: Path, config: dict, database_url: str) -> LiveServer:
    cfg_path = tmp / "orthanc.json"
    cfg_path.write_text(json.dumps(config))
    env = {**os.environ, "DATABASE_URL": database_url, "HTTP_WORKERS": os.environ.get("LIVE_WORKERS", "2"),
           "DICOM_PROCESSES": os.environ.get("DICOM_PROCESSES", "1")}
    log = open(tmp / "server.log", "ab")
    process = subprocess.Popen([sys.executable, "manage.py", "serve", "--config", str(cfg_path)], cwd=ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{config['HttpPort']}"
    auth = None
    if config.get("AuthenticationEnabled") and config.get("RegisteredUsers"):
        auth = next(iter(config["RegisteredUsers"].items()))
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if requests.get(base + "/patients", timeout=1, auth=auth).status_code == 200 and _dicom_ready(config):
                return LiveServer(base, process, tmp, config, database_url)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"server did not start: {(tmp / 'server.log').read_text()[-3000:]}")


@contextlib.contextmanager
def live_server(tmp: Path, **options) -> Iterator[LiveServer]:
    config = {"Name": "live", "HttpPort": free_port(), "DicomPort": free_port(),
              "StorageDirectory": str(tmp / "storage"), "IndexDirectory": str(tmp / "index"),
              "RemoteAccessAllowed": True, "AuthenticationEnabled": False, **options}
    with _database(tmp) as database_url:
        server = _start(tmp, config, database_url)
        try:
            yield server
        except BaseException:
            # The server's own account of a failed test (pytest shows what went to stderr): a server that stopped
            # under the test said why only in its log, which pytest deletes after a few runs.
            sys.stderr.write(f"--- server.log (end) ---\n{(tmp / 'server.log').read_text(errors='replace')[-4000:]}\n")
            raise
        finally:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
                try:
                    server.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.process.pid, signal.SIGKILL)
                    server.process.wait(timeout=5)


def restart(server: LiveServer) -> LiveServer:
    """Start again on the same configuration and database (after a kill)."""
    return _start(server.tmp, server.config, server.database_url)
