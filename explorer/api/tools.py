"""/tools/...: clock, UIDs, encodings, transfer syntaxes, log levels, metrics, lookup."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from django.http import HttpResponse
from django.urls import path
from pydicom.uid import generate_uid

from archive import runtime, selectors
from archive.dicom.tags import ENCODING_TO_CHARSET
from archive.errors import BadRequest, ParameterOutOfRange
from archive.levels import Level
from archive.models import Change
from archive.statistics import global_statistics
from explorer.api.base import OrthancView
from explorer.api.rendering import json_response, text_response

STARTED = time.time()
UID_ROOT = "1.2.826.0.1.3680043.10.1234."   # a private root under the UK NHS-issued Medical Connections arc

# Every transfer syntax Orthanc 1.12 accepts by default (its "AcceptedTransferSyntaxes": "*" list).
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    *[f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66,
                                           70, 80, 81, 90, 91, 92, 93, 94, 95, 100, 101, 102, 103, 104, 105,
                                           106, 107, 108)],
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.6.1", "1.2.840.10008.1.2.6.2",
]


def _body_text(request) -> str:
    return request._request.body.decode("utf-8", "replace").strip()


def _bool_text(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise ParameterOutOfRange(f"Expected a Boolean value: {text}")


class NowApi(OrthancView):
    local = False

    def get(self, request):
        now = dt.datetime.now().astimezone() if self.local else dt.datetime.now(dt.UTC)
        return text_response(now.strftime("%Y%m%dT%H%M%S"))


class GenerateUidApi(OrthancView):
    def get(self, request):
        level = request.GET.get("level", "")
        try:
            Level.parse(level)
        except ValueError:
            raise ParameterOutOfRange(f"Unknown resource level: {level}") from None
        return text_response(generate_uid(prefix=UID_ROOT))


class DefaultEncodingApi(OrthancView):
    def get(self, request):
        return text_response(runtime.runtime_get("DefaultEncoding"))

    def put(self, request):
        value = _body_text(request)
        if value not in ENCODING_TO_CHARSET:
            raise ParameterOutOfRange(f"Unknown encoding: {value}")
        runtime.runtime_set("DefaultEncoding", value)
        return text_response("")


class AcceptedTransferSyntaxesApi(OrthancView):
    def get(self, request):
        return json_response(TRANSFER_SYNTAXES)


class UnknownSopClassAcceptedApi(OrthancView):
    def get(self, request):
        return json_response(int(runtime.runtime_get("UnknownSopClassAccepted") == "1"))

    def put(self, request):
        runtime.runtime_set("UnknownSopClassAccepted", "1" if _bool_text(_body_text(request)) else "0")
        return text_response("")


class ConformanceApi(OrthancView):
    def get(self, request):
        return text_response(Path(__file__).with_name("conformance.txt").read_text(encoding="utf-8"))


class LogLevelApi(OrthancView):
    category: str | None = None

    @property
    def key(self) -> str:
        return f"LogLevel-{self.category}" if self.category else "LogLevel"

    def get(self, request):
        return text_response(runtime.runtime_get(self.key))

    def put(self, request):
        value = _body_text(request)
        if value not in runtime.LOG_LEVELS:
            raise ParameterOutOfRange(f"Unknown log level: {value}")
        runtime.runtime_set(self.key, value)
        runtime.apply_log_level(value, self.category)
        return text_response(value)


class MetricsApi(OrthancView):
    def get(self, request):
        return json_response(int(runtime.runtime_get("MetricsEnabled") == "1"))

    def put(self, request):
        runtime.runtime_set("MetricsEnabled", "1" if _bool_text(_body_text(request)) else "0")
        return text_response("")


class PrometheusApi(OrthancView):
    def get(self, request):
        if runtime.runtime_get("MetricsEnabled") != "1":
            return HttpResponse(b"", content_type="text/plain")
        stats = global_statistics()
        last = Change.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        now_ms = int(time.time() * 1000)
        values = {
            "orthanc_count_instances": stats["CountInstances"],
            "orthanc_count_patients": stats["CountPatients"],
            "orthanc_count_series": stats["CountSeries"],
            "orthanc_count_studies": stats["CountStudies"],
            "orthanc_disk_size_mb": int(stats["TotalDiskSize"]) / 1048576,
            "orthanc_uncompressed_size_mb": int(stats["TotalUncompressedSize"]) / 1048576,
            "orthanc_last_change": last,
            "orthanc_up_time_s": int(time.time() - STARTED),
        }
        lines = [f"{name} {value} {now_ms}" for name, value in values.items()]
        return HttpResponse(("\n".join(lines) + "\n").encode(), content_type="text/plain; version=0.0.4")


class LookupApi(OrthancView):
    def post(self, request):
        value = _body_text(request)
        if not value:
            raise BadRequest("Empty DICOM identifier")
        found = selectors.lookup_by_dicom_id(value=value)
        return json_response([{"ID": r.public_id, "Path": f"/{list(Level)[r.level].plural}/{r.public_id}",
                               "Type": list(Level)[r.level].value} for r in found])


urlpatterns = [
    path("tools/now", NowApi.as_view()),
    path("tools/now-local", NowApi.as_view(local=True)),
    path("tools/generate-uid", GenerateUidApi.as_view()),
    path("tools/default-encoding", DefaultEncodingApi.as_view()),
    path("tools/accepted-transfer-syntaxes", AcceptedTransferSyntaxesApi.as_view()),
    path("tools/unknown-sop-class-accepted", UnknownSopClassAcceptedApi.as_view()),
    path("tools/dicom-conformance", ConformanceApi.as_view()),
    path("tools/log-level", LogLevelApi.as_view()),
    *[path(f"tools/log-level-{c}", LogLevelApi.as_view(category=c)) for c in runtime.LOG_CATEGORIES],
    path("tools/metrics", MetricsApi.as_view()),
    path("tools/metrics-prometheus", PrometheusApi.as_view()),
    path("tools/lookup", LookupApi.as_view()),
]
