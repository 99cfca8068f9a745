"""``manage.py serve [--config orthanc.json]``: everything the configuration asks for, started and stopped
together: the HTTP server (gunicorn, several workers), the job workers (django-q2's qcluster on the ORM
broker, ConcurrentJobs of them), the housekeeper (stable resources, storage recovery), and the DICOM SCP
(``manage.py dicomserver``, several processes on DicomPort) when DicomServerEnabled is true.

Roles: ``--no-http``, ``--no-dicom``, ``--no-jobs`` (or ``ROLES=http,dicom,jobs``, any subset) leave a part out,
so that a scale-out deployment can run the parts as separate processes (see the Procfile); HttpServerEnabled
and DicomServerEnabled false in the configuration file leave theirs out too. The housekeeper (and the storage
recovery at start) runs in every ``serve``: a deployment runs exactly one ``serve`` (the Procfile's
``housekeeper``, with every part left out) and starts the other processes directly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from archive.housekeeping import housekeeper_tick, storage_recover
from archive.settings import archive_settings
from explorer.http_binds import http_binds

logger = logging.getLogger(__name__)
ALL_ROLES = frozenset({"http", "dicom", "jobs"})
SERVE_PID_VARIABLE = "EXPLORER_SERVE_PID"   # in the environment of every process serve starts
RESTART_SIGNAL = signal.SIGUSR1             # SIGTERM stops serve; this stops it and starts it again
JOBS_WATCH_SECONDS = 5   # jobs.watchdog: a job lost by its worker is started again within two passes


def _jobs_watch() -> None:
    """Requeue jobs whose run was lost (jobs.watchdog); never raises, like housekeeper_tick."""
    from django.db import OperationalError

    from jobs.watchdog import jobs_orphans_requeue

    try:
        requeued = jobs_orphans_requeue()
        if requeued:
            logger.warning("jobs: %d job(s) lost by their worker started again", requeued)
    except OperationalError as exc:
        logger.info("jobs watchdog: database busy (%s); retrying later", exc)
    except Exception:
        logger.exception("jobs watchdog failed")


def _roles(options) -> frozenset[str]:
    """The parts to start: ROLES (comma-separated) if set, else all; minus the --no-* flags."""
    text = os.environ.get("ROLES", "").strip()
    roles = {r.strip().lower() for r in text.split(",") if r.strip()} if text else set(ALL_ROLES)
    unknown = roles - ALL_ROLES
    if unknown:
        raise CommandError(f"ROLES: unknown role(s) {', '.join(sorted(unknown))} (known: http, dicom, jobs)")
    for role in ALL_ROLES:
        if options.get(f"no_{role}"):
            roles.discard(role)
    return frozenset(roles)


def _check_migrated() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError("ReadOnly is true but the database is not ready (it needs migrations): start once "
                           "without ReadOnly, or run manage.py migrate")


class Command(BaseCommand):
    help = ("Start the Orthanc-compatible server (HTTP, housekeeping). --config FILE (read by manage.py "
            "for every command) names the Orthanc configuration file or folder.")

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=int(os.environ.get("HTTP_WORKERS", "0")) or None)
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument("--no-jobs", action="store_true", help="do not start the job workers (django-q2)")
        parser.add_argument("--no-http", action="store_true", help="do not start the HTTP server")
        parser.add_argument("--no-dicom", action="store_true", help="do not start the DICOM server")
        parser.add_argument("--dicom-processes", type=int,
                            default=int(os.environ.get("DICOM_PROCESSES", "0")) or None,
                            help="processes of the DICOM server (default: one per CPU, at least "
                                 "min(DicomThreadsCount, 4))")

    def handle(self, *args, **options):
        cfg = settings.ORTHANC
        roles = _roles(options)
        read_only = archive_settings().read_only
        if read_only:
            # ReadOnly (1.12.5): the database is used as it is, never migrated; one that needs it cannot be served
            _check_migrated()
        elif not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        if roles == ALL_ROLES:
            from archive.metrics import metrics_reset

            metrics_reset()   # the whole server starts: its per-process metrics start at zero, as Orthanc's
        from archive.errors import ArchiveError
        from archive.network.registry import registry_check, registry_reset

        try:
            registry_check()   # as Orthanc, which does not start with a malformed modality or peer
        except ArchiveError as exc:
            raise CommandError(f"The configuration's modalities or peers: {exc.details or exc}") from None
        registry_reset()  # REST-made modalities and peers last until the server stops, unless *InDatabase
        binds = http_binds(cfg)     # a bad HttpBindAddresses stops the start before any process is started
        if not read_only:
            published, discarded = storage_recover()
            if published or discarded:
                self.stdout.write(f"storage recovery: {published} staged files published, {discarded} discarded")

        children: list[subprocess.Popen] = []
        # POST /tools/reset and /tools/shutdown (explorer.api.tools) signal this process
        os.environ[SERVE_PID_VARIABLE] = str(os.getpid())
        if "jobs" in roles:
            from jobs.engine import jobs_recover

            # Jobs left running by the last stop start again (SaveJobs), before any worker can take them.
            recovered = jobs_recover()
            if recovered:
                self.stdout.write(f"jobs: {recovered} interrupted job(s) recovered")
            children.append(subprocess.Popen([sys.executable, "manage.py", "qcluster"], env=os.environ.copy(),
                                             cwd=settings.BASE_DIR, start_new_session=False))
            self.stdout.write(f"job workers started ({settings.Q_CLUSTER['workers']} concurrent jobs)")
        if "dicom" in roles and cfg.get("DicomServerEnabled", True):
            dicom = [sys.executable, "manage.py", "dicomserver"]
            if options["dicom_processes"]:
                dicom += ["--processes", str(options["dicom_processes"])]
            children.append(subprocess.Popen(dicom, env=os.environ.copy(), cwd=settings.BASE_DIR))
            self.stdout.write(f"DICOM server {cfg.get('DicomAet', 'ORTHANC')} on port {cfg.get('DicomPort', 4242)}")
        if "http" in roles and cfg.get("HttpServerEnabled", True):
            workers = options["workers"] or max(2, (os.cpu_count() or 1) * 2)
            cmd = [sys.executable, "-m", "gunicorn", "explorer.wsgi:application",
                   # worker class, threads, keep-alive, log level, access log and the per-worker metrics
                   # flusher: as the Procfile's web processes
                   "--config", "python:explorer.gunicorn_conf",
                   *(arg for bind in binds for arg in ("--bind", bind)), "--workers", str(workers), "--preload",
                   "--timeout", str(int(cfg.get("HttpRequestTimeout", 30)) * 20)]
            children.append(subprocess.Popen(cmd, env=os.environ.copy()))
            self.stdout.write(f"HTTP server listening on {', '.join(binds)} ({workers} workers)")

        stopping = False
        failed = False      # a child died on its own: serve exits with an error status, as Orthanc does
        restart = False     # POST /tools/reset: everything stops, then starts again from the configuration

        def stop(signum, frame):
            nonlocal stopping, restart
            stopping = True
            restart = restart or signum == RESTART_SIGNAL

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(RESTART_SIGNAL, stop)
        last_watch = time.monotonic()
        try:
            while not stopping:
                for child in children:
                    if child.poll() is not None:
                        self.stderr.write(f"a server process exited with status {child.returncode}; stopping")
                        stopping = failed = True
                if not stopping:
                    housekeeper_tick()
                    if time.monotonic() - last_watch >= JOBS_WATCH_SECONDS:
                        last_watch = time.monotonic()
                        _jobs_watch()
                    time.sleep(1)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            deadline = time.time() + 10
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    child.kill()
        if failed:
            raise CommandError("stopped: a server process failed (see above)")
        if restart:
            # As Orthanc's reset: the configuration file is read again and the server starts anew, in this
            # very process (a service manager keeps seeing the same PID). Descriptors close on exec (PEP 446).
            self.stdout.write("restarting (POST /tools/reset)")
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, *sys.argv])
