"""Jobs engine bench: ZIP archives (synchronous, streamed, and asynchronous jobs) and a burst of small prioritized
jobs, ours against real Orthanc.

    .venv/bin/python bench/jobs.py                                   # both servers, ~5 minutes
    .venv/bin/python bench/jobs.py --instances 100 --runs 1 --small-jobs 40
    .venv/bin/python bench/jobs.py --no-orthanc --concurrent-jobs 4

Both servers run at the same time, with ``JobsHistorySize`` 1000 (Orthanc forgets finished jobs beyond it, 10
by default) and ``ConcurrentJobs`` ``--concurrent-jobs`` (2). The same synthetic files (bench/synth.py, 512x512
CT, ~0.53 MB each) are uploaded to both.

1. Archive of one study of ``--instances`` (500) instances, ``--runs`` (3) times each, requests alternating
   between the servers:
   - synchronous: ``GET /studies/{id}/archive`` read as it streams: time to first byte of the body (ms) and
     MB/s over the whole download (MB = 10^6 bytes of ZIP). Goals: first byte within 200 ms, MB/s >= Orthanc's.
   - asynchronous: ``POST /studies/{id}/archive`` ``{"Asynchronous": true}``, ``GET /jobs/{id}`` every
     ``--poll-ms`` (50) until Success (Failure is reported), then ``GET /jobs/{id}/archive``: seconds from the
     submission to the last byte, and MB/s. Goal: MB/s >= Orthanc's.
   Every ZIP must hold one entry per instance; the first of each kind is CRC-checked (``testzip``), and the
   entry names of both servers are compared (information: the layouts of Orthanc 1.10 and 1.12 differ).
2. ``--small-jobs`` (200) asynchronous archives of single-instance series submitted at once from
   ``--threads`` (4) threads, priority ``i % 10`` for the i-th job, on one server, then on the other. Every job
   must reach Success and its output must be a ZIP of one entry. Wall time: first CreationTime to last
   CompletionTime (server clock). Priority order: neither server tells when a job started, so a job's start is
   taken as the latest of its CreationTime, CompletionTime - EffectiveRuntime (Orthanc 1.10 counts the pending
   time in EffectiveRuntime) and the CompletionTime of the job ConcurrentJobs places earlier in completion order
   (a slot must free); two jobs of different priorities were "pending together" when both had been created
   ``--slack-ms`` (250) before the first of them started; an inversion is such a pair where the lower priority
   one completed before the higher one started (two jobs side by side in the slots may complete in either order:
   counted apart). With a priority queue the inversions stay at 0; the count and the completion order (the
   priorities, one digit a job) are printed, and the most jobs seen Running at once in ``GET /jobs?expand``
   (polled every ``--burst-poll-ms``), which should not exceed ConcurrentJobs.

3. Modification of the same study, ``--modify-runs`` (2) times per server, alternating: ``POST
   /studies/{id}/anonymize`` ``{}`` and ``POST /studies/{id}/modify`` ``{"Replace": {"StudyDescription": ...}}``,
   synchronous: seconds from the request to the answer (the job stores ``--instances`` new instances). Each
   answer must name a new study of ``--instances`` instances, deleted again before the next run (not timed).
   Goal: anonymization seconds ours / Orthanc <= 1.0. Orthanc 1.10.1 applies the 2021b profile, ours 2023b.

Then a table (figure, ours, Orthanc, ratio ours/Orthanc, goal met?) and the RSS of both servers. The exit status
is 1 when something failed on our server (an error answer, a wrong ZIP, a job failed, lost or stuck).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import io
import itertools
import json
import os
import signal
import statistics
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import KeepAliveClient, Server, orthanc_server, ours_server  # noqa: E402
from synth import SynthInstance, generate  # noqa: E402

FIRST_BYTE_GOAL_MS = 200.0
DONE = ("Success", "Failure")


# ---------------------------------------------------------------------------------------------- client


class Client(KeepAliveClient):
    """The shared keep-alive client, with JSON bodies and answers read as they arrive."""

    def fetch(self, method: str, path: str, body: dict | bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        status, _, data, _ = self.call(method, path, body=body, headers=headers)
        return status, data

    def json(self, method: str, path: str, body: dict | None = None):
        status, data = self.fetch(method, path, body)
        if status != 200:
            raise RequestFailed(f"{method} {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    def download(self, method: str, path: str, body: dict | None = None) -> Download:
        """The answer read as it arrives: seconds to the first byte of the body, to the last, and the body."""
        data = json.dumps(body).encode() if body is not None else None
        resp, t0 = self.exchange(lambda conn: conn.request(method, path, body=data))
        try:
            chunks = []
            first = None
            while True:
                chunk = resp.read1(1 << 20)
                if not chunk:
                    break
                if first is None:
                    first = time.perf_counter() - t0
                chunks.append(chunk)
            total = time.perf_counter() - t0
            if resp.will_close:
                self.close()
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        return Download(resp.status, resp.getheader("Content-Type", ""), first, total, b"".join(chunks))


class RequestFailed(Exception):
    pass


@dataclass
class Download:
    status: int
    content_type: str
    first_byte: float | None  # seconds
    seconds: float
    body: bytes


@dataclass
class Side:
    """One server under test, with what went wrong on it."""

    name: str
    srv: Server
    client: Client
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text)
        print(f"  ERROR {self.name}: {text}", flush=True)


# ---------------------------------------------------------------------------------------------- data


def one_study(count: int, seed: int) -> list[SynthInstance]:
    """``count`` instances of one study, in series of 100."""
    series = max(1, -(-count // 100))
    return list(itertools.islice(generate(patients=1, series_per_study=series, instances_per_series=100,
                                          seed=seed, prefix="ZIP"), count))


def single_instance_series(count: int, seed: int) -> list[SynthInstance]:
    return list(generate(patients=1, series_per_study=count, instances_per_series=1, seed=seed, prefix="JOBS"))


def upload_all(sides: list[Side], instances: list[SynthInstance], threads: int = 4) -> list[dict[str, dict]]:
    """Upload each instance to every server (4 threads, one connection per thread and server); per instance
    the answers of each server ({name: POST /instances answer})."""
    local = threading.local()
    opened: list[Client] = []

    def one(inst: SynthInstance) -> dict[str, dict]:
        clients = getattr(local, "clients", None)
        if clients is None:
            clients = local.clients = {s.name: Client(s.srv) for s in sides}
            opened.extend(clients.values())
        out = {}
        for side in sides:
            status, body = clients[side.name].fetch("POST", "/instances", inst.to_bytes(),
                                                   {"Content-Type": "application/dicom"})
            if status != 200:
                raise RequestFailed(f"{side.name}: upload: HTTP {status}: {body[:300]!r}\n{side.srv.log_tail(20)}")
            out[side.name] = json.loads(body)
        return out

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, instances))
    finally:
        for client in opened:
            client.close()


# ---------------------------------------------------------------------------------------------- archives


def zip_check(side: Side, what: str, body: bytes, expected: int, full: bool) -> list[str] | None:
    """The entry names, or None when the ZIP is wrong (reported)."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            names = z.namelist()
            if full:
                bad = z.testzip()
                if bad is not None:
                    side.error(f"{what}: CRC error in entry {bad}")
                    return None
    except zipfile.BadZipFile as exc:
        side.error(f"{what}: not a ZIP ({exc}), {len(body)} bytes: {body[:200]!r}")
        return None
    if len(names) != expected:
        side.error(f"{what}: {len(names)} entries in the ZIP, expected {expected}")
    return names


