"""Tags routes bench: /instances/{id}/tags, ?simplify and /studies/{id}/instances-tags, ours against real
Orthanc, on an archive with and without StorageCompression.

    .venv/bin/python bench/tags.py                       # both servers, both settings, ~2 minutes
    .venv/bin/python bench/tags.py --count 20 --runs 10 --no-orthanc

``--count`` synthetic 512x512 CT instances (bench/synth.py, 0.53 MB each, one study) are uploaded to each
server. Compressed, both servers keep the file up to its pixel data apart ("dicom-until-pixel-data") and read
the tags from it without inflating the whole file; ``?whole`` has to inflate it all. Each route is asked
``--runs`` times per instance (cycling over the instances), alternating between the servers on one keep-alive
connection each, so both see the same background load. Prints the p50 and p90 of the client's wall time in
ms and the ratio ours / Orthanc (below 1: ours is faster). The machine is shared: compare figures of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import KeepAliveClient, orthanc_server, ours_server  # noqa: E402
from synth import generate_count  # noqa: E402

ROUTES = ("/instances/{i}/tags", "/instances/{i}/tags?simplify", "/instances/{i}/tags?whole",
          "/studies/{s}/instances-tags")


def _load(client: KeepAliveClient, files: list[bytes]) -> tuple[list[str], str]:
    answers = client.upload(files)
    return [a["ID"] for a in answers], answers[-1]["ParentStudy"]


def _measure(sides: dict[str, tuple[KeepAliveClient, list[str], str]], route: str, runs: int
             ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for n in range(runs + 1):
        for name, (client, ids, study) in sides.items():
            path = route.format(i=ids[n % len(ids)], s=study)
            status, _, body, seconds = client.call("GET", path)
            if status != 200:
                raise SystemExit(f"{name} {path}: {status} {body[:200]!r}")
            if n:  # the first request of each route is a warm-up
                times[name].append(seconds * 1000)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10, help="CT instances uploaded to each server")
    ap.add_argument("--runs", type=int, default=40, help="requests per route and server")
    ap.add_argument("--no-orthanc", action="store_true", help="ours only")
    args = ap.parse_args()
    files = [inst.to_bytes() for inst in generate_count(args.count, instances_per_series=args.count)]
    print(f"{args.count} CT instances of {len(files[0]) / 1e6:.2f} MB; {args.runs} requests per route; ms")
    for compression in (False, True):
        extra = {"StorageCompression": compression}
        print(f"\nStorageCompression {str(compression).lower()}")
        print(f"{'route':36} {'ours p50':>9} {'p90':>7} {'orthanc p50':>12} {'p90':>7} {'ratio p50':>10}")
        with ours_server(extra=extra) as ours:
            sides = {"ours": KeepAliveClient(ours.url)}
            if args.no_orthanc:
                orthanc_cm = None
            else:
                orthanc_cm = orthanc_server(extra=extra)
                sides["orthanc"] = KeepAliveClient(orthanc_cm.__enter__().url)
            try:
                loaded = {name: (client, *_load(client, files)) for name, client in sides.items()}
                for route in ROUTES:
                    times = _measure(loaded, route, args.runs)
                    ours_t = sorted(times["ours"])
                    line = f"{route:36} {statistics.median(ours_t):9.2f} {ours_t[int(len(ours_t) * .9)]:7.2f}"
                    if "orthanc" in times:
                        orth_t = sorted(times["orthanc"])
                        ratio = statistics.median(ours_t) / statistics.median(orth_t)
                        line += (f" {statistics.median(orth_t):12.2f} {orth_t[int(len(orth_t) * .9)]:7.2f}"
                                 f" {ratio:10.2f}")
                    print(line, flush=True)
            finally:
                for client in sides.values():
                    client.close()
                if orthanc_cm is not None:
                    orthanc_cm.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
