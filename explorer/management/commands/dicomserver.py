"""``manage.py dicomserver [--processes N] [--port P]``: the DICOM SCP alone (``serve`` starts it as a child
when DicomServerEnabled is true; for scale-out, run it on any number of hosts against the shared database).

One process binds DicomPort (with SO_REUSEPORT, so other ``dicomserver`` commands may share it), then forks
N workers that all accept on that socket; a worker that serves more associations than another lets it
accept first (archive/network/scp.py). A worker that dies is started again. SIGTERM/SIGINT stop them all.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from archive.errors import ArchiveError

GIL_SWITCH_INTERVAL = 0.0005    # seconds (Python's default: 0.005)


def default_processes(threads: int) -> int:
    """One process per CPU, and at least one per association Orthanc serves at once (DicomThreadsCount, up
    to 4, Orthanc's default): Python runs one thread at a time per process, so where Orthanc serves four
    associations on four threads we serve them in four processes (+5-10% C-STORE ingest with 4 storescu on
    2 CPUs against 2 processes, for ~20 MB PSS per process; bench/network.py)."""
    return max(os.cpu_count() or 1, min(threads, 4))


class Command(BaseCommand):
    help = "Run the DICOM server (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET, storage commitment) on DicomPort."

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int,
                            default=int(os.environ.get("DICOM_PROCESSES", "0")) or None,
                            help="worker processes sharing the port (default: one per CPU, at least "
                                 "min(DicomThreadsCount, 4))")
        parser.add_argument("--port", type=int, default=None, help="instead of DicomPort")
        parser.add_argument("--host", default="0.0.0.0")

    def handle(self, *args, **options):
        from archive.malloc_tuning import DICOM_TRIM_THRESHOLD, malloc_tune
        from archive.network.scp import ScpSettings, server_build

        malloc_tune(trim_threshold=DICOM_TRIM_THRESHOLD)    # before the fork: the workers inherit it

        try:
            scp = ScpSettings.from_configuration()
            processes = max(1, options["processes"] or default_processes(scp.threads))
            loads = multiprocessing.Array("i", processes, lock=False)   # shared memory, inherited by fork
            # The server is built (socket bound) once, here; each worker inherits it and serves it.
            server = server_build(scp=scp, host=options["host"], port=options["port"], loads=loads, slot=0)
        except ArchiveError as exc:      # a configuration error (DICOM TLS files...): say it, as Orthanc does
            raise CommandError(f"The DICOM server cannot start: {exc}") from None
        port = server.server_address[1]
        self.stdout.write(f"DICOM server {scp.aet} listening on port {port} ({processes} processes)")
        self.stdout.flush()
        connections.close_all()   # no database connection may cross a fork
        # What start-up built (Django, pydicom's dictionaries) lives as long as the process: keep it out of every
        # collection, so full collections stay short and do not write to pages the forked workers share.
        gc.freeze()

        if processes == 1:
            self._serve(server, 0)
            return
        workers: dict[int, int] = {}   # pid -> slot

        def spawn(slot: int) -> None:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    self._serve(server, slot)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            workers[pid] = slot

        for slot in range(processes):
            spawn(slot)
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while not stopping:
                try:
                    pid, _status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid and pid in workers:
                    slot = workers.pop(pid)
                    loads[slot] = 0
                    if not stopping:
                        self.stderr.write(f"DICOM worker {pid} exited; starting another")
                        spawn(slot)
                time.sleep(0.2)
        finally:
            for pid in list(workers):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 10
            for pid in list(workers):
                while time.time() < deadline:
                    try:
                        done, _ = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if done:
                        break
                    time.sleep(0.05)
                else:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            server.server_close()

    @staticmethod
    def _serve(server, slot: int) -> None:
        from archive.metrics import metrics_flusher_start

        stop = threading.Event()
        # A worker's threads hand each request on to one another (DUL, association, file staging): with
        # Python's 5 ms switch interval the one woken waits for the GIL until the holder blocks. 0.5 ms:
        # association set-up -0.4 ms, C-STORE ingest +5-8% at 1 and 4 associations (bench/network.py).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        server.slot = slot
        metrics_flusher_start()   # this worker's logged errors and warnings count in /tools/metrics-prometheus

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            server.serve(stop)
        finally:
            for assoc in server.active_associations:
                assoc.abort()
            sys.stdout.flush()
