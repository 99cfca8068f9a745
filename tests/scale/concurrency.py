"""Real processes on one archive database, for the concurrency tests of tests/scale (no tests here).

``shared_archive(tmp_path, **orthanc_options)`` makes a migrated index database of its own (on PostgreSQL when
DATABASE_URL names one, else an SQLite file, as the embedded default runs it) with a storage area and an
Orthanc configuration file; ``archive.run(task, n, *args)`` starts ``n`` processes that set Django up on that
database and configuration, wait for each other, then each run ``task(ctx, *args)``. Nothing is shared in
memory: each process has its own Django, connections and storage object, as gunicorn workers, DICOM processes
and qcluster workers do. Requests go through Django's test Client in each process: the whole REST stack
(middleware, views, error bodies) without a socket. Tasks are module-level functions named
``"module:function"``; they return picklable values.

The migrated schema is made once per test process and copied for each test (a PostgreSQL template database,
or a copy of the SQLite file), and the processes fork from a server that set Django up once (``_context``):
a test costs a fraction of a second more than its own work.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = BASE_URL.startswith("postgres")
_template: str | None = None


def _admin_url() -> str:
    return BASE_URL.rsplit("/", 1)[0] + "/postgres"


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(sql)


def _migrate(database_url: str) -> None:
    # In a process forked from the pre-loaded server, like the tests' processes: `manage.py migrate` would
    # import (and here even compile) everything again.
    SharedArchive(Path(tempfile.gettempdir()), database_url, Path(), Path()).one(f"{__name__}:_migrate_task")


def _migrate_task(ctx) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # the whole schema in the main file, which is what gets copied
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _template_database() -> str:
    """A migrated database to copy: a PostgreSQL database name, or an SQLite file path."""
    global _template
    if _template is None:
        if ON_POSTGRES:
            name = f"scale_tpl_{uuid.uuid4().hex[:10]}"
            _pg(f'CREATE DATABASE "{name}"')
            atexit.register(_pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _migrate(BASE_URL.rsplit("/", 1)[0] + "/" + name)
            _template = name
        else:
            folder = tempfile.mkdtemp(prefix="scale-tpl-")
            atexit.register(shutil.rmtree, folder, True)
            path = os.path.join(folder, "index.sqlite3")
            _migrate(f"sqlite:///{path}")
            _template = path
    return _template


@contextlib.contextmanager
def _database(tmp: Path) -> Iterator[str]:
    template = _template_database()
    if not ON_POSTGRES:
        path = tmp / "index" / "index.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    name = f"scale_{uuid.uuid4().hex[:12]}"
    _pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield BASE_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Context:
    """What a task gets: its index among the ``n`` processes, a barrier of all of them, a shared counter."""

    index: int
    n: int
    barrier: Any
    counter: Any
    storage: Path


class SharedArchive:
    def __init__(self, tmp: Path, database_url: str, config_path: Path, storage: Path):
        self.tmp = tmp
        self.database_url = database_url
        self.config_path = config_path
        self.storage = storage

    @property
    def env(self) -> dict[str, str]:
        env = {"DATABASE_URL": self.database_url, "DJANGO_SETTINGS_MODULE": "explorer.settings",
               "LOG_LEVEL": "ERROR"}
        if self.config_path.name:
            env["ORTHANC_CONFIG"] = str(self.config_path)
        return env

    def run(self, task: str, n: int, *args: Any, per_process: list | None = None, after: str | None = None,
            timeout: float = 120) -> list:
        """Run ``task`` in ``n`` fresh processes at once; their results in process order. ``per_process``:
        one extra argument per process (appended after ``args``). ``after``: a task that process 0 runs once
        all are done (its result appended to the list: checks without starting another process). Any error in
        a process fails the call."""
        ctx = _context()
        barrier, counter, queue = ctx.Barrier(n), ctx.Value("i", 0), ctx.Queue()
        procs = []
        for i in range(n):
            extra = (per_process[i],) if per_process is not None else ()
            procs.append(ctx.Process(target=_child, args=(self.env, str(self.storage), task, after, i, n,
                                                          (*args, *extra), barrier, counter, queue)))
        for p in procs:
            p.start()
        results: dict[int, tuple[str, Any]] = {}
        try:
            for _ in range(n):
                index, outcome = queue.get(timeout=timeout)
                results[index] = outcome
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
        errors = [value for kind, value in results.values() if kind == "error"]
        assert not errors, "\n".join(errors)
        out = [results[i][1][0] for i in range(n)]
        return [*out, results[0][1][1]] if after else out

    def one(self, task: str, *args: Any) -> Any:
        return self.run(task, 1, *args)[0]


_WARM = "SCALE_TESTS_FORKSERVER"


def _context():
    """Processes forked from a server process that set Django up and imported every view once: starting
    Django cold costs seconds per process (pydicom's pixel plugins alone ~1.4 s; the whole project is
    compiled again where bytecode is not written), more than the tests themselves. Each child then points
    the settings at its own database and configuration (``_configure``) before it opens any connection."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    os.environ[_WARM] = "1"  # read by this module when the fork server imports it (at the end), not here
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    finally:
        del os.environ[_WARM]
    return ctx


