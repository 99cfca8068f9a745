"""/system, /statistics, /plugins and the root."""

from __future__ import annotations

import socket

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import path

from archive.dicom.tags import main_dicom_tags_signature
from archive.levels import Level
from archive.settings import archive_settings
from archive.statistics import global_statistics
from explorer.api.base import OrthancView
from explorer.api.rendering import json_response

VERSION = "1.12.11"
API_VERSION = 30        # "API version upgraded to 30" is the last such note up to Orthanc 1.12.11
DATABASE_VERSION = 6


def system_info() -> dict:
    cfg = settings.ORTHANC
    archive = archive_settings()
    return {
        "ApiVersion": API_VERSION,
        "Capabilities": {"HasExtendedChanges": True, "HasExtendedFind": False, "HasKeyValueStores": False,
                         "HasQueues": False, "HasReserveQueueValue": False},
        "CheckRevisions": archive.check_revisions,
        "DatabaseBackendPlugin": None,
        "DatabaseServerIdentifier": socket.gethostname(),
        "DatabaseVersion": DATABASE_VERSION,
        "DicomAet": cfg["DicomAet"],
        "DicomDefaultRetrieveMethod": cfg.get("DicomDefaultRetrieveMethod", "C-MOVE"),
        "DicomPort": cfg["DicomPort"],
        "HasLabels": True,
        "HttpPort": cfg["HttpPort"],
        "IngestTranscoding": cfg.get("IngestTranscoding", ""),
        "IsHttpServerSecure": bool(cfg.get("AuthenticationEnabled")) or not cfg.get("RemoteAccessAllowed"),
        "MainDicomTags": {level.value: main_dicom_tags_signature(level, archive.extra_main_tags(level))
                          for level in Level},
        "MaximumPatientCount": archive.maximum_patient_count,
        "MaximumStorageMode": archive.maximum_storage_mode,
        "MaximumStorageSize": archive.maximum_storage_size,
        "Name": cfg["Name"],
        "OverwriteInstances": archive.overwrite_instances,
        "PatientLevelEnabled": bool(cfg.get("PatientLevelEnabled", True)),
        "PluginsEnabled": True,
        "ReadOnly": bool(cfg.get("ReadOnly", False)),
        "StorageAreaPlugin": None,
        "StorageCompression": archive.storage_compression,
        "UserMetadata": dict(cfg.get("UserMetadata") or {}),
        "Version": VERSION,
    }


class SystemApi(OrthancView):
    def get(self, request):
        return json_response(system_info())


class StatisticsApi(OrthancView):
    def get(self, request):
        return json_response(global_statistics())


class PluginsApi(OrthancView):
    """No Orthanc plugins run here; the web UI is built in (Orthanc lists its "explorer.js")."""

    def get(self, request):
        return json_response([])


class RootApi(OrthancView):
    def get(self, request):
        return HttpResponseRedirect("/ui/")


urlpatterns = [
    path("", RootApi.as_view()),
    path("system", SystemApi.as_view()),
    path("statistics", StatisticsApi.as_view()),
    path("plugins", PluginsApi.as_view()),
]
