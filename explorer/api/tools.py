"""/tools/...: clock, UIDs, encodings, transfer syntaxes, log levels, metrics, lookup (Orthanc's
OrthancRestSystem.cpp and the lookup of OrthancRestResources.cpp).

Runtime options (PUT) are stored through ``archive.runtime`` so that every worker process sees them.
Text answers are ``text/plain`` with no charset, as Orthanc sends them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
import uuid
import zoneinfo
from pathlib import Path

from django.core.signals import request_started
from django.http import HttpResponse
from django.urls import path
from pydicom.uid import generate_uid

from archive import attachments, changes, runtime, selectors
from archive.errors import BadFileFormat, NotImplementedYet, ParameterOutOfRange
from archive.levels import Level
from archive.metrics import OPTIONAL, metrics_collect
from archive.read_only import read_only
from archive.statistics import global_statistics
from explorer.api.base import OrthancView
from explorer.api.rendering import bare_response, json_response, text_response

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
CONFORMANCE = Path(__file__).with_name("conformance.txt")


def _body(request) -> str:
    return request._request.body.decode("utf-8", "replace")


def _process_started_at() -> float:
    """When this process started (Linux: from /proc), else when this module was imported. Every worker
    starts with the server, so this is the server's uptime as far as a worker can tell."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


STARTED_AT = _process_started_at()


def _local_zone() -> dt.tzinfo:
    # Django sets TZ to its TIME_ZONE (UTC) at start; the machine's zone is still in /etc/localtime.
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f)
    except (OSError, ValueError):
        return dt.UTC


def _sync_log_levels(**_kwargs) -> None:
    runtime.logging_sync()


# A PUT /tools/log-level reaches one gunicorn worker; the others pick the stored levels up when a request
# starts (one small query at most every few seconds per worker). Only under gunicorn: a single process
# (runserver, tests) applies the PUT itself, and its requests keep their exact query counts.
if "gunicorn" in sys.modules:
    request_started.connect(_sync_log_levels, dispatch_uid="explorer.api.tools.sync_log_levels")


class ToolsApi(OrthancView):
    """GET /tools: the operations registered under /tools, sorted, as Orthanc lists its URI children (under
    ReadOnly, not those whose only methods are unregistered: bulk-delete, invalidate-tags, reconstruct)."""

    def get(self, request):
        from explorer.api.urls import flat_urlpatterns

        names = set()
        for pattern in flat_urlpatterns:
            route = str(pattern.pattern)
            if route.startswith("tools/"):
                name = route.split("/")[1]
                if name and not name.startswith("<") and _registered_now(pattern):
                    names.add(name)
        return json_response(sorted(names))


def _registered_now(pattern) -> bool:
    view = getattr(pattern.callback, "view_class", None)
    if view is None or not view.read_only_absent or not read_only():
        return True
    initkwargs = getattr(pattern.callback, "view_initkwargs", {})
    return bool(view(**initkwargs).allowed_methods_now())


class NowApi(OrthancView):
    local = False

    def get(self, request):
        now = dt.datetime.now(_local_zone() if self.local else dt.UTC)
        return text_response(now.strftime("%Y%m%dT%H%M%S"))


class GenerateUidApi(OrthancView):
    def get(self, request):
        level = request.GET.get("level", "")
        if level == "patient":
            return text_response(str(uuid.uuid4()))   # Orthanc makes PatientIDs from UUIDs
        if level in ("study", "series", "instance"):
            # A UUID-derived UID (PS3.5 B.2): unique without a registered root.
            return text_response(generate_uid(prefix=None))
        return bare_response(404)           # Orthanc: any other level, 404 with no body


class DefaultEncodingApi(OrthancView):
    def get(self, request):
        return text_response(runtime.default_encoding(cached=False))

    def put(self, request):
        return text_response(runtime.default_encoding_set(name=_body(request)))


class AcceptedTransferSyntaxesApi(OrthancView):
    def get(self, request):
        return json_response(runtime.accepted_transfer_syntaxes(cached=False))

    def put(self, request):
        """A JSON string or array of UID patterns, or one pattern as plain text (wildcards ? and *)."""
        text = _body(request)
        try:
            value = json.loads(text)
        except ValueError:
            value = text   # plain text (Orthanc 1.10.1 refuses a bare UID such as 1.2.840.10008.1.2.1 here)
        if isinstance(value, str):
            patterns = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            patterns = value
        else:
            raise BadFileFormat()
        return json_response(runtime.accepted_transfer_syntaxes_set(patterns=patterns))


class AcceptedSopClassesApi(OrthancView):
    # New in Orthanc 1.12.6
    def get(self, request):
        return json_response(runtime.accepted_sop_classes())