def sync_archive(side: Side, study: str, expected: int, check: bool) -> tuple[float, float, int, list | None]:
    """(first byte ms, MB/s, ZIP bytes, names or None)."""
    what = f"GET /studies/{study}/archive"
    d = side.client.download("GET", f"/studies/{study}/archive")
    if d.status != 200:
        side.error(f"{what}: HTTP {d.status}: {d.body[:300]!r}")
        return float("nan"), float("nan"), 0, None
    names = zip_check(side, what, d.body, expected, check)
    return (d.first_byte or d.seconds) * 1000, len(d.body) / 1e6 / d.seconds, len(d.body), names


def wait_job(side: Side, job_id: str, poll: float, timeout: float) -> dict | None:
    """Poll GET /jobs/{id} until Success or Failure; None (reported) on Failure or timeout."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = side.client.json("GET", f"/jobs/{job_id}")
        if job.get("State") == "Success":
            return job
        if job.get("State") == "Failure":
            side.error(f"job {job_id} failed: {job.get('ErrorCode')} {job.get('ErrorDescription')}: "
                       f"{job.get('ErrorDetails')}")
            return None
        time.sleep(poll)
    side.error(f"job {job_id} not finished after {timeout:.0f} s: State {job.get('State')}, "
               f"Progress {job.get('Progress')}")
    return None


def async_archive(side: Side, study: str, expected: int, check: bool, poll: float,
                  timeout: float) -> tuple[float, float, float, int, list | None]:
    """(total seconds, job seconds (submit to seen Success), MB/s, ZIP bytes, names or None)."""
    t0 = time.perf_counter()
    answer = side.client.json("POST", f"/studies/{study}/archive", {"Asynchronous": True})
    if set(answer) != {"ID", "Path"} or answer["Path"] != f"/jobs/{answer['ID']}":
        side.error(f"POST /studies/{study}/archive answered {answer}, expected {{ID, Path: /jobs/ID}}")
    job = wait_job(side, answer["ID"], poll, timeout)
    if job is None:
        return float("nan"), float("nan"), float("nan"), 0, None
    job_seconds = time.perf_counter() - t0
    what = f"GET /jobs/{answer['ID']}/archive"
    d = side.client.download("GET", f"/jobs/{answer['ID']}/archive")
    total = time.perf_counter() - t0
    if d.status != 200:
        side.error(f"{what}: HTTP {d.status}: {d.body[:300]!r}")
        return float("nan"), float("nan"), float("nan"), 0, None
    names = zip_check(side, what, d.body, expected, check)
    return total, job_seconds, len(d.body) / 1e6 / total, len(d.body), names


@dataclass
class ArchiveResult:
    first_byte_ms: list[float] = field(default_factory=list)
    sync_mbs: list[float] = field(default_factory=list)
    sync_bytes: int = 0
    async_seconds: list[float] = field(default_factory=list)
    async_job_seconds: list[float] = field(default_factory=list)
    async_mbs: list[float] = field(default_factory=list)
    async_bytes: int = 0
    names: dict[str, list[str]] = field(default_factory=dict)


def archive_bench(sides: list[Side], study: str, expected: int, runs: int, poll: float,
                  timeout: float) -> dict[str, ArchiveResult]:
    results = {s.name: ArchiveResult() for s in sides}
    for run in range(runs):
        # Alternate the order so neither server is always the first after the other's download.
        order = sides if run % 2 == 0 else sides[::-1]
        for side in order:
            r = results[side.name]
            try:
                ms, mbs, size, names = sync_archive(side, study, expected, check=run == 0)
            except (RequestFailed, OSError, http.client.HTTPException, ValueError) as exc:
                side.error(f"synchronous archive: {type(exc).__name__}: {exc}")
                ms, mbs, size, names = float("nan"), float("nan"), 0, None
            r.first_byte_ms.append(ms)
            r.sync_mbs.append(mbs)
            r.sync_bytes = size or r.sync_bytes
            if names is not None and run == 0:
                r.names["sync"] = names
            print(f"  run {run + 1} {side.name:8s} synchronous: first byte {ms:7.1f} ms, {mbs:6.1f} MB/s, "
                  f"ZIP {size / 1e6:.1f} MB", flush=True)
        for side in order:
            r = results[side.name]
            try:
                total, job_s, mbs, size, names = async_archive(side, study, expected, run == 0, poll, timeout)
            except (RequestFailed, OSError, http.client.HTTPException, ValueError) as exc:
                side.error(f"asynchronous archive: {type(exc).__name__}: {exc}")
                total = job_s = mbs = float("nan")
                size, names = 0, None
            r.async_seconds.append(total)
            r.async_job_seconds.append(job_s)
            r.async_mbs.append(mbs)
            r.async_bytes = size or r.async_bytes
            if names is not None and run == 0:
                r.names["async"] = names
            print(f"  run {run + 1} {side.name:8s} asynchronous: {total:6.2f} s in all ({job_s:6.2f} s to "
                  f"Success), {mbs:6.1f} MB/s, ZIP {size / 1e6:.1f} MB", flush=True)
    return results


# ---------------------------------------------------------------------------------------------- small jobs


def parse_time(value: str | None) -> float | None:
    """Orthanc's job times (20261201T043727.172532) as seconds since the epoch."""
    if not value:
        return None
    fmt = "%Y%m%dT%H%M%S.%f" if "." in value else "%Y%m%dT%H%M%S"
    return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC).timestamp()


