"""gunicorn settings shared by ``manage.py serve`` and the Procfile (``gunicorn -c python:explorer.gunicorn_conf``):
gthread workers (explorer.http_worker), and in each worker the metrics flusher (archive/metrics.py), started after the fork
because a thread does not survive one. Command-line options override what is set here."""

from __future__ import annotations

import os

worker_class = "explorer.http_worker.LingeringThreadWorker"   # gthread, serving a next request at once
threads = int(os.environ.get("HTTP_THREADS", "4"))
keepalive = 30
loglevel = "warning"
accesslog = "-" if os.environ.get("ACCESS_LOG") else None   # none at all, not one formatted to /dev/null


def _bind() -> list[str]:
    # The configuration's HttpBindAddresses on its HttpPort: the Procfile's web processes listen where
    # `serve` would (serve, and the tests, pass --bind, which wins over this)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
    from django.conf import settings

    from explorer.http_binds import http_binds

    return http_binds(settings.ORTHANC)


bind = _bind()


def on_starting(server) -> None:
    from explorer import http_worker

    http_worker.loads_create(2 * max(1, server.num_workers))     # room for workers added by TTIN


def pre_fork(server, worker) -> None:
    # The worker's place in the shared connection counts (explorer.http_worker): one no live worker holds
    from explorer import http_worker

    worker.slot = http_worker.slot_free({w.slot for w in server.WORKERS.values() if getattr(w, "slot", None) is not None})
    if worker.slot is not None:
        http_worker.loads[worker.slot] = 0


def child_exit(server, worker) -> None:
    from explorer import http_worker

    if getattr(worker, "slot", None) is not None and http_worker.loads is not None:
        http_worker.loads[worker.slot] = -1


def post_fork(server, worker) -> None:
    from archive.metrics import metrics_flusher_start, registry

    registry.http_threads = worker.cfg.threads   # orthanc_available_http_threads_count
    metrics_flusher_start()


# Objects allocated (container objects, net) between two collections of the youngest generation: Python's 700
# makes a big answer (the tags of a 500-frame enhanced MR or a long structured report: ~200,000 dicts and lists)
# run hundreds of collections, each walking what survived the last ones. Measured on a structured report's
# /tags: 170 ms with Python's settings, 120 ms with the start-up frozen, 98 ms frozen with 10,000 (80 ms without
# any collection).
GC_YOUNG_THRESHOLD = 10_000


def post_worker_init(worker) -> None:
    # What the worker loaded (Django, the URLconf and its views, pydicom's dictionaries) lives as long as it:
    # frozen, it is walked by no collection, as in the DICOM server (dicomserver.py)
    import gc
    from importlib import import_module

    from django.conf import settings

    import_module(settings.ROOT_URLCONF)   # the views' modules, loaded now rather than by the first request
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
