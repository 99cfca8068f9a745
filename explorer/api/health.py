"""GET /health: may a load balancer send requests to this process? (Not an Orthanc route: Orthanc 1.12.11 has
no /health, so it cannot collide with a client's expectations.)

200 ``{"Status": "OK", "Checks": {"Database": "OK", "Storage": "OK"}, "Process": "host:pid"}`` when the database
answers ``SELECT 1`` and the storage area is reachable (the folder is there and writable, or the S3 bucket
answers HEAD); 503 with ``"Status": "Unavailable"`` and the part that failed otherwise. Each check is one
round trip, no table is read. When BROKER_URL is Redis the broker is checked and reported too, but does not
decide the status: an HTTP process without its broker still serves reads and uploads, and a load balancer
that dropped every node for a Redis outage would turn a degraded service into none.

No authentication and no RemoteAccessAllowed check (``HealthMiddleware`` answers before access control): load
balancers and orchestrators probe without credentials, and the answer says nothing but OK/Failed per part;
the reason of a failure goes to the log, with the request ID, not to the anonymous caller.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from archive.metrics import process_key

logger = logging.getLogger(__name__)

HEALTH_PATH = "/health"
TIMEOUT_SECONDS = 3


def _database_check() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # A dead connection stays dead until closed: let the next probe open a new one.
        connection.close()
        raise


@functools.cache
def _s3_client(endpoint_url: str | None, region_name: str | None, access_key: str | None,
               secret_key: str | None):
    # A client of its own with short timeouts and no retries: the storage's client may wait a minute.
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key,
                        config=Config(connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS,
                                      retries={"max_attempts": 1}))


def _storage_check() -> None:
    storage = storages["dicom"]
    bucket_name = getattr(storage, "bucket_name", None)
    if bucket_name:
        client = _s3_client(getattr(storage, "endpoint_url", None), getattr(storage, "region_name", None),
                            getattr(storage, "access_key", None), getattr(storage, "secret_key", None))
        client.head_bucket(Bucket=bucket_name)
        return
    location = getattr(storage, "location", None)
    if not location or not os.path.isdir(location) or not os.access(location, os.W_OK | os.X_OK):
        raise OSError(f"storage area {location} is not a writable folder")


def _broker_check() -> None:
    import redis

    redis.from_url(settings.BROKER_URL, socket_timeout=TIMEOUT_SECONDS,
                   socket_connect_timeout=TIMEOUT_SECONDS).ping()


def health_checks() -> tuple[bool, dict[str, str]]:
    """Run the checks: (healthy, {part: "OK" | "Failed"}). Healthy means the database and the storage pass."""
    checks: dict[str, Callable[[], None]] = {"Database": _database_check, "Storage": _storage_check}
    if getattr(settings, "BROKER_URL", "").startswith(("redis://", "rediss://", "unix://")):
        checks["Broker"] = _broker_check
    results: dict[str, str] = {}
    for part, check in checks.items():
        try:
            check()
            results[part] = "OK"
        except Exception as exc:  # noqa: BLE001 - any failure of a part is that part being unhealthy
            logger.warning("health: %s check failed: %s: %s", part.lower(), type(exc).__name__, exc)
            results[part] = "Failed"
    healthy = results["Database"] == "OK" and results["Storage"] == "OK"
    return healthy, results


def health(request: HttpRequest) -> HttpResponse:
    healthy, results = health_checks()
    body = {"Status": "OK" if healthy else "Unavailable", "Checks": results, "Process": process_key()}
    response = JsonResponse(body, status=200 if healthy else 503, json_dumps_params={"indent": 3})
    response["Cache-Control"] = "no-store"
    if request.method == "HEAD":
        response.content = b""
    return response


class HealthMiddleware:
    """Answers GET/HEAD /health before Orthanc's method and access middlewares (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)


urlpatterns = [
    # Reached only if HealthMiddleware is left out of MIDDLEWARE; then access control applies as elsewhere.
    path("health", health),
]
