"""Django settings, derived from the Orthanc configuration file and a few deployment variables.

Orthanc's options (ports, folders, users...) come from the file named by ORTHANC_CONFIG (``serve
--config``). Deployment concerns come from the environment: DATABASE_URL (sqlite:///... or
postgres://...), DJANGO_SECRET_KEY, DJANGO_DEBUG, and for scale-out (README "Scale-out"): BROKER_URL
(redis://... for django-q2; unset: the ORM broker), CACHE_URL (redis://...; unset: BROKER_URL's Redis, else
a per-process memory cache), STORAGE_BACKEND=s3 and its S3_* variables, LOG_FORMAT=json, LOG_LEVEL,
METRICS_FLUSH_SECONDS.
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
    "explorer.observability.RequestIdMiddleware",   # first: every later line of the request logs its ID
    "explorer.api.middleware.NoSniffMiddleware",
    "explorer.api.middleware.ContentLengthMiddleware",  # outside every middleware that answers by itself
    "explorer.api.health.HealthMiddleware",         # /health for load balancers, before access control
    "explorer.api.middleware.OrthancPathMiddleware",
    "explorer.api.middleware.OrthancMethodMiddleware",
    "explorer.api.middleware.OrthancAccessMiddleware",
    "explorer.api.middleware.RequestBodyMiddleware",   # MaximumRequestBodySizeMB, chunked bodies
    "explorer.api.middleware.OrthancPatientLevelMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "explorer.api.compression.HttpCompressionMiddleware",   # after WhiteNoise: static files are its own
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
        "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "explorer.ui.context.server_mode"]},
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
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database server must fail a request (and /health) in seconds, not after TCP's minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5")))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "dicom": {
        "BACKEND": "archive.storage.DicomFileStorage",
        "OPTIONS": {"location": ORTHANC["StorageDirectory"], "sync": bool(ORTHANC.get("SyncStorageArea", True))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# -- S3 storage area (scale-out): STORAGE_BACKEND=s3 -----------------------------------------------------------
# django-storages' S3 options; credentials and region left unset fall back to boto3's own chain (environment,
# ~/.aws, instance role). See archive/storage_s3.py for the layout and the two-phase write.
if os.environ.get("STORAGE_BACKEND", "").strip().lower() == "s3":
    STORAGES["dicom"] = {
        "BACKEND": "archive.storage_s3.S3DicomStorage",
        "OPTIONS": {
            "bucket_name": os.environ["S3_BUCKET"],
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_DEFAULT_REGION") or None,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            "location": os.environ.get("S3_PREFIX", "").strip("/"),
            "recover_grace": float(os.environ.get("S3_RECOVER_GRACE", "300")),
        },
    }
# -- end of S3 storage area ---------------------------------------------------------------------------------------

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
    # The ORM broker is woken by whoever queues a task (jobs/broker.py), not polled: django-q2's own sleep
    # between polls is off ("poll" 0).
    "broker_class": "jobs.broker.WakeableORM",
    "poll": 0,
    # A modification job forks worker processes of its own (jobs.kinds.copies): daemonic processes may not.
    "daemonize_workers": False,
}
# BROKER_URL=redis://host:port/db puts the job queue in Redis (django-q2 passes a URL string to redis.from_url);
# unset (or "orm") keeps the ORM broker on the default database, which needs nothing more and is polled.
BROKER_URL = os.environ.get("BROKER_URL", "").strip()
if BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
    del Q_CLUSTER["orm"], Q_CLUSTER["poll"], Q_CLUSTER["broker_class"]
    Q_CLUSTER["redis"] = BROKER_URL
elif BROKER_URL not in ("", "orm"):
    sys.stderr.write(f"E: BROKER_URL must be redis://... or unset (the ORM broker), not {BROKER_URL!r}\n")
    raise SystemExit(2)

# A cache shared by every process when there is a Redis (CACHE_URL, else the broker's); otherwise each process
# has its own memory cache, which is right for the embedded default. Nothing may rely on a cache being shared.
_cache_url = os.environ.get("CACHE_URL", "").strip() or (BROKER_URL if BROKER_URL.startswith("redis") else "")
if _cache_url.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url,
                          "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "explorer")}}
elif _cache_url:
    sys.stderr.write(f"E: CACHE_URL must be redis://... or unset, not {_cache_url!r}\n")
    raise SystemExit(2)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Each server process writes its REST figures for /tools/metrics-prometheus this often (archive/metrics.py).
METRICS_FLUSH_SECONDS = float(os.environ.get("METRICS_FLUSH_SECONDS", "2"))

# Every line carries the request ID (``-`` outside a request); LOG_FORMAT=json gives one JSON object per line
# (ts, level, logger, message, request_id, pid) for log shippers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "explorer.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(levelname).1s %(asctime)s %(process)d %(request_id)s %(name)s] %(message)s"},
        "json": {"()": "explorer.observability.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"],
                             "formatter": "json" if os.environ.get("LOG_FORMAT") == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
