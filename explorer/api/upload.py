"""POST /instances: raw DICOM, multipart/form-data with several files, or a ZIP of files."""

from __future__ import annotations

import io
import zipfile
import zlib

from django.conf import settings
from django.urls import path

from archive.errors import ArchiveError, BadFileFormat
from archive.ingest import Origin, StoreResult, instance_store
from archive.levels import Level
from explorer.api.base import remote_ip
from explorer.api.rendering import json_response
from explorer.api.resources import ResourceListApi

MB = 1024 * 1024


def archive_file_limit() -> int | None:
    """MaximumFileSizeInArchiveMB (Orthanc 1.12.11, default 4096; 0: none): the largest file, once inflated,
    taken from an uploaded ZIP or gzip body, against ZIP/gzip bombs. A plain size, not a compression ratio: a
    blank image or a segmentation's frames deflate a thousandfold and are no bomb."""
    megabytes = int(settings.ORTHANC.get("MaximumFileSizeInArchiveMB", 4096) or 0)
    return megabytes * MB if megabytes > 0 else None


def upload_answer(result: StoreResult) -> dict:
    ids = result.ids
    return {"ID": ids.instance, "ParentPatient": ids.patient, "ParentSeries": ids.series,
            "ParentStudy": ids.study, "Path": f"/instances/{ids.instance}", "Status": result.status.value}


def _zip_entries(data: bytes):
    """Yield (name, bytes) of the files of a ZIP, refusing bombs; directories are skipped."""
    limit = archive_file_limit()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if limit is not None and info.file_size > limit:
                raise BadFileFormat(f"ZIP entry larger than MaximumFileSizeInArchiveMB once inflated: "
                                    f"{info.filename!r} ({info.file_size} bytes)")
            with archive.open(info) as f:
                content = f.read()      # no more than the entry's declared size (zipfile checks it, and its CRC)
            if len(content) != info.file_size:
                raise BadFileFormat(f"Corrupted ZIP entry: {info.filename!r}")
            yield info.filename, content


class InstancesApi(ResourceListApi):
    """GET lists the instances (as for every level); POST uploads."""

    read_only_absent = frozenset({"post"})

    def post(self, request):
        origin = Origin.rest(remote_ip=remote_ip(request), username=getattr(request, "orthanc_user", ""))
        ctype = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            files = [f.read() for f in request._request.FILES.values()]
            answers = [upload_answer(instance_store(data=data, origin=origin)) for data in files]
            return json_response(answers[0] if len(answers) == 1 else answers)
        body = request._request.body
        if request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower() == "gzip":
            body = _gunzipped(body)
        if body[:4] == b"PK\x03\x04":
            return json_response(_zip_upload(body, origin))
        return json_response(upload_answer(instance_store(data=body, origin=origin)))


def _gunzipped(body: bytes) -> bytes:
    """A body sent with Content-Encoding: gzip, as Orthanc (>= 1.6.0) takes it on POST /instances: what its peers
    send with Compress. Other encodings are taken as they come, as Orthanc does; one that does not inflate is
    Orthanc's internal error (500)."""
    limit = archive_file_limit()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1) if limit is not None else inflater.decompress(body)
    except zlib.error as exc:
        raise ArchiveError(f"Cannot decompress the gzip body: {exc}") from None
    if not inflater.eof:
        raise ArchiveError("Cannot decompress the gzip body: truncated, or larger than "
                           "MaximumFileSizeInArchiveMB once inflated")
    return data


def _zip_upload(body: bytes, origin: Origin) -> list[dict]:
    try:
        entries = list(_zip_entries(body))
    except zipfile.BadZipFile as exc:
        raise BadFileFormat(f"Cannot read the ZIP archive: {exc}") from exc
    answers = []
    for _name, content in entries:
        try:
            answers.append(upload_answer(instance_store(data=content, origin=origin)))
        except BadFileFormat:
            continue  # Orthanc skips the entries of a ZIP that are not DICOM files
    return answers


urlpatterns = [path("instances", InstancesApi.as_view(level=Level.INSTANCE))]