def _warm() -> None:
    """In the fork server: Django set up on a throwaway configuration, no connection opened."""
    folder = tempfile.mkdtemp(prefix="scale-warm-")
    config = Path(folder) / "orthanc.json"
    config.write_text(json.dumps({"StorageDirectory": f"{folder}/storage", "IndexDirectory": f"{folder}/index"}))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "explorer.settings", "ORTHANC_CONFIG": str(config),
                       "DATABASE_URL": f"sqlite:///{folder}/index/index.sqlite3"})
    import django

    django.setup()
    import django.test  # noqa: F401
    import pynetdicom  # noqa: F401
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module


def _configure(env: dict) -> None:
    """Settings for this process's database and Orthanc configuration, as if Django had started with them."""
    os.environ.update(env)
    import django

    if not django.apps.apps.ready:
        django.setup()
        return
    from django.conf import Settings, settings
    from django.core.files.storage import storages
    from django.db import connections

    from archive.settings import reset_archive_settings

    importlib.reload(sys.modules["explorer.settings"])
    settings._wrapped = Settings("explorer.settings")
    connections.__init__()  # no connection object yet, DATABASES read again
    connections.__dict__.pop("settings", None)
    storages.__dict__.pop("backends", None)
    storages._backends = None
    storages._storages = {}
    reset_archive_settings()


def _child(env: dict, storage: str, task: str, after: str | None, index: int, n: int, args: tuple, barrier,
           counter, queue) -> None:
    try:
        _configure(env)
        ctx = Context(index, n, barrier, counter, Path(storage))
        barrier.wait(timeout=60)  # every process set up: the tasks start together
        result = _task(task)(ctx, *args)
        final = None
        if after:
            barrier.wait(timeout=120)
            if index == 0:
                final = _task(after)(ctx)
        outcome: tuple[str, Any] = ("ok", (result, final))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
        outcome = ("error", f"process {index}: {traceback.format_exc()}")
        with contextlib.suppress(Exception):
            barrier.abort()  # the others must not wait for this one
    queue.put((index, outcome))


def _task(name: str):
    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


@contextlib.contextmanager
def shared_archive(tmp: Path, **options: Any) -> Iterator[SharedArchive]:
    storage = tmp / "storage"
    config = {"Name": "scale", "StorageDirectory": str(storage), "IndexDirectory": str(tmp / "index"),
              "RemoteAccessAllowed": True, "AuthenticationEnabled": False, "DicomServerEnabled": False,
              **options}
    config_path = tmp / "orthanc.json"
    config_path.write_text(json.dumps(config))
    with _database(tmp) as database_url:
        yield SharedArchive(tmp, database_url, config_path, storage)


if os.environ.get(_WARM) and mp.parent_process() is None and "multiprocessing.forkserver" in sys.modules:
    _warm()  # imported as the fork server's preload


# -- tasks and checks shared by the tests (run in the processes) ----------------------------------------------

def client():
    from django.test import Client

    return Client(raise_request_exception=False)


def post_instance(data: bytes) -> tuple[int, str]:
    """POST /instances: (HTTP status, the answer's Status or the error body)."""
    response = client().post("/instances", data=data, content_type="application/dicom")
    if response.status_code == 200:
        return 200, response.json()["Status"]
    return response.status_code, response.content.decode(errors="replace")


def inventory(ctx: Context) -> dict:
    """The index and the storage area as they are: counts, running totals against a recount, attachment
    UUIDs against the files on disk, staged leftovers."""
    from archive.models import Attachment, Resource
    from archive.statistics import statistics_count_tables, statistics_totals

    files = {p.name for p in ctx.storage.rglob("*") if p.is_file() and ".incoming" not in p.parts}
    staged = sorted(p.name for p in (ctx.storage / ".incoming").glob("*")) if (ctx.storage / ".incoming").exists() \
        else []
    return {
        "levels": [Resource.objects.filter(level=depth).count() for depth in range(4)],
        "attachments": sorted(Attachment.objects.values_list("uuid", flat=True)),
        "files": sorted(files),
        "staged": staged,
        "totals": statistics_totals().values(),
        "recount": statistics_count_tables().values(),
    }


def assert_consistent(inv: dict) -> None:
    """Every attachment row has its file and every file its row; nothing left staged; totals right."""
    assert inv["attachments"] == inv["files"]
    assert len(set(inv["attachments"])) == len(inv["attachments"])
    assert inv["staged"] == []
    assert inv["totals"] == inv["recount"]
    assert inv["totals"][:4] == tuple(inv["levels"])
