"""Orthanc's metrics (/tools/metrics-prometheus) of every server process: what each process records, and how
the figures of all processes become one.

Orthanc keeps its figures in memory (``MetricsRegistry``), which is right for one process and wrong for a
deployment of several: a scrape would land on one gunicorn worker among many. Here each process keeps its
figures in memory too (``ProcessRegistry``), and a flusher thread writes them every ``METRICS_FLUSH_SECONDS``
to one row per process (``archive.models.ProcessMetrics``): HTTP workers, DICOM server processes and job
workers alike. Whichever process answers /tools/metrics-prometheus reads every row and combines them by the
rule of each metric (``AGGREGATION``): gauges from live rows only (updated within ``LIVE_SECONDS``), summed
or maxed; counters from every row, a dead process's count being kept (folded into the row ``retired`` after
a while). The table works on SQLite and PostgreSQL alike, needs no Redis, and costs at most one small upsert
per process per flush interval when something changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0   # Orthanc's MetricsUpdatePolicy_MaxOver10Seconds
LIVE_SECONDS = 15.0     # a row not written for this long is a dead process: its gauges no longer count
HEARTBEAT_SECONDS = 5.0
RETIRE_SECONDS = 600.0  # a row not written for this long has its counters folded into "retired"
RETIRED = "retired"

# How the figures of several processes make one: "sum" and "max" over live processes (gauges), "counter" summed
# over all processes that ever ran (dead ones included).
AGGREGATION: dict[str, str] = {
    "orthanc_rest_api_active_requests": "sum",
    "orthanc_rest_api_duration_ms": "max",
    "orthanc_logged_errors_count": "counter",
    "orthanc_logged_warnings_count": "counter",
    # Orthanc's Timers (MaxOver10Seconds), listed once something was timed, as Orthanc lists an item once set:
    "orthanc_store_dicom_duration_ms": "max",       # one instance stored, whoever sent it (ServerContext::Store)
    "orthanc_storage_create_duration_ms": "max",    # its file written to the storage area
    "orthanc_find_scp_duration_ms": "max",          # one C-FIND served
    "orthanc_move_scp_duration_ms": "max",          # one C-MOVE looked up (as Orthanc: not its sub-operations)
    # Orthanc 1.12.9: the fewest threads left free in the last 10 s, summed over the processes that serve: the
    # HTTP workers (their gthread threads) and the DICOM server processes (DicomThreadsCount associations each).
    "orthanc_available_http_threads_count": "sum",
    "orthanc_available_dicom_threads": "sum",
    # Orthanc 1.12.1: bytes read from and written to the storage area since start (every attachment, as stored)
    "orthanc_storage_read_bytes": "counter",
    "orthanc_storage_written_bytes": "counter",
}
# Always listed; the others appear once some process reported them, as Orthanc lists an item once it is set.
ALWAYS = frozenset({"orthanc_rest_api_active_requests", "orthanc_rest_api_duration_ms", "orthanc_logged_errors_count",
                    "orthanc_logged_warnings_count"})
OPTIONAL = frozenset(AGGREGATION) - ALWAYS


class _MaxOverWindow:
    """The largest value seen in the last WINDOW_SECONDS, as Orthanc's MaxOver10Seconds items."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, value: float, now: float) -> None:
        self.samples.append((now, value))
        self._prune(now)

    def value(self, now: float, default: float = 0) -> float:
        self._prune(now)
        return max((v for _, v in self.samples), default=default)

    def _prune(self, now: float) -> None:
        while self.samples and self.samples[0][0] < now - WINDOW_SECONDS:
            self.samples.popleft()


class _MinOverWindow(_MaxOverWindow):
    """The smallest value seen in the last WINDOW_SECONDS."""

    def value(self, now: float, default: float = 0) -> float:
        self._prune(now)
        return min((v for _, v in self.samples), default=default)


