"""glibc's malloc thresholds, fixed for a server that handles half-megabyte buffers all day.

Why: a received C-STORE dataset, the Part 10 file built from it and the receive buffers are each 0.25-0.5 MB.
glibc's defaults adapt the mmap threshold to the largest block freed so far and trim a heap whose free top
exceeds twice that, so such blocks keep going back to the kernel and coming again as fresh pages: ~50-180
page faults per instance on one association (each a zeroed page, dear in a VM), 3-9% of the CPU of a
C-STORE. With the thresholds fixed, blocks under 4 MB stay in the process's heaps and are reused (9 faults
per instance); larger ones (multi-frame instances, archives) are still mapped and unmapped as before.
Measured with bench/store_ab.py (paired batches, a noisy machine): CPU per instance x0.91-0.97 in every run,
instances/s x1.00-1.11.

The trim threshold is what each heap (arena, one per thread up to glibc's limit) keeps free before giving
memory back. 8 MB in the processes with many threads (HTTP workers, jobs): 8 threads that each freed a burst
of 25 MB keep ~20 MB, against ~210 MB with 32 MB and ~16 MB with glibc's defaults. 32 MB in the DICOM server's
processes (DICOM_TRIM_THRESHOLD, set by ``manage.py dicomserver``), a few threads each: with 8 MB there, the
C-STORE CPU per instance was x1.054 (paired A/B, 4 associations). Orthanc's MallocArenaMax (5) is not applied: with this threshold, fewer arenas shared
by those threads kept more (11-66 MB, fragmentation), not less; MALLOC_ARENA_MAX in the environment still
works as glibc documents it.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 4 << 20     # blocks this large or larger are mapped on their own, and unmapped when freed
TRIM_THRESHOLD = 8 << 20     # free memory kept at the top of a heap before it is given back
DICOM_TRIM_THRESHOLD = 32 << 20

# The operator's own settings, which are left alone: GLIBC_TUNABLES's glibc.malloc.*, and mallopt(3)'s
# environment variables
_OPERATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied: int | None = None    # the trim threshold set in this process


def _mallopt():
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):     # glibc only: musl's mallopt does nothing
            return None
    except (AttributeError, OSError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def malloc_tune(trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's thresholds in this process; True when they are set. False where there is no glibc, or
    where the operator tuned them in the environment (GLIBC_TUNABLES's glibc.malloc.*, MALLOC_*_), which is
    then left as it is."""
    global _applied
    if _applied == trim_threshold:
        return True
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or any(v in os.environ for v in _OPERATOR_VARIABLES):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, trim_threshold)):
        logger.warning("mallopt refused the malloc thresholds; glibc's defaults stay")
        return False
    _applied = trim_threshold
    return True
