"""HttpCompressionEnabled bench: answers with and without ``Accept-Encoding: gzip``, ours against real Orthanc
1.10.1, both with the option on.

    .venv/bin/python bench/compression.py                 # ~1 minute
    .venv/bin/python bench/compression.py --count 200 --runs 40

``--count`` synthetic CT instances (bench/synth.py, 0.53 MB each, one study, one series) are uploaded to each
server; each route is asked ``--runs`` times, alternating between the servers on one keep-alive connection
each. Prints per route and encoding the p50 of the client's wall time in ms (the body read, not decoded), the
bytes on the wire and the ratio ours / Orthanc of the p50 (below 1: ours is faster). The machine is shared:
compare the figures of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import KeepAliveClient, orthanc_server, ours_server  # noqa: E402
from synth import generate_count  # noqa: E402

ROUTES = ("/instances?expand", "/series/{s}", "/instances/{i}/tags", "/instances/{i}/file")


def _load(client: KeepAliveClient, files: list[bytes]) -> tuple[list[str], str]:
    answers = client.upload(files)
    return [a["ID"] for a in answers], answers[-1]["ParentSeries"]


def _measure(sides: dict, route: str, encoding: str, runs: int) -> dict[str, tuple[list[float], int]]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    sizes: dict[str, int] = {}
    headers = {"Accept-Encoding": encoding} if encoding else {}
    for n in range(runs + 1):
        for name, (client, ids, series) in sides.items():
            path = route.format(i=ids[n % len(ids)], s=series)
            resp, started = client.exchange(lambda conn, path=path: conn.request("GET", path, headers=headers))
            body = resp.read()
            seconds = time.perf_counter() - started
            if resp.status != 200 or (resp.getheader("Content-Encoding") or "") != encoding:
                raise SystemExit(f"{name} {path}: {resp.status} {resp.getheader('Content-Encoding')!r}")
            sizes[name] = len(body)
            if n:  # the first request of each route is a warm-up
                times[name].append(seconds * 1000)
    return {name: (times[name], sizes[name]) for name in sides}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100, help="CT instances uploaded to each server")
    ap.add_argument("--runs", type=int, default=30, help="requests per route, encoding and server")
    args = ap.parse_args()
    files = [inst.to_bytes() for inst in generate_count(args.count, instances_per_series=args.count)]
    print(f"{args.count} CT instances of {len(files[0]) / 1e6:.2f} MB; {args.runs} requests per route; "
          "HttpCompressionEnabled on both servers")
    print(f"{'route':24} {'encoding':>8} {'ours ms':>8} {'bytes':>9} {'orthanc ms':>11} {'bytes':>9} {'ratio':>6}")
    extra = {"HttpCompressionEnabled": True}
    with ours_server(extra=extra) as ours, orthanc_server(extra=extra) as orthanc:
        sides = {"ours": KeepAliveClient(ours.url), "orthanc": KeepAliveClient(orthanc.url)}
        try:
            loaded = {name: (client, *_load(client, files)) for name, client in sides.items()}
            for route in ROUTES:
                for encoding in ("", "gzip", "deflate"):
                    result = _measure(loaded, route, encoding, args.runs)
                    (ours_t, ours_b), (orth_t, orth_b) = result["ours"], result["orthanc"]
                    ours_p50, orth_p50 = statistics.median(ours_t), statistics.median(orth_t)
                    print(f"{route:24} {encoding or '-':>8} {ours_p50:8.2f} {ours_b:9d} {orth_p50:11.2f} "
                          f"{orth_b:9d} {ours_p50 / orth_p50:6.2f}", flush=True)
        finally:
            for client in sides.values():
                client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
