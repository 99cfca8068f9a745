"""Real processes for the scale-out tests: a Redis server, and an HTTP-only process started as the Procfile's
``web`` line starts it (gunicorn with explorer.gunicorn_conf), beside a live server or alone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.live import ROOT, free_port
from tests.samples import missing


@contextlib.contextmanager
def redis_server(tmp: Path, *, port: int | None = None) -> Iterator[str]:
    """A throwaway Redis on a free port (no persistence); yields its URL; stopped by its own pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        # CI (REQUIRE_SAMPLES=1, .ci/run installs it) fails instead: a missing Redis cannot pass as green.
        missing("redis-server is not installed (apt-get install -y redis-server)")
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--appendonly", "no", "--dir", str(tmp)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.time() + 10
        while True:
            try:
                redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class HttpProcess:
    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url, self.process, self.log = url, process, log


@contextlib.contextmanager
def http_process(tmp: Path, *, config: dict, database_url: str, env: dict | None = None,
                 ready_path: str = "/system", bind: bool = True) -> Iterator[HttpProcess]:
    """gunicorn alone (no migrate, no jobs, no DICOM) on the given configuration and database. ``bind``
    False: no --bind, as the Procfile's web line (the configuration's HttpBindAddresses then apply)."""
    config = {**config, "HttpPort": free_port()}
    cfg_path = tmp / f"orthanc-{config['HttpPort']}.json"
    cfg_path.write_text(json.dumps(config))
    log = tmp / f"http-{config['HttpPort']}.log"
    full_env = {**os.environ, "DATABASE_URL": database_url, "ORTHANC_CONFIG": str(cfg_path), **(env or {})}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "explorer.wsgi:application", "-c", "python:explorer.gunicorn_conf",
             *(["--bind", f"127.0.0.1:{config['HttpPort']}"] if bind else []), "--workers", "2", "--preload"],
            cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{config['HttpPort']}"
    try:
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"http process exited: {log.read_text()[-3000:]}")
            try:
                requests.get(url + ready_path, timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield HttpProcess(url, process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