class UnknownSopClassAcceptedApi(OrthancView):
    def get(self, request):
        return text_response("1" if runtime.unknown_sop_class_accepted(cached=False) else "0")

    def put(self, request):
        runtime.unknown_sop_class_accepted_set(accepted=runtime.bool_parse(_body(request)))
        return text_response("")


class ConformanceApi(OrthancView):
    def get(self, request):
        return text_response(CONFORMANCE.read_text(encoding="utf-8"))


class LogLevelApi(OrthancView):
    category: str | None = None

    def get(self, request):
        return text_response(runtime.log_level(category=self.category))

    def put(self, request):
        runtime.log_level_set(level=_body(request), category=self.category)
        return text_response("")


class MetricsApi(OrthancView):
    def get(self, request):
        return text_response("1" if runtime.metrics_enabled() else "0")

    def put(self, request):
        runtime.metrics_enabled_set(enabled=runtime.bool_parse(_body(request)))
        return text_response("")


def _mb(size: str) -> float:
    # Orthanc keeps these metrics as 32-bit floats (and prints 9 significant digits).
    return struct.unpack("f", struct.pack("f", int(size) / (1024 * 1024)))[0]


def _jobs_metrics() -> dict[str, int]:
    """Orthanc 1.12.11's jobs figures (OrthancRestSystem GetMetricsPrometheus): pending, running, and the
    successes and failures of the jobs history; one grouped count on the jobs table's state index."""
    from django.db.models import Count

    from jobs.models import Job, State

    by_state = dict(Job.objects.order_by().values_list("state").annotate(n=Count("id")))
    success, failed = by_state.get(State.SUCCESS, 0), by_state.get(State.FAILURE, 0)
    return {
        # A job waiting to retry is pending to Orthanc's registry (it sits in the pending queue again).
        "orthanc_jobs_pending": by_state.get(State.PENDING, 0) + by_state.get(State.RETRY, 0),
        "orthanc_jobs_running": by_state.get(State.RUNNING, 0),
        "orthanc_jobs_success": success,
        "orthanc_jobs_failed": failed,
        "orthanc_jobs_completed": success + failed,
    }


def metrics_values() -> dict[str, int | float]:
    """The metrics of Orthanc 1.12.11 that this server can compute truthfully, for the whole deployment: the
    database-derived ones, the jobs ones, and the per-process ones (REST active requests and duration, logged
    errors and warnings) combined over every live server process (archive/metrics.py). Caches and
    thread pools of Orthanc's C++ core have no counterpart here and are left out."""
    stats = global_statistics()
    shared = metrics_collect()
    return {
        **_jobs_metrics(),
        "orthanc_logged_errors_count": int(shared["orthanc_logged_errors_count"]),
        "orthanc_logged_warnings_count": int(shared["orthanc_logged_warnings_count"]),
        "orthanc_rest_api_active_requests": int(shared["orthanc_rest_api_active_requests"]),
        # Orthanc's Timer: the longest request of the last 10 seconds, in whole milliseconds.
        "orthanc_rest_api_duration_ms": int(round(shared["orthanc_rest_api_duration_ms"])),
        "orthanc_count_instances": stats["CountInstances"],
        "orthanc_count_patients": stats["CountPatients"],
        "orthanc_count_series": stats["CountSeries"],
        "orthanc_count_studies": stats["CountStudies"],
        "orthanc_disk_size_mb": _mb(stats["TotalDiskSize"]),
        "orthanc_last_change": changes.change_last_index(),
        "orthanc_uncompressed_size_mb": _mb(stats["TotalUncompressedSize"]),
        "orthanc_up_time_s": int(time.time() - STARTED_AT),
        # The timers (whole milliseconds) and the free threads, once some process reported them
        **{name: int(round(shared[name])) for name in OPTIONAL if name in shared},
    }


def prometheus_text(values: dict[str, int | float], *, timestamp_ms: int) -> str:
    """Prometheus text format 0.0.4: ``name value timestamp`` per line, sorted by name."""
    def number(value: int | float) -> str:
        return str(value) if isinstance(value, int) else f"{value:.9g}"

    return "".join(f"{name} {number(values[name])} {timestamp_ms}\n" for name in sorted(values))


class PrometheusApi(OrthancView):
    def get(self, request):
        if not runtime.metrics_enabled():
            return text_response("", content_type=PROMETHEUS_CONTENT_TYPE)
        text = prometheus_text(metrics_values(), timestamp_ms=int(time.time() * 1000))
        return text_response(text, content_type=PROMETHEUS_CONTENT_TYPE)


