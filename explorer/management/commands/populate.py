"""``manage.py populate --count N [--workers K] [--seed S]``: fill the configured archive with N synthetic
instances through the real ingest path (archive/populate.py), in K processes, printing progress and rate.

Each worker is a forked process with its own database connection; on SQLite they queue on the write lock
(WAL, IMMEDIATE transactions, busy timeout), on PostgreSQL they write side by side. Running it again with
the same seed completes an interrupted run: stored instances answer AlreadyStored.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from archive.populate import Shape, populate_worker

PROGRESS_SECONDS = 5.0


def _run_worker(shape: Shape, seed: int, worker: int, workers: int, updates: multiprocessing.Queue) -> None:
    # Forked: the parent closed its connections before forking, so Django opens a fresh one here.
    stored, already = populate_worker(shape=shape, seed=seed, worker=worker, workers=workers,
                                      progress=updates.put)
    updates.put(("done", worker, stored, already))
    connections.close_all()


def _after_bulk_load() -> None:
    """On PostgreSQL, what autovacuum would do some time after a bulk load, done now: planner statistics and
    the visibility map, without which index-only scans read the table (GET /studies?since=50000&limit=100 at
    a million instances: 860 ms before VACUUM, 14 ms after). SQLite keeps no such state: the find plans are
    tuned without ANALYZE statistics, as an archive filled over REST has none."""
    if connection.vendor != "postgresql":
        return
    # VACUUM cannot run in a transaction (a caller's atomic block, the tests'): statistics only, then.
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for model in apps.get_app_config("archive").get_models():
            cursor.execute(f"{command} {model._meta.db_table}")


class Command(BaseCommand):
    help = "Fill the archive with N synthetic instances (no pixel data) through the ingest path."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="number of instances")
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
        parser.add_argument("--seed", type=int, default=0, help="same seed, same files")

    def handle(self, *args, **options):
        count, workers, seed = options["count"], options["workers"], options["seed"]
        if count < 1 or workers < 1 or seed < 0:
            raise CommandError("--count and --workers must be positive, --seed not negative")
        shape = Shape.for_count(count)
        workers = min(workers, shape.patients)
        self.stdout.write(f"populate: {count} instances = {shape.patients} patients, {shape.studies} studies, "
                          f"{shape.series} series; seed {seed}; {workers} worker(s)")
        start = time.perf_counter()
        if workers == 1:
            # In-process: simplest to debug, and what the tests run (they cannot see a forked writer's rows).
            done = 0
            last = start

            def progress(n: int) -> None:
                nonlocal done, last
                done += n
                if time.perf_counter() - last >= PROGRESS_SECONDS:
                    last = time.perf_counter()
                    self._progress(done, count, start)

            stored, already = populate_worker(shape=shape, seed=seed, worker=0, workers=1, progress=progress)
        else:
            stored, already = self._parallel(shape, seed, workers, start)
        seconds = time.perf_counter() - start
        self.stdout.write(f"populate: {stored} stored, {already} already there, in {seconds:.1f} s "
                          f"({(stored + already) / seconds:.0f} instances/s)")
        start = time.perf_counter()
        _after_bulk_load()
        self.stdout.write(f"populate: statistics and visibility updated in {time.perf_counter() - start:.1f} s")

    def _parallel(self, shape: Shape, seed: int, workers: int, start: float) -> tuple[int, int]:
        connections.close_all()  # never share a connection (or an SQLite handle) with forked children
        ctx = multiprocessing.get_context("fork")
        updates = ctx.Queue()
        procs = [ctx.Process(target=_run_worker, args=(shape, seed, k, workers, updates), daemon=True)
                 for k in range(workers)]
        for proc in procs:
            proc.start()
        done = stored = already = finished = 0
        last = start
        try:
            while finished < workers:
                # Checked on every message: the other workers' progress keeps the queue busy.
                failed = [p for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise CommandError(f"a worker failed (exit status {failed[0].exitcode})")
                try:
                    message = updates.get(timeout=1.0)
                except queue.Empty:
                    continue
                if isinstance(message, tuple):
                    finished += 1
                    stored += message[2]
                    already += message[3]
                else:
                    done += message
                if time.perf_counter() - last >= PROGRESS_SECONDS:
                    last = time.perf_counter()
                    self._progress(done, shape.instances, start)
        finally:
            for proc in procs:
                if proc.is_alive() and finished < workers:
                    proc.terminate()
                proc.join(timeout=30)
        return stored, already

    def _progress(self, done: int, total: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        rate = done / elapsed if elapsed else 0.0
        eta = (total - done) / rate if rate else 0.0
        self.stdout.write(f"  {done}/{total} instances, {rate:.0f}/s, {elapsed:.0f} s elapsed, ~{eta:.0f} s left")
        self.stdout.flush()
