"""Scale-out figures: PostgreSQL + an S3-compatible server + several HTTP processes, against the embedded default.

    .venv/bin/python bench/scale.py                                   # everything (about 10 minutes)
    .venv/bin/python bench/scale.py --count 400 --mixed-seconds 60    # a quicker try
    .venv/bin/python bench/scale.py --skip-ingest                     # the mixed load only

1. REST ingest: ``--count`` synthetic CT instances (bench/synth.py, 0.53 MB) with ``--clients`` keep-alive
   clients (8), into a fresh archive for each number of HTTP processes in ``--processes`` (1,2,4: gunicorn
   workers of ``manage.py serve``), on PostgreSQL (a fresh database) + moto's S3 server (a fresh bucket),
   and on the embedded default (SQLite + files on disk) with as many processes. Prints instances/s, the
   speed-up over one process, the ratio to the embedded default and the server CPU per instance (the
   whole process tree, plus the S3 server's own CPU).
2. Mixed load for ``--mixed-seconds`` (300) on PostgreSQL + S3 with the largest process count: ``--clients``
   clients doing 70% reads (instance tags, previews), 20% finds (/tools/find at the study level) and 10%
   uploads, on an archive preloaded with ``--preload`` instances. Prints requests/s, p50/p99 latency per kind,
   the errors, then checks that nothing was lost: every upload answered Success is in the index, and the
   index and the bucket hold the same attachments.
3. The per-instance costs the paper estimate in docs/scale-estimate.md is made from: PostgreSQL bytes per
   instance (tables and indexes), bucket bytes per instance, CPU ms per request of each kind.

Needs PostgreSQL (scripts/postgres-start) and moto (``moto[server]``, a dev dependency). The machine is
shared: compare figures of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ingest import upload  # noqa: E402
from servers import PROJECT, KeepAliveClient, free_port, ours_server, tree_cpu_seconds  # noqa: E402
from synth import generate_count  # noqa: E402

S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}


# -- the parts ------------------------------------------------------------------------------------------------

def pg_url() -> str:
    """The cluster of scripts/postgres-start (role explorer, superuser): its port from pg_lsclusters."""
    if os.environ.get("PG_URL"):
        return os.environ["PG_URL"]
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
    port = out[2] if len(out) > 2 else "5432"
    return f"postgres://explorer:explorer@127.0.0.1:{port}/explorer"


@contextmanager
def pg_database(name: str):
    """A fresh database on the cluster, dropped at the end."""
    import psycopg

    base = pg_url()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def s3_server():
    """moto's S3 server on loopback (in memory) with one bucket: (endpoint, bucket, pid)."""
    import boto3

    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
        client.create_bucket(Bucket="bench")
        yield endpoint, "bench", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _boto_credentials() -> dict:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


def bucket_objects(endpoint: str, bucket: str) -> tuple[int, int, int]:
    """(attachments, their bytes, staging markers) in the bucket."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    count = size = markers = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if obj["Key"].startswith("jobs/"):
                continue   # job outputs (archives), not attachments
            if "incoming" in obj["Key"]:
                markers += 1
            else:
                count += 1
                size += obj["Size"]
    return count, size, markers


@contextmanager
def topology(kind: str, processes: int, *, tag: str):
    """Our server with ``processes`` HTTP processes (no DICOM server, no job workers): ``kind`` "embedded"
    (SQLite + local files) or "scale" (PostgreSQL + S3). Yields (server, s3 endpoint or None, s3 pid)."""
    extra = {"DicomServerEnabled": False}
    env = {"HTTP_WORKERS": str(processes)}
    if kind == "embedded":
        with ours_server(extra=extra, env=env) as srv:
            yield srv, None, None
        return
    with pg_database(f"bench_scale_{tag}") as url, s3_server() as (endpoint, bucket, s3_pid):
        env.update(DATABASE_URL=url, STORAGE_BACKEND="s3", S3_BUCKET=bucket, S3_ENDPOINT_URL=endpoint, **S3_ENV)
        with ours_server(extra=extra, env=env) as srv:
            yield srv, endpoint, s3_pid


def _cpu(pid: int | None) -> float:
    return tree_cpu_seconds(pid) if pid else 0.0


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (the bench's cluster: keep it to itself)."""
    from servers import CLOCK_TICKS

    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            if name.startswith("postgres"):
                fields = stat.rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


# -- 1. ingest ------------------------------------------------------------------------------------------------

