"""The upload page (issue 8, part 4).

With JavaScript (static/ui/upload.js) the files, folders and ZIPs chosen or dropped go one by one to the REST
route POST /instances, with a progress bar each and overall. Without it, the same page's form posts the files
here and the answer is the same summary rendered on the server; both paths store through instance_store."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from archive.errors import ArchiveError, BadFileFormat
from archive.ingest import Origin, StoreResult, StoreStatus, instance_store
from explorer.api.base import remote_ip


@dataclass
class UploadSummary:
    stored: int = 0
    already: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)    # (file name, why)
    studies: dict[str, str] = field(default_factory=dict)           # study public ID -> patient public ID

    def add(self, name: str, result: StoreResult) -> None:
        if result.status is StoreStatus.SUCCESS:
            self.stored += 1
        elif result.status is StoreStatus.ALREADY_STORED:
            self.already += 1
        else:   # filtered out by the configuration
            self.refused.append((name, result.status.value))
            return
        self.studies.setdefault(result.ids.study, result.ids.patient)


def uploads_store(*, files: list[tuple[str, bytes]], origin: Origin) -> UploadSummary:
    """Store uploaded files, ZIPs unpacked as POST /instances does; what cannot be stored is counted, not raised."""
    from explorer.api.upload import _zip_entries

    summary = UploadSummary()
    for name, data in files:
        parts = [(name, data)]
        if data[:4] == b"PK\x03\x04":
            try:
                parts = [(f"{name}/{entry}", content) for entry, content in _zip_entries(data)]
            except (zipfile.BadZipFile, BadFileFormat) as exc:
                summary.refused.append((name, str(exc)))
                continue
        for part_name, content in parts:
            try:
                result = instance_store(data=content, origin=origin)
            except ArchiveError as exc:
                summary.refused.append((part_name, exc.details or str(exc)))
                continue
            summary.add(part_name, result)
    return summary


@require_http_methods(["GET", "POST"])
@csrf_protect
def upload(request: HttpRequest) -> HttpResponse:
    summary = None
    if request.method == "POST":
        origin = Origin.rest(remote_ip=remote_ip(request), username=getattr(request, "orthanc_user", ""))
        files = [(f.name, f.read()) for key in ("files", "folder") for f in request.FILES.getlist(key)]
        summary = uploads_store(files=files, origin=origin)
    return render(request, "ui/upload.html", {"section": "upload", "summary": summary})
