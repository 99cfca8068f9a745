"""The system page (issue 8, part 8): statistics (the running totals), disk use, version, and a summary of
the configuration that shows no secret: only the options listed here, and of the users, peers and
modalities their names and addresses, never a password."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET

from archive.network import registry
from archive.statistics import statistics_totals
from explorer.api.system import API_VERSION, VERSION, system_info

# Options safe to show as they are (no credential among them). Anything else stays out of the page.
SHOWN_OPTIONS = (
    "Name", "DicomAet", "DicomPort", "HttpPort", "StorageDirectory", "IndexDirectory", "StorageCompression",
    "MaximumStorageSize", "MaximumPatientCount", "MaximumStorageMode", "ConcurrentJobs", "JobsHistorySize",
    "RemoteAccessAllowed", "AuthenticationEnabled", "DicomCheckCalledAet", "DicomCheckModalityHost",
    "DicomAlwaysAllowEcho", "DicomAlwaysAllowStore", "DicomAlwaysAllowFind", "DicomAlwaysAllowMove",
    "DicomAlwaysAllowGet", "DicomDefaultRetrieveMethod", "DicomScuTimeout", "DicomScpTimeout",
    "DicomModalitiesInDatabase", "OrthancPeersInDatabase", "OverwriteInstances", "QueryRetrieveSize",
    "LimitFindResults", "LimitFindInstances", "DefaultEncoding", "DicomTlsEnabled", "SslEnabled",
    "CheckRevisions", "KeepAlive", "HttpCompressionEnabled", "StableAge",
)


@dataclass
class DiskUse:
    path: str
    total: int
    used: int
    free: int

    @property
    def percent(self) -> int:
        return round(100 * self.used / self.total) if self.total else 0


def disk_use() -> DiskUse | None:
    """The file system that holds the storage area (None when it cannot be read)."""
    path = Path(str(settings.ORTHANC.get("StorageDirectory", "OrthancStorage")))
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return DiskUse(path=str(path), total=usage.total, used=usage.used, free=usage.free)


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def configuration_summary() -> dict:
    """Options by name (strings), and the names (no passwords) of the users, peers and modalities."""
    cfg = settings.ORTHANC
    options = [(name, _shown(cfg[name])) for name in SHOWN_OPTIONS if name in cfg]
    users = sorted(str(u) for u in (cfg.get("RegisteredUsers") or {}))
    peers = [(name, p.url, p.username) for name, p in sorted(registry.peers_all().items())]
    modalities = [(name, m.aet, m.host, m.port) for name, m in sorted(registry.modalities_all().items())]
    return {"options": options, "users": users, "peers": peers, "modalities": modalities}


@require_GET
@csrf_protect
def system_page(request: HttpRequest) -> HttpResponse:
    info = system_info()
    return render(request, "ui/system.html", {
        "section": "system", "totals": statistics_totals(), "disk": disk_use(), "version": VERSION,
        "api_version": API_VERSION, "info": info, "config": configuration_summary()})
