"""Find and list on big archives: ours on SQLite and PostgreSQL, real Orthanc 1.10.1 on the same data.

    .venv/bin/python bench/find.py --sizes 10000,100000                  # SQLite, PostgreSQL, Orthanc
    .venv/bin/python bench/find.py --sizes 100000 --backends sqlite --no-orthanc --runs 10
    .venv/bin/python bench/find.py --table                                # scaling table of saved results

Archives are built once and kept in ``--data`` (default /tmp/find-bench): ``sqlite-N/`` and ``postgres-N/``
(database ``explorer_find_N``) are filled by ``manage.py populate --count N --seed S`` (the real ingest
path), ``orthanc-N/`` by uploading the same files to real Orthanc over REST (``--orthanc-budget`` seconds
per run at most; an interrupted upload goes on at the next run, and the table says how far it got).
Every query runs ``--runs`` times over HTTP, one keep-alive connection, after one warm-up; the figures are
the client's wall time. Results go to ``--data``/results.json, so the scaling table grows run after run.

Queries: Limit 100 on the wildcard, range, Modality and label finds (without it a find returns 20-50% of a
level, and the time is the size of the answer, not the index). count-resources and labels are 1.12 only,
so Orthanc 1.10.1 has no figure for them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from servers import PROJECT, PYTHON, Server, orthanc_server, ours_server  # noqa: E402

from archive.populate import Shape, instance_bytes, patient_info, study_info  # noqa: E402

DATE_RANGE = "20150101-20151231"
GOAL_EXACT_MS, GOAL_RANGE_MS = 20.0, 150.0


@dataclass(frozen=True)
class Query:
    name: str
    goal_ms: float
    orthanc: bool  # Orthanc 1.10.1 answers it
    compare: bool  # the full answer is defined (no Limit): ours and Orthanc must agree


QUERIES = [
    Query("find study PatientID=", GOAL_EXACT_MS, True, True),
    Query("find study StudyInstanceUID=", GOAL_EXACT_MS, True, True),
    Query("find study PatientName=*SMITH* L100", GOAL_RANGE_MS, True, False),
    Query("find study StudyDate=range L100", GOAL_RANGE_MS, True, False),
    Query("find series Modality=MR L100", GOAL_EXACT_MS, True, False),
    Query("find study label=teaching L100", GOAL_EXACT_MS, False, False),
    Query("count studies StudyDate=range", GOAL_RANGE_MS, False, True),
    # Which studies come after S/2 depends on the order of ingestion (parallel workers): count only.
    Query("GET /studies?since=S/2&limit=100", GOAL_EXACT_MS, True, False),
    Query("GET /statistics", GOAL_EXACT_MS, True, False),
]


def requests_for(query: Query, shape: Shape, seed: int, runs: int) -> list[tuple[str, str, dict | None]]:
    """(method, path, body) of each run; exact matches pick a different resource each run (same for all
    servers), so no run is answered from a cache warmed by the previous one."""
    rng = random.Random(f"{seed}:{query.name}")
    out: list[tuple[str, str, dict | None]] = []
    for _ in range(runs + 1):  # + the warm-up
        if query.name.startswith("find study PatientID"):
            pid = patient_info(seed, rng.randrange(shape.patients)).patient_id
            out.append(("POST", "/tools/find", {"Level": "Study", "Query": {"PatientID": pid}}))
        elif query.name.startswith("find study StudyInstanceUID"):
            uid = study_info(seed, rng.randrange(shape.studies)).uid
            out.append(("POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": uid}}))
        elif "SMITH" in query.name:
            out.append(("POST", "/tools/find", {"Level": "Study", "Query": {"PatientName": "*SMITH*"},
                                                "Limit": 100}))
        elif query.name.startswith("find study StudyDate"):
            out.append(("POST", "/tools/find", {"Level": "Study", "Query": {"StudyDate": DATE_RANGE},
                                                "Limit": 100}))
        elif "Modality" in query.name:
            out.append(("POST", "/tools/find", {"Level": "Series", "Query": {"Modality": "MR"}, "Limit": 100}))
        elif "label" in query.name:
            out.append(("POST", "/tools/find", {"Level": "Study", "Query": {}, "Labels": ["teaching"],
                                                "Limit": 100}))
        elif query.name.startswith("count"):
            out.append(("POST", "/tools/count-resources", {"Level": "Study", "Query": {"StudyDate": DATE_RANGE}}))
        elif "since" in query.name:
            out.append(("GET", f"/studies?since={shape.studies // 2}&limit=100", None))
        else:
            out.append(("GET", "/statistics", None))
    return out


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


def measure(url: str, shape: Shape, seed: int, runs: int, *, orthanc: bool) -> dict[str, dict]:
    """p50/p95 (ms) and the first answer of every query the server supports."""
    client = Client(url)
    out: dict[str, dict] = {}
    try:
        for query in QUERIES:
            if orthanc and not query.orthanc:
                continue
            times: list[float] = []
            first: object = None
            for i, (method, path, body) in enumerate(requests_for(query, shape, seed, runs)):
                t = time.perf_counter()
                status, raw = client.call(method, path, body)
                elapsed = time.perf_counter() - t
                if status != 200:
                    raise RuntimeError(f"{query.name}: HTTP {status}: {raw[:300]!r}")
                if i == 1:
                    first = json.loads(raw)
                if i:  # the first request is the warm-up
                    times.append(elapsed * 1000)
            q = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
            out[query.name] = {"p50": q[49], "p95": q[94], "answer": first}
    finally:
        client.close()
    return out


def _run(cmd: list[str], env: dict) -> None:
    print("  $ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=PROJECT, env=env, check=True)


def _marker(folder: Path) -> dict:
    try:
        return json.loads((folder / "populated.json").read_text())
    except (OSError, ValueError):
        return {}


def ensure_ours(folder: Path, database_url: str, count: int, seed: int, workers: int) -> None:
    """Populate the archive in ``folder`` (and ``database_url``) unless a previous run did."""
    if _marker(folder) == {"count": count, "seed": seed}:
        print(f"  reusing {folder} ({count} instances)", flush=True)
        return
    (folder / "storage").mkdir(parents=True, exist_ok=True)
    (folder / "index").mkdir(exist_ok=True)
    cfg = folder / "populate.json"
    cfg.write_text(json.dumps({"StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
                               "SyncStorageArea": False}))  # a bench archive: crash safety is not the point
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("ORTHANC_CONFIG", None)
    _run([str(PYTHON), "manage.py", "migrate", "--noinput", "-v0", "--config", str(cfg)], env)
    _run([str(PYTHON), "manage.py", "populate", "--config", str(cfg), "--count", str(count), "--workers",
          str(workers), "--seed", str(seed)], env)
    (folder / "populated.json").write_text(json.dumps({"count": count, "seed": seed}))


def postgres_database(base_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``base_url``, created if missing."""
    import psycopg

    with psycopg.connect(base_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name


def orthanc_upload(url: str, folder: Path, shape: Shape, seed: int, budget: float, clients: int = 4) -> int:
    """Upload instances ``[reached, N)`` to Orthanc for at most ``budget`` seconds; returns how many of the
    first instances are stored (the prefix, kept in ``folder``/populated.json for the next run)."""
    start_at = _marker(folder).get("uploaded", 0) if _marker(folder).get("seed") == seed else 0
    if start_at >= shape.instances:
        return start_at
    done = [False] * shape.instances
    for i in range(start_at):
        done[i] = True
    lock, deadline = threading.Lock(), time.monotonic() + budget
    counter = iter(range(start_at, shape.instances))
    errors: list[str] = []

    def worker() -> None:
        client = Client(url)
        try:
            while time.monotonic() < deadline and not errors:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                data = instance_bytes(shape=shape, seed=seed, index=i)
                client.conn.request("POST", "/instances", body=data, headers={"Content-Type": "application/dicom"})
                resp = client.conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(f"#{i}: HTTP {resp.status}")
                    return
                done[i] = True
        finally:
            client.close()

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        for th in threads:
            th.join(timeout=10)
        n = sum(done) - start_at
        print(f"    orthanc upload: {start_at + n}/{shape.instances}, {n / (time.perf_counter() - t):.0f}/s",
              flush=True)
    if errors:
        print(f"  orthanc upload errors: {errors[:3]}", flush=True)
    reached = done.index(False) if False in done else shape.instances
    (folder / "populated.json").write_text(json.dumps({"seed": seed, "uploaded": reached}))
    return reached


def fmt(cell: dict | None) -> str:
    return f"{cell['p50']:7.1f} {cell['p95']:7.1f}" if cell else f"{'-':>7} {'-':>7}"


def print_size_table(size: int, results: dict[str, dict], orthanc_reached: int | None) -> None:
    backends = [b for b in ("sqlite", "postgres", "orthanc") if b in results]
    shape = Shape.for_count(size)
    print(f"\n{size} instances ({shape.patients} patients, {shape.studies} studies, {shape.series} series); "
          "ms, p50 p95 over the runs")
    if orthanc_reached is not None and orthanc_reached < size:
        print(f"  orthanc holds only the first {orthanc_reached} instances (upload budget): its figures are "
              "for that smaller archive")
    head = f"{'query':<36} {'goal':>5} " + " ".join(f"{b + ' p50':>11} {'p95':>7}" for b in backends)
    if "orthanc" in results:
        head += "  " + " ".join(f"{'orth/' + b[:2]:>7}" for b in backends if b != "orthanc")
    print(head)
    print("-" * len(head))
    for q in QUERIES:
        row = f"{q.name:<36} {q.goal_ms:>5.0f} " + " ".join(f"{fmt(results[b].get(q.name)):>19}"
                                                            for b in backends)
        if "orthanc" in results:
            o = results["orthanc"].get(q.name)
            for b in backends:
                if b != "orthanc":
                    mine = results[b].get(q.name)
                    row += f"  {o['p50'] / mine['p50']:>6.1f}x" if o and mine else f"  {'-':>7}"
        over = [b for b in backends if b != "orthanc" and results[b].get(q.name)
                and results[b][q.name]["p50"] > q.goal_ms]
        print(row + (f"  over goal: {','.join(over)}" if over else ""))
    print("  orth/xx: Orthanc p50 / ours p50 (goal >= 2x)")


def check_answers(results: dict[str, dict], orthanc_complete: bool) -> None:
    """Ours on both backends must give the same answer; Orthanc too when it holds the whole archive."""
    names = [b for b in ("sqlite", "postgres") if b in results] + (["orthanc"] if orthanc_complete
                                                                   and "orthanc" in results else [])
    for q in QUERIES:
        answers = {b: results[b][q.name]["answer"] for b in names if q.name in results[b]}
        if len(answers) < 2:
            continue
        if q.compare:
            norm = {b: sorted(a) if isinstance(a, list) else a for b, a in answers.items()}
        else:  # Limit: which 100 is up to the server; the number of answers is not
            norm = {b: len(a) if isinstance(a, list) else None for b, a in answers.items()}
        if len({json.dumps(v, sort_keys=True) for v in norm.values()}) > 1:
            print(f"  ANSWERS DIFFER for {q.name}: " + ", ".join(f"{b}={str(v)[:80]}" for b, v in norm.items()))


def print_scaling(saved: dict) -> None:
    sizes = sorted({int(k.split(":")[0]) for k in saved})
    columns = [(s, b) for s in sizes for b in ("sqlite", "postgres", "orthanc") if f"{s}:{b}" in saved]
    if not columns:
        return
    print("\nScaling: p50 ms by archive size (instances) and backend")
    head = f"{'query':<36} " + " ".join(f"{f'{s // 1000}k ' + b[:2]:>9}" for s, b in columns)
    print(head)
    print("-" * len(head))
    for q in QUERIES:
        cells = []
        for s, b in columns:
            cell = saved[f"{s}:{b}"]["figures"].get(q.name)
            cells.append(f"{cell['p50']:9.1f}" if cell else f"{'-':>9}")
        print(f"{q.name:<36} " + " ".join(cells))
    partial = [f"{s}: {saved[f'{s}:orthanc']['reached']}" for s, b in columns
               if b == "orthanc" and saved[f"{s}:orthanc"].get("reached", s) < s]
    if partial:
        print("  orthanc archives not complete (size: instances held): " + ", ".join(partial))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated instance counts")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--no-orthanc", action="store_true")
    ap.add_argument("--orthanc-max", type=int, default=100000, help="largest size uploaded to Orthanc")
    ap.add_argument("--orthanc-budget", type=float, default=1200, help="seconds of Orthanc upload per size")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="populate processes")
    ap.add_argument("--data", type=Path, default=Path("/tmp/find-bench"))
    ap.add_argument("--pg-url", default=os.environ.get("PG_URL", "postgres://explorer:explorer@127.0.0.1:5432/explorer"))
    ap.add_argument("--table", action="store_true", help="only print the saved scaling table")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)

    args.data.mkdir(parents=True, exist_ok=True)
    saved_path = args.data / "results.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    if args.table:
        print_scaling(saved)
        return 0
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")
    try:
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            shape = Shape.for_count(size)
            results: dict[str, dict] = {}
            reached: int | None = None
            for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
                folder = args.data / f"{backend}-{size}"
                if backend == "sqlite":
                    db = f"sqlite:///{folder}/index/index.sqlite3"
                else:
                    db = postgres_database(args.pg_url, f"explorer_find_{size}")
                print(f"\n[{size} {backend}]", flush=True)
                ensure_ours(folder, db, size, args.seed, args.workers)
                with ours_server(workdir=folder, env={"DATABASE_URL": db}) as srv:
                    results[backend] = measure(srv, shape, args.seed, args.runs, orthanc=False)
                saved[f"{size}:{backend}"] = {"figures": _figures(results[backend])}
            if not args.no_orthanc and size <= args.orthanc_max:
                folder = args.data / f"orthanc-{size}"
                print(f"\n[{size} orthanc]", flush=True)
                with orthanc_server(workdir=folder, extra={"SyncStorageArea": False}) as srv:
                    reached = orthanc_upload(srv, folder, shape, args.seed, args.orthanc_budget)
                    results["orthanc"] = measure(srv, shape, args.seed, args.runs, orthanc=True)
                    _orthanc_version(srv)
                saved[f"{size}:orthanc"] = {"figures": _figures(results["orthanc"]), "reached": reached}
            saved_path.write_text(json.dumps(saved, indent=1))
            print_size_table(size, results, reached)
            check_answers(results, orthanc_complete=reached == size)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print_scaling(saved)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    return 0


def _figures(result: dict[str, dict]) -> dict[str, dict]:
    return {name: {"p50": r["p50"], "p95": r["p95"]} for name, r in result.items()}


def _orthanc_version(srv: Server) -> None:
    client = Client(srv)
    try:
        _, raw = client.call("GET", "/system")
        print(f"  Orthanc {json.loads(raw).get('Version')}", flush=True)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