def ingest_runs(args) -> None:
    instances = list(generate_count(args.count, seed=11, prefix="1.2.826.0.1.3680043.10.1"))
    warmup = list(generate_count(40, seed=12, prefix="1.2.826.0.1.3680043.10.2"))
    print(f"\n1. REST ingest: {args.count} CT instances of 0.53 MB, {args.clients} clients")
    print(f"{'archive':<22} {'procs':>5} {'inst/s':>7} {'x 1 proc':>8} {'vs embedded':>11} "
          f"{'server cpu ms/inst':>18} {'s3 cpu ms/inst':>14} {'errors':>6}")
    rates: dict[tuple[str, int], float] = {}
    for processes in args.processes:
        for kind in ("embedded", "scale"):
            with topology(kind, processes, tag=f"ingest{processes}") as (srv, _endpoint, s3_pid):
                upload(srv, warmup, min(args.clients, len(warmup)))
                cpu0, s30 = srv.cpu_seconds(), _cpu(s3_pid)
                seconds, done, _lat, errors = upload(srv, instances, args.clients)
                cpu, s3cpu = srv.cpu_seconds() - cpu0, _cpu(s3_pid) - s30
            rate = len(done) / seconds if seconds else 0.0
            rates[(kind, processes)] = rate
            base = rates.get((kind, args.processes[0]))
            versus = f"{rate / rates[('embedded', processes)]:.2f}" if kind == "scale" else ""
            name = "SQLite + disk" if kind == "embedded" else "PostgreSQL + S3 (moto)"
            print(f"{name:<22} {processes:>5} {rate:>7.0f} {rate / base:>8.2f} {versus:>11} "
                  f"{cpu * 1000 / max(1, len(done)):>18.2f} {s3cpu * 1000 / max(1, len(done)):>14.2f} "
                  f"{len(errors):>6}", flush=True)
            for e in errors[:3]:
                print("   ", e[:300])


# -- 2. mixed load --------------------------------------------------------------------------------------------

class Mix:
    """One client's loop of weighted requests; shared results under a lock."""

    def __init__(self, url: str, ids: list[str], patients: list[str], uploads: list, deadline: float) -> None:
        self.url, self.ids, self.patients, self.uploads, self.deadline = url, ids, patients, uploads, deadline
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"tags": [], "preview": [], "find": [], "upload": []}
        self.errors: list[str] = []
        self.stored: list[str] = []
        self.next_upload = 0

    def _upload(self) -> bytes | None:
        with self.lock:
            if self.next_upload >= len(self.uploads):
                return None
            inst = self.uploads[self.next_upload]
            self.next_upload += 1
        return inst.to_bytes()

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        client = KeepAliveClient(self.url, timeout=60)
        while time.time() < self.deadline:
            roll = rng.random()
            try:
                if roll < 0.10:
                    body = self._upload()
                    if body is None:
                        continue
                    kind = "upload"
                    status, _ct, data, seconds = client.call("POST", "/instances", body=body,
                                                             headers={"Content-Type": "application/dicom"})
                    if status == 200:
                        answer = json.loads(data)
                        with self.lock:
                            self.stored.append(answer["ID"])
                            self.ids.append(answer["ID"])
                elif roll < 0.30:
                    kind = "find"
                    query = {"Level": "Study", "Expand": True, "Query": {"PatientID": rng.choice(self.patients)}}
                    status, _ct, data, seconds = client.call("POST", "/tools/find", body=json.dumps(query).encode())
                else:
                    kind = "tags" if roll < 0.65 else "preview"
                    target = rng.choice(self.ids)
                    path = f"/instances/{target}/tags?simplify" if kind == "tags" else f"/instances/{target}/preview"
                    status, _ct, data, seconds = client.call("GET", path)
            except Exception as exc:  # noqa: BLE001 - counted, the load goes on
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                if status != 200:
                    self.errors.append(f"{kind}: HTTP {status} {data[:200]!r}")
                else:
                    self.latency[kind].append(seconds)
        client.close()


