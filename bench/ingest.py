"""Ingest bench: REST ``POST /instances`` of synthetic 0.5 MB CT instances, ours against real Orthanc.

1. Throughput: ``--count`` instances (default 2,000) with each number of concurrent clients in ``--clients``
   (default 1,4), into a fresh archive for every run, real Orthanc and ours in the same run; prints
   instances/s, MB/s, latency, server RSS, and the ratio ours/Orthanc.
2. Flat cost: ``--flat`` instances (default 20,000; 0 skips) into a fresh archive of ours; prints the rate of
   the first and the last ``--window`` instances (default 1,000) and their ratio (goal: within +-20%).

Clients are threads, each with one keep-alive HTTP/1.1 connection (http.client, TCP_NODELAY), sending
``Content-Type: application/dicom``. Instances are generated in memory before timing (bench/synth.py).
Before each timed run ``--warmup`` other instances are uploaded (every worker process imports its code
on first use), so the archive holds those few beside the timed ones. Everything stays on 127.0.0.1.

    .venv/bin/python bench/ingest.py                      # everything
    .venv/bin/python bench/ingest.py --only orthanc --flat 0
    .venv/bin/python bench/ingest.py --only ours --clients 4 --count 500 --flat 5000
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import SERVERS, KeepAliveClient, Server, filesystem_of, wait_for_freed_inodes  # noqa: E402
from synth import SynthInstance, generate_count  # noqa: E402

MAX_ERRORS = 20


@dataclass
class RunResult:
    server: str
    clients: int
    count: int
    nbytes: int
    seconds: float
    done_at: list[float]  # completion times relative to the start, sorted
    latencies: list[float]
    errors: list[str] = field(default_factory=list)
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    server_cpu: float = 0.0  # CPU seconds used by the server during the timed upload
    client_cpu: float = 0.0  # CPU seconds used by this process (the clients) during the timed upload
    pss_end_mb: float = 0.0  # proportional set size: shared pages of forked workers counted once

    @property
    def rate(self) -> float:
        return len(self.done_at) / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds else 0.0

    def window_rate(self, start: int, size: int) -> float:
        """Instances/s over the completions ``start .. start+size`` (by completion order)."""
        t = self.done_at
        t0 = t[start - 1] if start > 0 else 0.0
        return size / (t[start + size - 1] - t0)


class Sender(KeepAliveClient):
    """One keep-alive connection; sends head and pixels without concatenating them."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, timeout=120)

    def post(self, inst: SynthInstance) -> tuple[int, bytes]:
        # A reconnection repeats the upload: harmless, the instance then answers AlreadyStored.
        def send(c: http.client.HTTPConnection) -> None:
            c.putrequest("POST", "/instances", skip_accept_encoding=True)
            c.putheader("Content-Type", "application/dicom")
            c.putheader("Content-Length", str(inst.size))
            c.endheaders(inst.head)
            c.send(inst.pixels)

        resp, _ = self.exchange(send)
        body = resp.read()
        if resp.will_close:
            self.close()
        return resp.status, body


class RssSampler(threading.Thread):
    def __init__(self, srv: Server, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.srv, self.every, self.peak = srv, every, 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.srv.rss_mb())
            self.stopped.wait(self.every)

    def stop(self) -> float:
        self.stopped.set()
        self.join(timeout=5)
        self.peak = max(self.peak, self.srv.rss_mb())
        return self.peak


