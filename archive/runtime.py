"""Options that can change while the server runs (PUT /tools/...), shared by every worker process
through the database, with Orthanc's configuration as the starting value."""

from __future__ import annotations

import logging

from django.conf import settings

from archive.models import GlobalProperty

LOG_LEVELS = {"default": logging.WARNING, "verbose": logging.INFO, "trace": logging.DEBUG}
LOG_CATEGORIES = ("dicom", "generic", "http", "jobs", "lua", "plugins", "sqlite")


def _defaults() -> dict[str, str]:
    cfg = settings.ORTHANC
    return {
        "DefaultEncoding": str(cfg.get("DefaultEncoding", "Latin1")),
        "UnknownSopClassAccepted": "1" if cfg.get("UnknownSopClassAccepted") else "0",
        "MetricsEnabled": "1" if cfg.get("MetricsEnabled", True) else "0",
        "LogLevel": "default",
    }


def runtime_get(key: str) -> str:
    row = GlobalProperty.objects.filter(key=key).values_list("value", flat=True).first()
    if row is not None:
        return row
    if key.startswith("LogLevel-"):
        return runtime_get("LogLevel")
    return _defaults().get(key, "")


def runtime_set(key: str, value: str) -> None:
    """Set a runtime option for every process; idempotent."""
    GlobalProperty.objects.update_or_create(key=key, defaults={"value": value})


def apply_log_level(level: str, category: str | None = None) -> None:
    name = "archive.network" if category == "dicom" else ("django.request" if category == "http" else None)
    logging.getLogger(name).setLevel(LOG_LEVELS[level])