def mixed_run(args) -> None:
    processes = max(args.processes)
    preload = list(generate_count(args.preload, seed=21, prefix="1.2.826.0.1.3680043.10.3", series_per_study=2))
    uploads = list(generate_count(args.mixed_uploads, seed=22, prefix="1.2.826.0.1.3680043.10.4"))
    print(f"\n2. Mixed load on PostgreSQL + S3 (moto), {processes} HTTP processes, {args.clients} clients, "
          f"{args.mixed_seconds} s, archive preloaded with {args.preload} instances")
    with topology("scale", processes, tag="mixed") as (srv, endpoint, s3_pid):
        _s, _done, _lat, errors = upload(srv, preload, args.clients)
        if errors:
            raise RuntimeError(f"preload failed: {errors[:3]}")
        client = KeepAliveClient(srv)
        ids = json.loads(client.call("GET", "/instances")[2])
        patients = sorted({json.loads(client.call("GET", f"/patients/{p}")[2])["MainDicomTags"]["PatientID"]
                           for p in json.loads(client.call("GET", "/patients")[2])})
        mix = Mix(srv, ids, patients, uploads, time.time() + args.mixed_seconds)
        cpu0, s30, pg0, t0 = srv.cpu_seconds(), _cpu(s3_pid), postgres_cpu(), time.time()
        threads = [threading.Thread(target=mix.run, args=(k,), daemon=True) for k in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.time() - t0
        cpu, s3cpu, pgcpu = srv.cpu_seconds() - cpu0, _cpu(s3_pid) - s30, postgres_cpu() - pg0
        total = sum(len(v) for v in mix.latency.values())
        print(f"{'kind':<8} {'requests':>8} {'share':>6} {'p50 ms':>7} {'p99 ms':>7}")
        for kind, values in mix.latency.items():
            if values:
                values.sort()
                p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
                print(f"{kind:<8} {len(values):>8} {len(values) / total:>6.0%} {statistics.median(values) * 1000:>7.1f} "
                      f"{p99 * 1000:>7.1f}")
        print(f"all      {total:>8} requests, {total / elapsed:.0f} requests/s, {len(mix.errors)} errors, "
              f"CPU per request: our processes {cpu * 1000 / max(1, total):.2f} ms, PostgreSQL "
              f"{pgcpu * 1000 / max(1, total):.2f} ms, S3 server {s3cpu * 1000 / max(1, total):.2f} ms")
        for e in mix.errors[:5]:
            print("   ", e)

        # Nothing lost: every Success is in the index; the index and the bucket agree.
        missing = [i for i in mix.stored if client.call("GET", f"/instances/{i}")[0] != 200]
        stats = json.loads(client.call("GET", "/statistics")[2])
        objects, object_bytes, markers = bucket_objects(endpoint, "bench")
        print(f"check: {len(mix.stored)} uploads answered Success, {len(missing)} missing from the index; "
              f"index {stats['CountInstances']} instances ({stats['TotalDiskSize']} bytes), bucket {objects} "
              f"objects ({object_bytes} bytes), {markers} staging markers left -> "
              f"{'CONSISTENT' if not missing and objects == stats['CountInstances'] and markers == 0 else 'MISMATCH'}")

        # 3. per-instance costs for the paper estimate
        import psycopg

        url = pg_url().rsplit("/", 1)[0] + "/bench_scale_mixed"
        with psycopg.connect(url) as conn:
            db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            rows = conn.execute(
                "SELECT relname, pg_relation_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relkind = 'r' AND nspname = 'public' "
                "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 6").fetchall()
        n = stats["CountInstances"]
        print(f"\n3. Per-instance costs ({n} instances): PostgreSQL {db_bytes / n / 1024:.1f} KB/instance "
              f"(whole database, {db_bytes / 1e6:.0f} MB), bucket {object_bytes / max(1, objects) / 1e6:.2f} MB/instance")
        for name, table, index in rows:
            print(f"   {name:<28} table {table / n:>7.0f} B/inst  indexes {index / n:>7.0f} B/inst")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    ap.add_argument("--mixed-seconds", type=int, default=300)
    ap.add_argument("--preload", type=int, default=400)
    ap.add_argument("--mixed-uploads", type=int, default=10000)  # enough for 10% of 5 minutes
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-mixed", action="store_true")
    args = ap.parse_args()
    if shutil.which("pg_lsclusters") is None and not os.environ.get("PG_URL"):
        print("PostgreSQL is needed: apt-get install -y postgresql; bash scripts/postgres-start", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    if load > 1.0:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")
    print(f"machine: {os.cpu_count()} CPUs; project {PROJECT}; temp {tempfile.gettempdir()}")
    if not args.skip_ingest:
        ingest_runs(args)
    if not args.skip_mixed:
        mixed_run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
