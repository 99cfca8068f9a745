"""Django settings, derived from the Orthanc configuration file and a few deployment variables.

Orthanc's options (ports, folders, users...) come from the file named by ORTHANC_CONFIG (``serve
--config``). Deployment concerns come from the environment: DATABASE_URL (sqlite:///... or
postgres://...), DJANGO_SECRET_KEY, DJANGO_DEBUG.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

from explorer.config import ConfigurationError, load_configuration

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    ORTHANC = load_configuration(os.environ.get("ORTHANC_CONFIG") or None)
except ConfigurationError as exc:
    sys.stderr.write(f"E: {exc}\n")
    raise SystemExit(2) from exc

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-development-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]  # Orthanc answers on any Host header; access is governed by RemoteAccessAllowed

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "archive",
    "jobs",
    "explorer",
]

MIDDLEWARE = [
    "explorer.api.middleware.OrthancPathMiddleware",
    "explorer.api.middleware.OrthancMethodMiddleware",
    "explorer.api.middleware.OrthancAccessMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "explorer.api.middleware.OrthancErrorMiddleware",
]

ROOT_URLCONF = "explorer.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

WSGI_APPLICATION = "explorer.wsgi.application"

_index_dir = Path(ORTHANC["IndexDirectory"])
_default_db = f"sqlite:///{_index_dir / 'index.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db), conn_max_age=600)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        # Several worker processes write: WAL lets readers go on, IMMEDIATE takes the write lock up front
        # (no deadlocking upgrade from a read lock), and the busy timeout queues writers instead of failing.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                        " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_SQLITE_NAME") or None}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "dicom": {
        "BACKEND": "archive.storage.DicomFileStorage",
        "OPTIONS": {"location": ORTHANC["StorageDirectory"], "sync": bool(ORTHANC.get("SyncStorageArea", True))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / ".staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve static/ directly: no collectstatic step for the embedded default

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

# A DICOM upload can be large: Orthanc accepts bodies of any size by default.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
DATA_UPLOAD_MAX_NUMBER_FILES = 10000
FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["explorer.api.rendering.OrthancJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
    "EXCEPTION_HANDLER": "explorer.api.errors.drf_exception_handler",
}

Q_CLUSTER = {
    "name": "explorer",
    "orm": "default",
    "workers": int(ORTHANC.get("ConcurrentJobs", 2) or 2),
    "timeout": 3600,
    "retry": 3700,
    "catch_up": False,
    # The ORM broker is polled: its default 0.2 s added that much to every job (bench/jobs.py: 200 small
    # jobs ran at 10/s); 0.05 s costs an indexed read 20 times a second when idle.
    "poll": 0.05,
    # A modification job forks worker processes of its own (jobs.kinds.copies): daemonic processes may not.
    "daemonize_workers": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname).1s %(asctime)s %(name)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
