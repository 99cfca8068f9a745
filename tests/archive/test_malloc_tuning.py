"""archive.malloc_tuning: half-megabyte blocks are reused instead of coming back from the kernel each time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

# The blocks of a C-STORE: the received dataset, the Part 10 file joined from it, a receive buffer
_CHURN = """
import resource, sys
sys.path.insert(0, {project!r})
from archive.malloc_tuning import malloc_tune
print(malloc_tune() if sys.argv[1] == "tuned" else "-")
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = faults()
for _ in range(200):
    dataset = bytes(530_000)
    part10 = b"".join((b"\\0" * 132, dataset))
    chunk = bytearray(262_144)
    del dataset, part10, chunk
print(faults() - start)
"""


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}


def _churn(mode: str, **env: str) -> tuple[str, int]:
    environment = _clean_environment() | env
    out = subprocess.run([sys.executable, "-c", _CHURN.format(project=str(PROJECT)), mode], env=environment,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


def _glibc() -> bool:
    import ctypes

    return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not _glibc(), reason="malloc tuning is for glibc; this C library is another")
def test_tuned_process_reuses_its_blocks():
    _, default_faults = _churn("default")
    tuned, tuned_faults = _churn("tuned")
    assert tuned == "True"
    # glibc's defaults: ~290 page faults per round (the blocks go back to the kernel); tuned: ~2
    assert default_faults > 20_000
    assert tuned_faults < default_faults / 10


@pytest.mark.skipif(not _glibc(), reason="malloc tuning is for glibc; this C library is another")
@pytest.mark.parametrize("env", [{"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"},
                                 {"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_operator_tunables_are_left_alone(env):
    applied, _ = _churn("tuned", **env)
    assert applied == "False"


# Threads each holding then freeing a burst of C-STORE-sized blocks (an HTTP worker's uploads): what the
# process keeps afterwards, in MB. The trim threshold applies to every arena (one per thread): too high a
# threshold keeps tens of MB per thread (32 MB: ~210 MB here).
_BURSTS = """
import os, sys, threading
sys.path.insert(0, {project!r})
from archive.malloc_tuning import malloc_tune
if sys.argv[1] == "tuned":
    malloc_tune()
def burst():
    for _ in range(3):
        blocks = [b"x" * 530_000 for _ in range(50)]
        del blocks
threads = [threading.Thread(target=burst) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20)
"""


def _bursts(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", _BURSTS.format(project=str(PROJECT)), mode],
                              env=_clean_environment(), capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not _glibc(), reason="malloc tuning is for glibc; this C library is another")
def test_threads_freeing_bursts_do_not_keep_them():
    assert _bursts("tuned") < _bursts("default") + 40     # 8 arenas, each below the trim threshold