@dataclass
class BurstResult:
    submitted: int = 0
    success: int = 0
    states: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    wall: float = float("nan")          # first CreationTime to last CompletionTime
    client_wall: float = float("nan")   # first submission to all seen done
    submit_seconds: float = float("nan")
    pairs: int = 0                      # pairs of different priorities pending together
    inversions: int = 0
    inverted_jobs: int = 0              # jobs completed while a higher priority one was waiting
    completion_inversions: int = 0      # lower priority completed first (side by side in two slots too)
    max_running: int = 0                # most jobs seen Running at once
    order: str = ""                     # priorities by completion order
    outputs_ok: int = 0


def burst(side: Side, series: list[str], threads: int, concurrent: int, poll: float, timeout: float,
          slack: float, check_outputs: bool) -> BurstResult:
    res = BurstResult()
    jobs: list[tuple[int, int, str]] = []  # (index, priority, job ID)
    lock = threading.Lock()
    failures: list[str] = []

    def submit(thread: int) -> None:
        client = Client(side.srv)
        try:
            for i in range(thread, len(series), threads):
                priority = i % 10
                try:
                    answer = client.json("POST", f"/series/{series[i]}/archive",
                                         {"Asynchronous": True, "Priority": priority})
                except (RequestFailed, OSError, http.client.HTTPException, ValueError) as exc:
                    with lock:
                        failures.append(f"submit job {i}: {exc}")
                    continue
                with lock:
                    jobs.append((i, priority, answer["ID"]))
        finally:
            client.close()

    t0 = time.perf_counter()
    workers = [threading.Thread(target=submit, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    res.submit_seconds = time.perf_counter() - t0
    res.submitted = len(jobs)
    for f in failures:
        side.error(f)

    # Poll the whole list (one request) rather than each job: 200 GETs a round would load the server.
    wanted = {job_id for _, _, job_id in jobs}
    last: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while True:
        listed = {j["ID"]: j for j in side.client.json("GET", "/jobs?expand")}
        res.max_running = max(res.max_running, sum(j.get("State") == "Running" for j in listed.values()))
        for job_id in wanted:
            if job_id in listed:
                last[job_id] = listed[job_id]
        # Done when every job still listed is finished (one no longer listed cannot change: lost, below).
        if all(last.get(j, {}).get("State") in DONE for j in wanted if j in listed):
            res.client_wall = time.perf_counter() - t0
            break
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
    for job_id in wanted:
        if job_id not in listed:
            res.lost += 1
            side.error(f"job {job_id} no longer in GET /jobs (last seen {last.get(job_id, {}).get('State')})")
    for job_id in wanted:
        state = last.get(job_id, {}).get("State", "never listed")
        res.states[state] = res.states.get(state, 0) + 1
    res.success = res.states.get("Success", 0)
    if res.success != len(series):
        stuck = [(j, last[j].get("State"), last[j].get("Progress")) for j in wanted
                 if j in last and last[j].get("State") not in DONE]
        side.error(f"{res.success} of {len(series)} jobs reached Success ({res.submitted} submitted); states "
                   f"{res.states}; not finished after {timeout:.0f} s: {stuck[:5]}")
        for j in wanted:
            if last.get(j, {}).get("State") == "Failure":
                side.error(f"job {j} failed: {last[j].get('ErrorCode')} {last[j].get('ErrorDescription')}: "
                           f"{last[j].get('ErrorDetails')}")
                break

    if res.max_running > concurrent:
        text = f"{res.max_running} jobs Running at once in one GET /jobs?expand, ConcurrentJobs is {concurrent}"
        if side.name == "ours":
            side.error(text)  # ours lists the jobs with one query: a consistent snapshot
        else:
            # Orthanc 1.10 builds the list job by job: a job finishing and the next one starting while it
            # does can both show Running.
            print(f"  note {side.name}: {text} (Orthanc reads the jobs one by one, not a snapshot)")

    done = []
    for _, priority, job_id in jobs:
        info = last.get(job_id, {})
        created, completed = parse_time(info.get("CreationTime")), parse_time(info.get("CompletionTime"))
        if info.get("State") == "Success" and created is not None and completed is not None:
            if info.get("Priority") != priority:
                side.error(f"job {job_id}: Priority {info.get('Priority')}, submitted with {priority}")
            runtime = float(info.get("EffectiveRuntime") or 0)
            done.append((priority, created, completed - runtime, completed))
    # Neither server says when a job started. CompletionTime - EffectiveRuntime is it on ours, but Orthanc
    # 1.10's EffectiveRuntime counts the time spent pending as well; a job also cannot start before a slot
    # frees, i.e. before the job ConcurrentJobs places earlier in completion order has completed.
    done.sort(key=lambda d: d[3])
    done = [(p, c, max(c, s, done[k - concurrent][3] if k >= concurrent else c), e)
            for k, (p, c, s, e) in enumerate(done)]
    if done:
        res.wall = max(d[3] for d in done) - min(d[1] for d in done)
        res.order = "".join(str(d[0]) for d in done)
        inverted = set()
        for a, b in itertools.combinations(range(len(done)), 2):
            if done[a][0] == done[b][0]:
                continue
            (_, ch, sh, eh), (_, cl, sl, el) = (done[a], done[b]) if done[a][0] > done[b][0] else (done[b], done[a])
            if max(ch, cl) + slack >= min(sh, sl):
                continue  # not both waiting when the first of the two started
            res.pairs += 1
            if el < sh:  # the lower priority one ran, and completed, before the higher one started
                res.inversions += 1
                inverted.add(b if done[a][0] > done[b][0] else a)
            if el < eh:
                res.completion_inversions += 1
        res.inverted_jobs = len(inverted)

    if check_outputs:
        for _, _, job_id in jobs:
            if last.get(job_id, {}).get("State") != "Success":
                continue
            status, body = side.client.fetch("GET", f"/jobs/{job_id}/archive")
            if status != 200:
                side.error(f"GET /jobs/{job_id}/archive: HTTP {status}: {body[:200]!r}")
                continue
            if zip_check(side, f"GET /jobs/{job_id}/archive", body, 1, full=False) is not None:
                res.outputs_ok += 1
    return res


# ---------------------------------------------------------------------------------------------- report


def modify_bench(sides: list[Side], studies: dict[str, str], expected: int,
                 runs: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of a synchronous /anonymize and /modify of the study, alternating between the servers; each new
    study is checked, then deleted (not timed)."""
    times: dict[str, dict[str, list[float]]] = {s.name: {"anonymize": [], "modify": []} for s in sides}
    for run in range(runs):
        for kind, body in (("anonymize", {}), ("modify", {"Replace": {"StudyDescription": f"BENCH {run}"}})):
            for side in sides:
                t = time.perf_counter()
                try:
                    answer = side.client.json("POST", f"/studies/{studies[side.name]}/{kind}", body)
                except Exception as exc:  # noqa: BLE001 - reported, the bench goes on
                    side.error(f"{kind}: {exc}")
                    continue
                seconds = time.perf_counter() - t
                count = len(side.client.json("GET", f"/studies/{answer['ID']}/instances"))
                if answer.get("InstancesCount") != expected or count != expected:
                    side.error(f"{kind}: {answer.get('InstancesCount')} instances in the answer, {count} stored")
                times[side.name][kind].append(seconds)
                print(f"  {side.name:8s} {kind:9s} run {run + 1}: {seconds:.2f} s "
                      f"({expected / seconds:.0f} instances/s)", flush=True)
                side.client.fetch("DELETE", f"/studies/{answer['ID']}")
    return times


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN (failed runs)
    return statistics.median(values) if values else float("nan")


def _f(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:.{digits}f}"


def print_table(rows: list[tuple[str, float | None, float | None, str, str]]) -> None:
    head = ("figure", "ours", "Orthanc", "ratio", "goal", "met?")
    lines = []
    for name, ours, orth, goal, met in rows:
        ratio = ours / orth if ours is not None and orth and ours == ours and orth == orth else None
        digits = 0 if name.endswith(("jobs", "pairs", "inversions", "entries")) else (2 if "s)" in name else 1)
        lines.append((name, _f(ours, digits), _f(orth, digits), _f(ratio, 2), goal, met))
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i in (0, 4) else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*head))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--instances", type=int, default=500, help="instances in the archived study")
    ap.add_argument("--runs", type=int, default=3, help="synchronous and asynchronous archives per server")
    ap.add_argument("--small-jobs", type=int, default=200, help="single-instance archives submitted at once (0: skip)")
    ap.add_argument("--threads", type=int, default=4, help="threads submitting the small jobs")
    ap.add_argument("--modify-runs", type=int, default=2, help="anonymizations and modifications per server")
    ap.add_argument("--modify-workers", type=int, default=0,
                    help="our JobsEngineThreadsCount.ResourceModification (0: one per core)")
    ap.add_argument("--concurrent-jobs", type=int, default=2, help="ConcurrentJobs of both servers")
    ap.add_argument("--poll-ms", type=float, default=50, help="GET /jobs/{id} interval for the archive jobs")
    ap.add_argument("--burst-poll-ms", type=float, default=100, help="GET /jobs?expand interval for the small jobs")
    ap.add_argument("--slack-ms", type=float, default=250,
                    help="a job counts as waiting from this long after its CreationTime (priority measure)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a job is reported stuck")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-orthanc", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background

    t = time.perf_counter()
    study_instances = one_study(args.instances, args.seed)
    small = single_instance_series(args.small_jobs, args.seed + 1) if args.small_jobs else []
    size = sum(i.size for i in study_instances)
    print(f"synthesized {len(study_instances)} instances of one study ({size / 1e6:.0f} MB) and {len(small)} "
          f"single-instance series in {time.perf_counter() - t:.1f} s")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")

    common = {"JobsHistorySize": 1000, "ConcurrentJobs": args.concurrent_jobs}
    sides: list[Side] = []
    archive_results: dict[str, ArchiveResult] = {}
    bursts: dict[str, BurstResult] = {}
    try:
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(ours_server(extra={
                **common, "JobsEngineThreadsCount": {"ResourceModification": args.modify_workers}}))
            sides.append(Side("ours", ours, Client(ours)))
            if not args.no_orthanc:
                # MediaArchiveSize: Orthanc's own bound on kept media archives (1 by default); not ours.
                orth = stack.enter_context(orthanc_server(extra={**common, "MediaArchiveSize": 1000}))
                sides.append(Side("orthanc", orth, Client(orth)))
                print(f"Orthanc {sides[-1].client.json('GET', '/system').get('Version')}")
            for side in sides:
                stack.callback(side.client.close)

            t = time.perf_counter()
            answers = upload_all(sides, study_instances + small)
            print(f"uploaded {len(answers)} instances to {len(sides)} server(s) in {time.perf_counter() - t:.1f} s",
                  flush=True)
            study = {answers[0][s.name]["ParentStudy"] for s in sides}
            if len(study) != 1:
                print(f"  note: the study IDs differ between the servers: {study}")
            study_id = answers[0]["ours"]["ParentStudy"]
            for side in sides:
                count = len(side.client.json("GET", f"/studies/{answers[0][side.name]['ParentStudy']}/instances"))
                if count != args.instances:
                    side.error(f"the study holds {count} instances, {args.instances} uploaded")

            print(f"\n1. archive of the study ({args.instances} instances), {args.runs} run(s)", flush=True)
            archive_results = archive_bench(sides, study_id, args.instances, args.runs, args.poll_ms / 1000,
                                            args.timeout)
            if len(sides) == 2:
                for mode in ("sync", "async"):
                    a, b = (archive_results[s.name].names.get(mode) for s in sides)
                    if a is not None and b is not None and sorted(a) != sorted(b):
                        only_ours, only_orth = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                        print(f"  note ({mode}): ZIP entry names differ: {len(only_ours)} only in ours "
                              f"(e.g. {only_ours[:1]}), {len(only_orth)} only in Orthanc's (e.g. {only_orth[:1]})")
                    elif a is not None and b is not None:
                        print(f"  ({mode}) ZIP entry names identical on both servers")

            if small:
                series = [answers[len(study_instances) + k] for k in range(len(small))]
                print(f"\n2. {len(small)} small jobs (one single-instance series archive each, priority i % 10) "
                      f"from {args.threads} threads, ConcurrentJobs {args.concurrent_jobs}", flush=True)
                for side in sides:
                    r = bursts[side.name] = burst(side, [a[side.name]["ParentSeries"] for a in series],
                                                  args.threads, args.concurrent_jobs, args.burst_poll_ms / 1000,
                                                  args.timeout, args.slack_ms / 1000, check_outputs=True)
                    print(f"  {side.name:8s} submitted {r.submitted} in {r.submit_seconds:.2f} s; "
                          f"{r.success} Success; states {r.states}; {r.lost} lost; outputs OK {r.outputs_ok}; "
                          f"wall {r.wall:.2f} s (server clock), {r.client_wall:.2f} s seen by the client",
                          flush=True)
                    print(f"    priority order: {r.inversions} inversion(s) in {r.pairs} pairs pending together "
                          f"({r.inverted_jobs} job(s) ran while a higher priority one waited); lower priority "
                          f"completed first: {r.completion_inversions}; most jobs seen Running at once: "
                          f"{r.max_running}")
                    for k in range(0, len(r.order), 100):
                        print(f"    completion order (priorities): {r.order[k:k + 100]}")
                print(f"  (inversion: two jobs of different priorities, both created {args.slack_ms:.0f} ms before "
                      f"the first of them started, the lower priority one completed\n   before the higher one "
                      f"started (two jobs side by side in the ConcurrentJobs slots may complete in either order: "
                      f"counted apart);\n   a job's start is taken as the latest of its CreationTime, CompletionTime - "
                      f"EffectiveRuntime (Orthanc's counts the pending time too)\n   and the CompletionTime of the job "
                      f"ConcurrentJobs places before it in completion order (a slot must free))")

            modify_times: dict[str, dict[str, list[float]]] = {}
            if args.modify_runs:
                print(f"\n3. anonymize and modify the study ({args.instances} instances), {args.modify_runs} run(s)",
                      flush=True)
                modify_times = modify_bench(sides, {s.name: answers[0][s.name]["ParentStudy"] for s in sides},
                                            args.instances, args.modify_runs)

            ours_r = archive_results["ours"]
            orth_r = archive_results.get("orthanc")

            def both(get) -> tuple[float, float | None]:
                return get(ours_r), (get(orth_r) if orth_r else None)

            rows = []
            fb = both(lambda r: med(r.first_byte_ms))
            rows.append(("sync first byte (ms)", *fb, f"<= {FIRST_BYTE_GOAL_MS:.0f} ms",
                         _met(fb[0] <= FIRST_BYTE_GOAL_MS)))
            sm = both(lambda r: med(r.sync_mbs))
            rows.append(("sync MB/s", *sm, ">= Orthanc", _met(sm[1] is None or sm[0] >= sm[1])))
            rows.append(("sync ZIP MB", *both(lambda r: r.sync_bytes / 1e6), "", ""))
            asec = both(lambda r: med(r.async_seconds))
            rows.append(("async total (s)", *asec, "", ""))
            rows.append(("async submit to Success (s)", *both(lambda r: med(r.async_job_seconds)), "", ""))
            am = both(lambda r: med(r.async_mbs))
            rows.append(("async MB/s", *am, ">= Orthanc", _met(am[1] is None or am[0] >= am[1])))
            rows.append(("async ZIP MB", *both(lambda r: r.async_bytes / 1e6), "", ""))
            for kind in ("anonymize", "modify"):
                if modify_times:
                    mt = (med(modify_times["ours"][kind]),
                          med(modify_times["orthanc"][kind]) if "orthanc" in modify_times else None)
                    goal = kind == "anonymize"
                    rows.append((f"{kind} study (s)", *mt, "ratio <= 1.0" if goal else "",
                                 _met(mt[1] is None or mt[0] <= mt[1]) if goal else ""))
            if small:
                bo, bt = bursts["ours"], bursts.get("orthanc")
                rows.append(("small jobs Success, jobs", bo.success, bt.success if bt else None,
                             f"all {len(small)}", _met(bo.success == len(small) and not bo.lost)))
                rows.append(("small jobs wall (s)", bo.wall, bt.wall if bt else None, "", ""))
                rows.append(("small jobs/s", len(small) / bo.wall, len(small) / bt.wall if bt else None, "", ""))
                rows.append(("priority pairs", bo.pairs, bt.pairs if bt else None, "", ""))
                rows.append(("priority inversions", bo.inversions, bt.inversions if bt else None, "0",
                             _met(bo.inversions == 0)))
                rows.append(("most Running at once, jobs", bo.max_running, bt.max_running if bt else None,
                             f"<= {args.concurrent_jobs}", _met(bo.max_running <= args.concurrent_jobs)))
            rows.append(("RSS end (MB)", *[s.srv.rss_mb() for s in sides], *([None] if len(sides) == 1 else []),
                         "", ""))
            print()
            print_table(rows)
            print("\nRSS at the end: " + ", ".join(
                f"{s.name} {s.srv.rss_mb():.0f} MB (PSS {s.srv.pss_mb():.0f} MB)" for s in sides))
            for side in sides:
                if side.errors:
                    print(f"\n{side.name}: {len(side.errors)} error(s); first ones:")
                    for e in side.errors[:10]:
                        print("  " + e)
                    print(f"  server log tail:\n{side.srv.log_tail(30)}")
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    return 1 if sides and sides[0].errors else 0


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    sys.exit(main())
