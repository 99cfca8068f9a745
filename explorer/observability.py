"""Request IDs and structured logs of every server process (the metrics are archive/metrics.py's).

Request IDs: ``RequestIdMiddleware`` takes ``X-Request-ID`` from the request (a load balancer or a client
may set it) or makes one, answers it in the same header and keeps it in a context variable, so that
``RequestIdFilter`` can put it on every log record of that request (``%(request_id)s``; ``-`` outside a
request). ``LOG_FORMAT=json`` selects ``JsonFormatter``: one JSON object per line with ts, level, logger,
message, request_id and pid (and ``exc`` when there is a traceback).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from archive.metrics import registry

logger = logging.getLogger(__name__)

# -- request IDs -----------------------------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# What we accept from outside: IDs of the usual generators (UUIDs, AWS/nginx/Heroku styles), nothing that could
# break a log line or a header.
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,200}")


def request_id_from_header(value: str | None) -> str:
    """The client's ID when it is a sane token, else a new one (32 hex digits)."""
    if value and _REQUEST_ID_RE.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _request_id_clear(**kwargs) -> None:
    # request_finished comes after Django's own "Not Found: ..." line, so that line still carries the ID.
    request_id_var.set("-")


request_finished.connect(_request_id_clear, dispatch_uid="explorer.observability.request_id_clear")


class RequestIdMiddleware:
    """First in MIDDLEWARE: every later middleware, view and log line of the request sees the ID. Also times
    the request for orthanc_rest_api_active_requests and orthanc_rest_api_duration_ms (not /health, which
    load balancers poll and which Orthanc does not have)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from_header(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        request_id_var.set(request_id)
        counted = request.path_info.rstrip("/") != "/health"
        if counted:
            registry.rest_request_started()
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            if counted:
                registry.rest_request_finished(duration_ms=(time.perf_counter() - started) * 1000)
        response[REQUEST_ID_HEADER] = request_id
        return response


# -- logs --------------------------------------------------------------------------------------------------------

class RequestIdFilter(logging.Filter):
    """Put the current request ID on the record; count the warnings and errors that get logged
    (orthanc_logged_warnings_count, orthanc_logged_errors_count, new in Orthanc 1.12.11)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if record.levelno >= logging.ERROR:
            registry.counter_add(name="orthanc_logged_errors_count")
        elif record.levelno >= logging.WARNING:
            registry.counter_add(name="orthanc_logged_warnings_count")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601 with milliseconds), level, logger, message, request_id, pid."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