def upload(base_url: str, instances: list[SynthInstance], clients: int, *, label: str = "",
           progress: bool = False) -> tuple[float, list[float], list[float], list[str]]:
    """Upload ``instances`` with ``clients`` threads; returns (seconds, completion times, latencies,
    errors)."""
    n = len(instances)
    done_at = [0.0] * n
    latency = [0.0] * n
    ok = [False] * n
    errors: list[str] = []
    counter = itertools.count()  # next() on it is atomic under the GIL
    stop = threading.Event()
    start_barrier = threading.Barrier(clients + 1)
    t0 = 0.0

    def worker() -> None:
        sender = Sender(base_url)
        try:
            start_barrier.wait()
            while not stop.is_set():
                i = next(counter)
                if i >= n:
                    return
                t = time.perf_counter()
                try:
                    status, body = sender.post(instances[i])
                except Exception as exc:  # noqa: BLE001 - reported, the bench goes on
                    errors.append(f"#{i}: {type(exc).__name__}: {exc}")
                else:
                    if status == 200 and json.loads(body).get("Status") in ("Success", "AlreadyStored"):
                        ok[i] = True
                    else:
                        errors.append(f"#{i}: HTTP {status}: {body[:500]!r}")
                end = time.perf_counter()
                done_at[i] = end - t0
                latency[i] = end - t
                if len(errors) >= MAX_ERRORS:
                    stop.set()
        except threading.BrokenBarrierError:
            return
        finally:
            sender.close()

    threads = [threading.Thread(target=worker, daemon=True, name=f"client-{k}") for k in range(clients)]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    start_barrier.wait()
    try:
        last_print = t0
        # Bounded: each request has a 120 s socket timeout and the index only grows.
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(timeout=0.5)
            if progress and time.perf_counter() - last_print > 10:
                last_print = time.perf_counter()
                k = sum(ok)
                print(f"    {label} {k}/{n} stored, {k / (last_print - t0):.0f}/s", flush=True)
    except BaseException:
        stop.set()
        raise
    seconds = max(done_at) if any(ok) else time.perf_counter() - t0
    good = [i for i in range(n) if ok[i]]
    return seconds, sorted(done_at[i] for i in good), [latency[i] for i in good], errors


def run_one(server: str, instances: list[SynthInstance], warmup: list[SynthInstance], clients: int, *,
            progress: bool = False) -> RunResult:
    with SERVERS[server]() as srv:
        if warmup:
            _, _, _, errs = upload(srv, warmup, min(clients, len(warmup)))
            if errs:
                raise RuntimeError(f"{server}: warm-up upload failed: {errs[0]}\nserver log:\n{srv.log_tail()}")
        sampler = RssSampler(srv)
        sampler.start()
        cpu0, self0 = srv.cpu_seconds(), _self_cpu()
        try:
            seconds, done_at, lat, errors = upload(srv, instances, clients, label=server, progress=progress)
        finally:
            peak = sampler.stop()
        server_cpu, client_cpu = srv.cpu_seconds() - cpu0, _self_cpu() - self0
        rss_end, pss_end = srv.rss_mb(), srv.pss_mb()
        if errors:
            tail = srv.log_tail()
            errors.append(f"server log tail:\n{tail}")
    nbytes = len(done_at) * instances[0].size  # synthetic instances all have the same size
    return RunResult(server, clients, len(instances), nbytes, seconds, done_at, lat, errors, rss_end, peak,
                     server_cpu, client_cpu, pss_end)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def fmt_ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0] * 1000:.1f}"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[int(q) - 1] * 1000:.1f}"


def print_table(results: list[RunResult]) -> None:
    print(f"storage areas on {filesystem_of(tempfile.gettempdir())}")
    head = (f"{'server':<8} {'clients':>7} {'stored':>7} {'seconds':>8} {'inst/s':>8} {'MB/s':>7} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'srv CPU ms/inst':>15} {'cli CPU ms/inst':>15} {'RSS end MB':>10} {'PSS end MB':>10} "
            f"{'RSS peak MB':>11} {'errors':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.server:<8} {r.clients:>7} {len(r.done_at):>7} {r.seconds:>8.2f} {r.rate:>8.1f} "
              f"{r.mbps:>7.1f} {fmt_ms(r.latencies, 50):>7} {fmt_ms(r.latencies, 99):>7} "
              f"{_per(r.server_cpu, r):>15} {_per(r.client_cpu, r):>15} "
              f"{r.rss_end_mb:>10.0f} {r.pss_end_mb:>10.0f} {r.rss_peak_mb:>11.0f} {len([e for e in r.errors if e[0] == '#']):>6}")


def _per(cpu: float, r: RunResult) -> str:
    return f"{cpu * 1000 / len(r.done_at):.2f}" if r.done_at else "-"


def report_errors(r: RunResult) -> None:
    if r.errors:
        print(f"\n{r.server}, {r.clients} client(s): {len(r.errors) - 1} error(s); first ones:")
        for e in r.errors[:3]:
            print("  " + e)
        print(r.errors[-1])