def _dicom_identifier(text: str) -> str:
    # Orthanc drops control characters and surrounding blanks from identifiers before looking them up.
    return "".join(c for c in text if c.isprintable()).strip()


class LookupApi(OrthancView):
    def post(self, request):
        value = _dicom_identifier(_body(request))
        if "*" in value or "?" in value:
            raise ParameterOutOfRange("Wildcards are not allowed on tag 0010,0020")
        found = selectors.lookup_by_dicom_id(value=value)   # "" too: a patient without PatientID (as Orthanc)
        levels = list(Level)
        return json_response([{"ID": r.public_id, "Path": f"/{levels[r.level].plural}/{r.public_id}",
                               "Type": levels[r.level].value} for r in found])


class InvalidateTagsApi(OrthancView):
    """POST /tools/invalidate-tags: drop the DICOM-as-JSON summaries (absent under ReadOnly, as in Orthanc)."""

    read_only_absent = frozenset({"post"})

    def post(self, request):
        attachments.dicom_as_json_invalidate()
        return text_response("")


class ExecuteScriptApi(OrthancView):
    """POST /tools/execute-script: Orthanc runs Lua here only when ExecuteLuaEnabled is true, and answers a
    bare 403 otherwise. There is no Lua in this server: always the bare 403, which Lua clients expect of a
    server that refuses (orthanc-api-client raises its Forbidden; it raised ResourceNotFound on our 404)."""

    def post(self, request):
        logger.error("POST /tools/execute-script is refused: this server runs no Lua scripts")
        return bare_response(403)


def _signal_serve(signum: int) -> None:
    """Ask the ``manage.py serve`` that started this process to stop (SIGTERM) or to restart, a moment from
    now: the answer goes out first, as Orthanc answers before it stops."""
    from explorer.management.commands.serve import SERVE_PID_VARIABLE

    pid = os.environ.get(SERVE_PID_VARIABLE)
    if not pid:
        # Started by a process manager of its own (the Procfile's scale-out): that manager stops and restarts it
        raise NotImplementedYet("This process was not started by manage.py serve: restart or stop it with the "
                                "process manager that started it")
    timer = threading.Timer(0.2, os.kill, (int(pid), signum))
    timer.daemon = True
    timer.start()


def _empty_json() -> HttpResponse:
    return HttpResponse(b"{}", content_type="application/json")   # Orthanc's exact answer: no charset here


class ResetApi(OrthancView):
    """POST /tools/reset: the whole server (HTTP, DICOM, jobs) stops and starts again, the configuration file
    read anew, as Orthanc's hot restart. Answers {} first."""

    def post(self, request):
        from explorer.management.commands.serve import RESTART_SIGNAL

        _signal_serve(RESTART_SIGNAL)
        logger.warning("POST /tools/reset: the server restarts")
        return _empty_json()


class ShutdownApi(OrthancView):
    """POST /tools/shutdown: the whole server stops (jobs left running start again at the next start, as
    with SaveJobs). Answers {} first."""

    def post(self, request):
        _signal_serve(signal.SIGTERM)
        logger.warning("POST /tools/shutdown: the server stops")
        return _empty_json()


urlpatterns = [
    path("tools", ToolsApi.as_view()),
    path("tools/reset", ResetApi.as_view()),
    path("tools/shutdown", ShutdownApi.as_view()),
    path("tools/execute-script", ExecuteScriptApi.as_view()),
    path("tools/now", NowApi.as_view()),
    path("tools/now-local", NowApi.as_view(local=True)),
    path("tools/generate-uid", GenerateUidApi.as_view()),
    path("tools/default-encoding", DefaultEncodingApi.as_view()),                     # GET, PUT
    path("tools/accepted-transfer-syntaxes", AcceptedTransferSyntaxesApi.as_view()),  # GET, PUT
    path("tools/accepted-sop-classes", AcceptedSopClassesApi.as_view()),              # 1.12.6
    path("tools/unknown-sop-class-accepted", UnknownSopClassAcceptedApi.as_view()),   # GET, PUT
    path("tools/dicom-conformance", ConformanceApi.as_view()),
    path("tools/log-level", LogLevelApi.as_view()),                                   # GET, PUT
    *[path(f"tools/log-level-{c}", LogLevelApi.as_view(category=c)) for c in runtime.LOG_CATEGORIES],
    path("tools/metrics", MetricsApi.as_view()),                                      # GET, PUT
    path("tools/metrics-prometheus", PrometheusApi.as_view()),
    path("tools/lookup", LookupApi.as_view()),                                        # POST
    path("tools/invalidate-tags", InvalidateTagsApi.as_view()),                       # POST
]
