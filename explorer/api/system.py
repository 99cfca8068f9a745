"""/system, /statistics, /plugins and the root (Orthanc's OrthancRestSystem.cpp)."""

from __future__ import annotations

import hashlib
import socket
import uuid

from django.conf import settings
from django.urls import path

from archive.dicom.tags import main_dicom_tags_signature
from archive.errors import UnknownResource
from archive.levels import Level
from archive.settings import archive_settings
from archive.statistics import global_statistics
from explorer.api.base import OrthancView
from explorer.api.rendering import bare_response, json_response, text_response

VERSION = "1.12.11"
API_VERSION = 30        # the NEWS of 1.12.11: "API version upgraded to 30" (31 comes with 1.13.0)
DATABASE_VERSION = 6    # Orthanc's index schema version; our schema answers the same questions

# What the JavaScript route answers when no plugin extends the explorer (Orthanc's exact text).
EXPLORER_JS = "// Extensions to Orthanc Explorer by the registered plugins\n\n"


def database_server_identifier(cfg: dict) -> str:
    """The DatabaseServerIdentifier option, else a SHA-1 of this host's MAC address, AET and ports (the
    same ingredients as Orthanc's default): every process of one server gives the same value."""
    if cfg.get("DatabaseServerIdentifier"):
        return str(cfg["DatabaseServerIdentifier"])
    node = uuid.getnode()
    # uuid.getnode() makes up a random number (multicast bit set) when it finds no MAC address: that would
    # differ from one worker process to the next, so the host name stands in for it then.
    host = socket.gethostname() if node & (1 << 40) else f"{node:012x}"
    seed = f"{host}|{cfg['DicomAet']}|{cfg['DicomPort']}|{cfg['HttpPort']}"
    return hashlib.sha1(seed.encode()).hexdigest()


def system_info() -> dict:
    """The /system answer of Orthanc 1.12.11, each field saying what this server does (not only what the
    configuration file asks)."""
    cfg = settings.ORTHANC
    archive = archive_settings()
    info = {
        "ApiVersion": API_VERSION,
        # The index answers /changes?type=&to= (ExtendedChanges) and /tools/find with OrderBy, MetadataQuery
        # and parents (ExtendedFind); no key-value stores or queues (1.12.8 and 1.12.10 plugin SDK features).
        "Capabilities": {"HasExtendedChanges": True, "HasExtendedFind": True, "HasKeyValueStores": False,
                         "HasQueues": False, "HasReserveQueueValue": False},
        "CheckRevisions": archive.check_revisions,
        "DatabaseBackendPlugin": None,
        "DatabaseServerIdentifier": database_server_identifier(cfg),
        "DatabaseVersion": DATABASE_VERSION,
        "DicomAet": cfg["DicomAet"],
        "DicomDefaultRetrieveMethod": cfg.get("DicomDefaultRetrieveMethod", "C-MOVE"),
        "DicomPort": cfg["DicomPort"],
        "HasLabels": True,
        "HttpPort": cfg["HttpPort"],
        # Instances are stored as received: the IngestTranscoding option is not applied (yet).
        "IngestTranscoding": "",
        # Orthanc: insecure when remote access is allowed without authentication (or with the default user
        # it creates when none is declared; this server never creates one, so nobody logs in then).
        "IsHttpServerSecure": not cfg.get("RemoteAccessAllowed") or bool(cfg.get("AuthenticationEnabled")),
        "MainDicomTags": {level.value: main_dicom_tags_signature(level, archive.extra_main_tags(level))
                          for level in sorted(Level, key=lambda lv: lv.value)},
        "MaximumPatientCount": archive.maximum_patient_count,
        "MaximumStorageMode": archive.maximum_storage_mode,
        "MaximumStorageSize": archive.maximum_storage_size,
        "Name": cfg["Name"],
        "OverwriteInstances": archive.overwrite_instances,
        "PatientLevelEnabled": archive.patient_level_enabled,
        # No Orthanc plugin (C shared library) can be loaded here.
        "PluginsEnabled": False,
        "ReadOnly": archive.read_only,
        "StorageAreaPlugin": None,
        "StorageCompression": archive.storage_compression,
        "UserMetadata": dict(cfg.get("UserMetadata") or {}),
        "Version": VERSION,
    }
    return dict(sorted(info.items()))


class SystemApi(OrthancView):
    def get(self, request):
        return json_response(system_info())


class StatisticsApi(OrthancView):
    def get(self, request):
        return json_response(global_statistics())


class PluginsApi(OrthancView):
    """Orthanc always lists "explorer.js" (the route that gathers the plugins' extensions to its explorer),
    plugins or not; clients that fetch it get the same empty script as from an Orthanc without plugins."""

    def get(self, request):
        return json_response(["explorer.js"])


class PluginApi(OrthancView):
    def get(self, request, plugin_id: str):
        if plugin_id == "explorer.js":
            return text_response(EXPLORER_JS, content_type="application/javascript")
        return bare_response(404)   # Orthanc: unknown plugin, 404 with no body


class RootApi(OrthancView):
    """Orthanc redirects the root to its explorer; ours is the web UI at /ui/ (a relative Location, as
    Orthanc's, so that it works behind a reverse proxy that adds a prefix)."""

    def get(self, request):
        if not settings.ORTHANC.get("OrthancExplorerEnabled", True):
            raise UnknownResource()
        return bare_response(301, Location="ui/")


class LegacyExplorerApi(OrthancView):
    """/app/explorer.html, Orthanc Explorer's page, bookmarked by its users: redirected to the web UI that
    takes its place (relative, as RootApi), under the same OrthancExplorerEnabled switch."""

    def get(self, request):
        if not settings.ORTHANC.get("OrthancExplorerEnabled", True):
            raise UnknownResource()
        return bare_response(301, Location="../ui/")


class FaviconApi(OrthancView):
    """/favicon.ico, which browsers ask of any page (a REST answer opened in a tab too): as Orthanc, a redirection
    to the explorer's icon (relative, as RootApi), under the OrthancExplorerEnabled switch."""

    def get(self, request):
        if not settings.ORTHANC.get("OrthancExplorerEnabled", True):
            raise UnknownResource()
        return bare_response(301, Location="app/images/favicon.ico")


FAVICON = settings.BASE_DIR / "static" / "ui" / "favicon.ico"   # the web UI's icon, one file for both


class ExplorerIconApi(OrthancView):
    """/app/images/favicon.ico, where Orthanc Explorer keeps its icon: the web UI's."""

    def get(self, request):
        if not settings.ORTHANC.get("OrthancExplorerEnabled", True):
            raise UnknownResource()
        return text_response(FAVICON.read_bytes(), content_type="image/x-icon")


urlpatterns = [
    path("", RootApi.as_view()),                          # only if OrthancExplorerEnabled
    path("app/explorer.html", LegacyExplorerApi.as_view()),
    path("favicon.ico", FaviconApi.as_view()),
    path("app/images/favicon.ico", ExplorerIconApi.as_view()),
    path("system", SystemApi.as_view()),
    path("statistics", StatisticsApi.as_view()),
    path("plugins", PluginsApi.as_view()),
    path("plugins/<str:plugin_id>", PluginApi.as_view()),
]
