"""glibc's malloc thresholds, fixed for a server that handles half-megabyte buffers all day.

Why: a received C-STORE dataset, the Part 10 file built from it and the receive buffers are each 0.25-0.5 MB.
glibc's defaults adapt the mmap threshold to the largest block freed so far and trim a heap whose free top
exceeds twice that, so such blocks keep going back to the kernel and coming again as fresh pages: ~50-180
page faults per instance on one association (each a zeroed page, dear in a VM), 3-9% of the CPU of a
C-STORE. With the thresholds fixed, blocks under 4 MB stay in the process's heaps and are reused (9 faults
per instance); larger ones (multi-frame instances, archives) are still mapped and unmapped as before.
Measured with bench/store_ab.py (paired batches, a noisy machine): CPU per instance x0.91-0.97 in every run,
instances/s x1.00-1.11.
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
TRIM_THRESHOLD = 32 << 20    # free memory kept at the top of a heap before it is given back

_done = False


def malloc_tune() -> bool:
    """Fix glibc's thresholds in this process (once); False where there is no glibc, or where the operator
    set malloc tunables of their own (GLIBC_TUNABLES), which are left as they are."""
    global _done
    if _done:
        return True
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        gnu = ctypes.CDLL(None).gnu_get_libc_version     # glibc only: musl's mallopt does nothing
    except (AttributeError, OSError):
        return False
    del gnu
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        logger.warning("mallopt refused the malloc thresholds; glibc's defaults stay")
        return False
    _done = True
    return True
