"""A real S3-compatible server for tests: moto in server mode (``moto_server``), a process of its own on a
spare port, in memory. Tests talk to it over HTTP with boto3, exactly as they would to S3 or MinIO."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.live import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def storage_options(self, bucket: str, prefix: str = "", **extra) -> dict:
        """``STORAGES["dicom"]["OPTIONS"]`` for ``archive.storage_s3.S3DicomStorage`` on this server."""
        return {"bucket_name": bucket, "endpoint_url": self.endpoint_url, "location": prefix,
                "region_name": CREDENTIALS["AWS_DEFAULT_REGION"], "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"], **extra}


@contextlib.contextmanager
def s3_server(log: Path | None = None) -> Iterator[S3Server]:
    """Start ``moto_server`` on 127.0.0.1 and a spare port; stop it (its process group only) afterwards."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    out = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, **CREDENTIALS})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("moto_server exited at start")
            try:
                requests.get(url + "/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield S3Server(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        if log:
            out.close()