class ProcessRegistry:
    """This process's own figures; thread-safe (gthread workers and DICOM associations run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._active_max = _MaxOverWindow()
        self._duration_max = _MaxOverWindow()
        self._timers: dict[str, _MaxOverWindow] = {}
        self._counters: dict[str, int] = {}
        self.http_threads = 0                # set in an HTTP worker (gunicorn post_fork)
        self._http_free = _MinOverWindow()
        self._dicom_threads = 0              # set in a DICOM server process
        self._dicom_busy = 0
        self._dicom_free = _MinOverWindow()

    def rest_request_started(self) -> None:
        with self._lock:
            now = time.time()
            self._active += 1
            self._active_max.add(self._active, now)
            if self.http_threads:
                self._http_free.add(max(0, self.http_threads - self._active), now)

    def rest_request_finished(self, *, duration_ms: float) -> None:
        with self._lock:
            now = time.time()
            self._active -= 1
            self._active_max.add(self._active, now)
            self._duration_max.add(duration_ms, now)
            if self.http_threads:
                self._http_free.add(max(0, self.http_threads - self._active), now)

    def dicom_threads_set(self, threads: int) -> None:
        """This process serves DICOM associations, ``threads`` at once at most (DicomThreadsCount)."""
        with self._lock:
            self._dicom_threads = threads
            self._dicom_free.add(max(0, threads - self._dicom_busy), time.time())

    def dicom_associations(self, busy: int) -> None:
        """The associations this process serves now changed to ``busy``."""
        with self._lock:
            self._dicom_busy = busy
            if self._dicom_threads:
                self._dicom_free.add(max(0, self._dicom_threads - busy), time.time())

    def counter_add(self, *, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + amount

    def duration_add(self, *, name: str, duration_ms: float) -> None:
        """One measure of a timer (the largest of the last WINDOW_SECONDS is reported)."""
        with self._lock:
            window = self._timers.get(name)
            if window is None:
                window = self._timers[name] = _MaxOverWindow()
            window.add(duration_ms, time.time())

    def snapshot(self) -> dict[str, float]:
        """Each metric of AGGREGATION as this process sees it now (the timers it has recorded)."""
        with self._lock:
            now = time.time()
            values: dict[str, float] = {name: 0 for name in ALWAYS}
            values["orthanc_rest_api_active_requests"] = self._active_max.value(now, default=self._active)
            values["orthanc_rest_api_duration_ms"] = round(self._duration_max.value(now), 3)
            for name, window in self._timers.items():
                values[name] = round(window.value(now), 3)
            if self.http_threads:
                values["orthanc_available_http_threads_count"] = self._http_free.value(
                    now, default=max(0, self.http_threads - self._active))
            if self._dicom_threads:
                values["orthanc_available_dicom_threads"] = self._dicom_free.value(
                    now, default=max(0, self._dicom_threads - self._dicom_busy))
            values.update(self._counters)
            return values


registry = ProcessRegistry()


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Record how long the block took under the timer ``name`` (Orthanc's MetricsRegistry::Timer)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        registry.duration_add(name=name, duration_ms=(time.perf_counter() - started) * 1000)


def process_key() -> str:
    """This process among all: host and pid (computed each time: a fork changes the pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def metrics_aggregate(rows: list[tuple[str, dict, float]], *, now: float) -> dict[str, float]:
    """Combine rows (process, values, updated) by AGGREGATION; gauges only from rows updated within LIVE_SECONDS."""
    combined: dict[str, float] = {name: 0 for name in ALWAYS}
    for _process, values, updated in rows:
        live = updated >= now - LIVE_SECONDS
        for name, rule in AGGREGATION.items():
            value = values.get(name)
            if name in OPTIONAL and value is not None:
                combined.setdefault(name, 0)   # reported once by some process: listed from then on
            if value is None or (rule != "counter" and not live):
                continue
            combined[name] = max(combined[name], value) if rule == "max" else combined[name] + value
    return combined


def metrics_collect() -> dict[str, float]:
    """The deployment's figures: every process's row, this process's own figures taken live (not as last
    flushed). One indexed read of a table with one row per process."""
    from archive.models import ProcessMetrics

    me = process_key()
    now = time.time()
    rows = [row for row in ProcessMetrics.objects.values_list("process", "values", "updated") if row[0] != me]
    rows.append((me, registry.snapshot(), now))
    return metrics_aggregate(rows, now=now)


def metrics_flush() -> None:
    """Write this process's figures to its row: one UPDATE, and an INSERT the first time (update_or_create
    ran a transaction of three statements every few seconds in every busy process, each holding SQLite's
    write lock against the stores)."""
    from django.db import IntegrityError, transaction

    from archive.models import ProcessMetrics

    key, values, now = process_key(), registry.snapshot(), time.time()
    if ProcessMetrics.objects.filter(process=key).update(values=values, updated=now):
        return
    try:
        with transaction.atomic():
            ProcessMetrics.objects.create(process=key, values=values, updated=now)
    except IntegrityError:      # metrics_reset or another thread of this process raced us: the row is there now
        ProcessMetrics.objects.filter(process=key).update(values=values, updated=now)


def metrics_retire(*, older_than: float = RETIRE_SECONDS) -> int:
    """Fold the counters of rows not written for ``older_than`` seconds into the row ``retired`` and delete
    them, so the table stays one row per live process. Returns how many rows were folded."""
    from django.db import transaction

    from archive.models import ProcessMetrics

    limit = time.time() - older_than
    with transaction.atomic():
        retired, _ = ProcessMetrics.objects.select_for_update().get_or_create(
            process=RETIRED, defaults={"values": {}, "updated": 0.0})
        # Read after taking the lock on "retired": a concurrent retirer has already deleted what it folded.
        stale = list(ProcessMetrics.objects.filter(updated__lt=limit).exclude(process=RETIRED))
        if not stale:
            return 0
        totals = dict(retired.values)
        for row in stale:
            for name, rule in AGGREGATION.items():
                if rule == "counter" and row.values.get(name):
                    totals[name] = totals.get(name, 0) + row.values[name]
        retired.values = totals
        retired.save(update_fields=["values"])
        ProcessMetrics.objects.filter(process__in=[row.process for row in stale]).delete()
        return len(stale)


def metrics_reset() -> None:
    """Forget every process's figures: ``serve`` does it when it starts the whole server, as Orthanc's counters
    start at zero with the process."""
    from archive.models import ProcessMetrics

    ProcessMetrics.objects.all().delete()


_flusher_pid: int | None = None


def metrics_flusher_start(*, interval: float | None = None) -> None:
    """Start this process's flusher thread (once per process; call it after a fork, e.g. gunicorn post_fork).
    It writes when the figures changed, and every HEARTBEAT_SECONDS while a gauge is not zero (a long request
    keeps its process counted), and every minute anyway (the row must not look retired)."""
    global _flusher_pid
    from django.conf import settings

    interval = float(interval if interval is not None else getattr(settings, "METRICS_FLUSH_SECONDS", 2.0))
    if interval <= 0 or _flusher_pid == os.getpid():
        return
    _flusher_pid = os.getpid()
    threading.Thread(target=_flusher_loop, args=(interval,), name="metrics-flusher", daemon=True).start()


def _flusher_loop(interval: float) -> None:
    from django.db import close_old_connections

    last_values: dict[str, float] | None = None
    last_write = 0.0
    last_retire = time.time()
    while True:
        time.sleep(interval)
        try:
            now = time.time()
            values = registry.snapshot()
            busy = any(values.get(n) for n, rule in AGGREGATION.items() if rule != "counter")
            if (values != last_values or (busy and now - last_write >= HEARTBEAT_SECONDS)
                    or now - last_write >= 60):
                metrics_flush()
                last_values, last_write = values, now
            if now - last_retire >= 60:
                metrics_retire()
                last_retire = now
        except Exception:  # noqa: BLE001 - a metrics write must never take the process down
            logger.debug("metrics flush failed", exc_info=True)
            close_old_connections()
