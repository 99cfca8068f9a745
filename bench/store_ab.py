"""C-STORE A/B: two variants of our server side by side, in alternating batches, compared batch by batch.

    .venv/bin/python bench/store_ab.py old=/path/to/other/checkout new=.            # two checkouts
    .venv/bin/python bench/store_ab.py a=. b=.:SOME_ENV=1 --assocs 1 --batches 20    # one checkout, two settings

On this shared machine the speed of a whole run drifts by 30% and more within minutes, so two runs one after
the other cannot tell a 5% change. Here both servers run at once (each as ``manage.py serve`` of its
checkout, with its own archive) and each batch of ``--batch`` instances is sent to one then the other (the
order alternating), with DCMTK ``storescu`` over ``--assocs`` associations: the batches are the same files,
so each pair meets the same machine. Figures: the median of the per-batch ratios of instances/s and of CPU
time per instance (the server's whole process tree), second variant over first. Every checkout runs with this
one's ``.venv``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import servers  # noqa: E402
from network import storescu, wait_dicom, write_files  # noqa: E402


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (each thread lists the children it started)."""
    found = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [p for child in children.read_text().split() for p in _tree(int(child))]
        except OSError:
            pass
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])     # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def _variant(spec: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = spec.partition("=")
    path, _, env = rest.partition(":")
    if not name or not path:
        raise SystemExit(f"a variant is NAME=PATH[:ENV=VALUE,...], not {spec!r}")
    return name, Path(path).resolve(), dict(item.split("=", 1) for item in env.split(",") if item)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs=2, help="NAME=PATH[:ENV=VALUE,...]")
    ap.add_argument("--assocs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100, help="instances per batch")
    ap.add_argument("--batches", type=int, default=18)
    args = ap.parse_args()
    variants = [_variant(spec) for spec in args.variants]
    with tempfile.TemporaryDirectory(prefix="bench-store-ab-") as tmp, ExitStack() as stack:
        files = write_files(Path(tmp), args.batch * args.batches + 20, seed=11, prefix="ab")
        warmup, files = files[:20], files[20:]
        running = {}
        for name, path, env in variants:
            servers.PROJECT = path      # ours_server starts manage.py of this checkout
            server = stack.enter_context(servers.ours_server(env={"TCP_NODELAY": "1", **env}))
            wait_dicom(server.dicom_port)
            storescu(server.dicom_port, warmup, 1)
            running[name] = (server, _tree(server.pid))
        names = list(running)
        speed: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        print(f"C-STORE A/B, storescu, {args.assocs} association(s), batches of {args.batch} CT instances")
        for number in range(args.batches):
            batch = files[number * args.batch:(number + 1) * args.batch]
            for name in names if number % 2 == 0 else names[::-1]:
                server, pids = running[name]
                before = _cpu_seconds(pids)
                seconds, codes = storescu(server.dicom_port, batch, args.assocs)
                if any(codes):
                    raise SystemExit(f"storescu failed against {name}: {codes}")
                speed[name].append(len(batch) / seconds)
                cpu[name].append((_cpu_seconds(pids) - before) / len(batch) * 1000)
            print(f"batch {number:2d}: " + "  ".join(f"{n} {speed[n][-1]:6.1f} inst/s {cpu[n][-1]:5.2f} ms"
                                                    for n in names), flush=True)
        first, second = names
        speed_ratio = statistics.median(b / a for a, b in zip(speed[first], speed[second], strict=True))
        cpu_ratio = statistics.median(b / a for a, b in zip(cpu[first], cpu[second], strict=True))
        for name in names:
            print(f"{name}: median {statistics.median(speed[name]):.1f} inst/s, "
                  f"{statistics.median(cpu[name]):.2f} ms CPU per instance")
        print(f"{second}/{first}: instances/s x{speed_ratio:.3f}, CPU per instance x{cpu_ratio:.3f} "
              "(medians of the per-batch ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
