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


def _churn(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env
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
def test_operator_tunables_are_left_alone():
    applied, _ = _churn("tuned", GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert applied == "False"
