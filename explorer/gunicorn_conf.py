"""gunicorn settings shared by ``manage.py serve`` and the Procfile (``gunicorn -c python:explorer.gunicorn_conf``):
gthread workers (explorer.http_worker), and in each worker the metrics flusher (archive/metrics.py), started after the fork
because a thread does not survive one. Command-line options override what is set here."""

from __future__ import annotations

import os

worker_class = "explorer.http_worker.LingeringThreadWorker"   # gthread, serving a next request at once
threads = int(os.environ.get("HTTP_THREADS", "4"))
keepalive = 30
loglevel = "warning"
accesslog = "-" if os.environ.get("ACCESS_LOG") else None


def post_fork(server, worker) -> None:
    from archive.metrics import metrics_flusher_start, registry

    registry.http_threads = worker.cfg.threads   # orthanc_available_http_threads_count
    metrics_flusher_start()
