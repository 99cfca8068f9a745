from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(_worker_spawned, dispatch_uid="jobs.metrics_flusher")


def _worker_spawned(sender, proc_name: str, **kwargs) -> None:
    """Each django-q2 worker process flushes its metrics (instances its jobs store, errors it logs), as the
    HTTP and DICOM server processes do: /tools/metrics-prometheus reads every process's row. Not when a
    synchronous job runs the worker loop in the calling process ("MainProcess": an HTTP worker, which has
    its own flusher, or a test)."""
    from archive.metrics import metrics_flusher_start

    if proc_name != "MainProcess":
        metrics_flusher_start()