def flat_report(r: RunResult, window: int) -> None:
    n = len(r.done_at)
    print(f"\nFlat cost: {r.server}, {r.count} instances, {r.clients} client(s): stored {n} in {r.seconds:.1f} s "
          f"({r.rate:.1f}/s, {r.mbps:.1f} MB/s), server CPU {_per(r.server_cpu, r)} ms/inst, RSS end {r.rss_end_mb:.0f} MB (PSS {r.pss_end_mb:.0f} MB), peak {r.rss_peak_mb:.0f} MB")
    if n < 2 * window:
        print(f"  fewer than {2 * window} instances stored: no first/last comparison")
        report_errors(r)
        return
    first, last = r.window_rate(0, window), r.window_rate(n - window, window)
    ratio = last / first
    verdict = "OK" if 0.8 <= ratio <= 1.2 else "OUTSIDE +-20%"
    print(f"  first {window}: {first:8.1f} inst/s")
    print(f"  last  {window}: {last:8.1f} inst/s")
    print(f"  last/first: {ratio:.2f}  (goal 0.80-1.20: {verdict})")
    blocks = max(1, min(10, n // window))
    size = n // blocks
    rates = [r.window_rate(b * size, size) for b in range(blocks)]
    print(f"  by tenth ({size} each): " + " ".join(f"{x:.0f}" for x in rates))
    report_errors(r)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--only", choices=["ours", "orthanc"], help="bench one server only")
    ap.add_argument("--clients", default="1,4", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--count", type=int, default=2000, help="instances per throughput run")
    ap.add_argument("--flat", type=int, default=20000, help="instances for the flat-cost run (0: skip)")
    ap.add_argument("--flat-clients", type=int, default=4)
    ap.add_argument("--flat-orthanc", action="store_true", help="run the flat-cost check on Orthanc too")
    ap.add_argument("--window", type=int, default=1000, help="first/last window of the flat-cost check")
    ap.add_argument("--warmup", type=int, default=20, help="instances uploaded before each timed run")
    ap.add_argument("--per-series", type=int, default=100, help="instances per series (2 series per study)")
    ap.add_argument("--progress", action="store_true", help="print progress every 10 s")
    args = ap.parse_args()

    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    servers = [args.only] if args.only else ["orthanc", "ours"]
    flat_servers = [s for s in (["orthanc"] if args.flat_orthanc else []) + ["ours"] if s in servers]

    # SIGTERM ends like Ctrl-C: the context managers stop the servers.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background

    t = time.perf_counter()
    total = max(args.count, args.flat if flat_servers else 0)
    instances = generate_count(total, instances_per_series=args.per_series)
    warmup = generate_count(args.warmup, instances_per_series=args.per_series, seed=999, prefix="WARMUP")
    size = instances[0].size
    print(f"generated {total} synthetic CT instances ({size / 1e6:.3f} MB each, 512x512x16 bit, explicit VR LE) "
          f"in {time.perf_counter() - t:.1f} s; {os.cpu_count()} CPUs; loopback")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")
    wait_for_freed_inodes()

    results: list[RunResult] = []
    failed = 0

    def attempt(s: str, count: int, c: int) -> RunResult | None:
        # A server that does not start (or a warm-up that fails) is reported and the bench goes on.
        nonlocal failed
        try:
            return run_one(s, instances[:count], warmup, c, progress=args.progress)
        except RuntimeError as exc:
            failed += 1
            print(f"\nERROR ({s}, {c} client(s)): {exc}\n", flush=True)
            return None

    try:
        if args.count and clients:
            print(f"\nREST ingest: POST /instances, {args.count} instances ({args.count * size / 1e6:.0f} MB) "
                  f"per run, fresh archive per run, {args.warmup} warm-up instances first\n", flush=True)
            for c in clients:
                for s in servers:
                    r = attempt(s, args.count, c)
                    if r is not None:
                        results.append(r)
                        print(f"  done: {s}, {c} client(s): {r.rate:.1f} inst/s", flush=True)
            print()
            print_table(results)
            for c in clients:
                o = next((r for r in results if r.server == "orthanc" and r.clients == c), None)
                u = next((r for r in results if r.server == "ours" and r.clients == c), None)
                if o and u and o.rate:
                    print(f"ratio ours/Orthanc, {c} client(s): {u.rate / o.rate:.2f} "
                          f"({u.rate:.1f} vs {o.rate:.1f} inst/s)")
            for r in results:
                report_errors(r)
        for s in flat_servers if args.flat else []:
            print(f"\nflat-cost run: {args.flat} instances into {s}, {args.flat_clients} client(s)...", flush=True)
            r = attempt(s, args.flat, args.flat_clients)
            if r is not None:
                flat_report(r, args.window)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    return 1 if failed or any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
