"""/jobs and the routes that start jobs (archives so far), with Orthanc's Synchronous/Asynchronous/Priority."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import path

from archive import selectors
from archive.body_fields import boolean_field
from archive.errors import (
    ArchiveError,
    BadFileFormat,
    BadRequest,
    InexistentItem,
    OrthancError,
    ParameterOutOfRange,
    UnknownResource,
)
from archive.levels import Level
from archive.timeutil import iso
from explorer.api.base import OrthancView
from explorer.api.params import flag
from explorer.api.rendering import json_response, text_response
from jobs import engine
from jobs.kinds.archive import archive_entries, archive_stream
from jobs.kinds.media import media_build
from jobs.models import Job, State
from jobs.outputs import output_open, output_remove


def _moment(value) -> str:
    # Orthanc's job times carry microseconds: 20261201T043727.172532
    return iso(value) + value.strftime(".%f")


def _sorted(value):
    """Keys in Orthanc's (JsonCpp's) order at every depth: PostgreSQL's jsonb keeps its own order."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def job_json(job: Job) -> dict:
    """A job as Orthanc's GET /jobs/{id} shows it (JobInfo::Format): Timestamp is the time of the request,
    EffectiveRuntime in seconds truncated to the millisecond, and a running job past 1% has its
    EstimatedTimeOfArrival."""
    now = dt.datetime.now(dt.UTC)
    runtime = int(job.runtime * 1000) / 1000
    out = {
        "Content": _sorted(job.content),
        "CreationTime": _moment(job.creation_time),
        "EffectiveRuntime": runtime,
        "ErrorCode": job.error_code,
        "ErrorDescription": job.error_description,
        "ErrorDetails": job.error_details,
        "ID": job.id,
        "Priority": job.priority,
        "Progress": job.progress,
        "State": job.state,
        "Timestamp": _moment(now),
        "Type": job.type,
    }
    if job.completion_time is not None:
        out["CompletionTime"] = _moment(job.completion_time)
    if job.state == State.RUNNING and job.progress > 1 and runtime > 0:
        remaining = runtime * (100 - job.progress) / job.progress
        out["EstimatedTimeOfArrival"] = _moment(now + dt.timedelta(seconds=remaining))
    if job.user_data is not None:
        out["UserData"] = _sorted(job.user_data)      # Orthanc 1.12.9
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class JobMode:
    asynchronous: bool
    priority: int
    user_data: Any = None       # "UserData" (1.12.9): any JSON value, kept with the job


def job_mode(body: dict) -> JobMode:
    """Synchronous / Asynchronous and Priority of a job-creating request, as Orthanc's IsSynchronousJobRequest:
    Synchronous when given decides (Asynchronous then unread), else Asynchronous, else synchronous."""
    name = "Synchronous" if "Synchronous" in body else "Asynchronous" if "Asynchronous" in body else None
    if name is not None and not isinstance(body[name], bool):
        raise BadFileFormat(f"Boolean value expected in field: {name}")
    priority = body.get("Priority", 0)
    # JsonCpp reads a number beyond 64 bits as a real: not an integer for Orthanc either
    if not isinstance(priority, int) or isinstance(priority, bool) or not -2**63 <= priority < 2**64:
        raise BadFileFormat("Integer value expected in field: Priority")
    if not -2**31 <= priority < 2**31:
        # Orthanc's asInt() throws (an internal error, 500); a clear refusal here, the same on every engine
        raise ParameterOutOfRange("Priority must be a 32-bit integer")
    asynchronous = name is not None and body[name] is (name == "Asynchronous")
    return JobMode(asynchronous=asynchronous, priority=priority,
                   user_data=body.get("UserData"))


def body_json(raw: bytes, details: str | None = None) -> Any:
    """Orthanc's ParseJsonRequest: any JSON value; a body that is not JSON fails with BadFileFormat, an empty
    one too (JsonCpp reads no value from it)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadFileFormat(details) from None


def body_json_object(raw: bytes) -> dict:
    """A body that must be a JSON object, as the modification and anonymization routes read it: anything else
    (empty, not JSON, an array) is BadFileFormat without details."""
    value = body_json(raw)
    if not isinstance(value, dict):
        raise BadFileFormat()
    return value


def body_object(raw: bytes) -> dict:
    """A POST body that must be a JSON object; empty means {}."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise BadRequest("The body must contain a JSON object")
    return value


def submitted(job: Job) -> HttpResponse:
    return json_response({"ID": job.id, "Path": f"/jobs/{job.id}"})


class JobListApi(OrthancView):
    def get(self, request):
        jobs = Job.objects.order_by("id")      # Orthanc's registry is a map keyed by the job ID
        if flag(request, "expand"):
            return json_response([job_json(j) for j in jobs])
        return json_response(list(jobs.values_list("id", flat=True)))


def _job(job_id: str, missing: ArchiveError) -> Job:
    """The job, else ``missing``: Orthanc answers an unknown job differently on each route."""
    try:
        return engine.job_get(job_id=job_id)
    except UnknownResource:
        raise missing from None


def _no_output(key: str) -> InexistentItem:
    return InexistentItem(f"Job has no such output: {key}")


class JobApi(OrthancView):
    def get(self, request, job_id: str):
        return json_response(job_json(_job(job_id, UnknownResource().answered_bare())))    # 404, no body

    def delete(self, request, job_id: str):
        """1.12.2: a finished job goes (its outputs too); an unknown one, or one still to run, is not found."""
        missing = InexistentItem(f"No job found with this id: {job_id}")
        job = _job(job_id, missing)
        if job.state not in engine.DONE:
            raise missing
        engine.job_delete(job_id=job_id)
        return text_response("")


ACTIONS = {"cancel": engine.job_cancel, "pause": engine.job_pause, "resume": engine.job_resume,
           "resubmit": engine.job_resubmit}


class JobActionApi(OrthancView):
    action = "cancel"

    def post(self, request, job_id: str):
        try:
            ACTIONS[self.action](job_id=job_id)
        except UnknownResource:
            raise BadRequest().answered_bare() from None      # Orthanc: the registry refuses the action, a bare 400
        return json_response({})

    def get(self, request, job_id: str):
        """GET /jobs/{id}/cancel is Orthanc's output lookup (GET /jobs/{id}/{key}) of an output so named."""
        return JobOutputApi().get(request, job_id, self.action)


class JobOutputApi(OrthancView):
    def get(self, request, job_id: str, key: str):
        job = _job(job_id, _no_output(key))
        output = job.outputs.get(key)
        if output is None:
            raise _no_output(key)
        response = FileResponse(output_open(job, key), content_type=output["content_type"])
        response["Content-Disposition"] = f'filename="{output["filename"]}"'
        return response

    def delete(self, request, job_id: str, key: str):
        job = _job(job_id, _no_output(key))
        if not output_remove(job, key):
            raise _no_output(key)
        return text_response("")


# -- archives -------------------------------------------------------------------------------------------------

def _safe_filename(name: str) -> str:
    return "".join(c for c in name if c.isalnum() or c in "._- ") or "archive.zip"


def transcode_of(body: dict, query: dict) -> tuple[str | None, int]:
    """"Transcode" (POST) or "transcode" (GET) and the lossy quality (LossyQuality, lossy-quality, 1.12.7)."""
    from archive.dicom.transcode import TRANSCODERS
    from archive.settings import archive_settings

    syntax = body.get("Transcode", query.get("transcode"))
    if syntax is None or syntax == "":
        return None, 90
    if not isinstance(syntax, str):
        raise BadFileFormat("String value expected in field: Transcode")
    if syntax.strip() not in TRANSCODERS:   # Orthanc's GetTransferSyntax
        raise ParameterOutOfRange(f"Unknown transfer syntax: {syntax}")
    quality = body.get("LossyQuality", query.get("lossy-quality", archive_settings().lossy_quality))
    try:
        quality = int(quality)
    except (TypeError, ValueError):
        raise BadRequest("LossyQuality must be an integer between 1 and 100") from None
    if not 1 <= quality <= 100:
        raise BadRequest("LossyQuality must be an integer between 1 and 100")
    return syntax.strip(), quality


def _archive_answer(resources: list[tuple[Level, str]], *, body: dict, filename: str, media: bool = False,
                    query: dict | None = None, extended: bool = False):
    """``extended``: the default of a media's Extended (create-media-extended), which the body's "Extended" or
    the GET argument "extended" overrides."""
    mode = job_mode(body)
    transcode, quality = transcode_of(body, query or {})
    # "Utf8" (1.12.11) of a POST; a GET has the configuration's ZipUseUtf8. A media's names are DICOM file IDs
    # (IMAGES/IM0...), ASCII whatever it says.
    utf8 = boolean_field(body, "Utf8", bool(settings.ORTHANC.get("ZipUseUtf8", False)))
    extended = media and (boolean_field(body, "Extended", extended) or "extended" in (query or {}))
    for level, public_id in resources:
        selectors.resource_get(level=level, public_id=public_id)  # Orthanc's 404 before anything starts
    if mode.asynchronous:
        job = engine.job_submit(kind="Media" if media else "Archive", priority=mode.priority, user_data=mode.user_data,
                                parameters={
            "resources": [[level.value, public_id] for level, public_id in resources],
            "filename": filename, "description": "REST API", "transcode": transcode, "quality": quality,
            "extended": extended, "utf8": utf8})
        return submitted(job)
    entries = archive_entries(resources=resources, utf8=utf8)
    if media:
        # FileSet stages on disk: the ZIP is built in a temporary file, then streamed from it (deleted on close).
        target = tempfile.NamedTemporaryFile(prefix="media-", suffix=".zip")
        for _ in media_build(entries, Path(target.name), extended=extended):
            pass
        target.seek(0)
        response = FileResponse(target, content_type="application/zip")
    else:
        response = StreamingHttpResponse(archive_stream(entries, transcode=transcode, quality=quality),
                                         content_type="application/zip")
    response["Content-Disposition"] = f'filename="{filename}"'
    return response


class ResourceArchiveApi(OrthancView):
    media = False

    def get(self, request, public_id: str):
        name = _safe_filename(request.GET.get("filename") or f"{public_id}.zip")
        return _archive_answer([(self.level, public_id)], body={}, filename=name, media=self.media,
                               query=request.GET)

    def post(self, request, public_id: str):
        body = body_json(request._request.body)
        if not isinstance(body, dict):
            body = {}   # Orthanc reads its options from an object only: another JSON value asks for none
        name = _safe_filename(str(body.get("Filename") or f"{public_id}.zip"))
        return _archive_answer([(self.level, public_id)], body=body, filename=name, media=self.media)


def _levels_of(public_ids: list[str]) -> list[tuple[Level, str]]:
    out = []
    for public_id in public_ids:
        resource = selectors.resource_get_any_level(public_id=public_id)
        out.append((list(Level)[resource.level], public_id))
    return out


class CreateArchiveApi(OrthancView):
    media = False
    extended = False   # create-media-extended: Orthanc's extended DICOMDIR (SeriesDescription in the records)

    def get(self, request):
        ids = [i for i in request.GET.get("resources", "").split(",") if i]
        if not ids:
            raise BadRequest('Missing "resources" argument')
        name = _safe_filename(request.GET.get("filename") or "Archive.zip")
        return _archive_answer(_levels_of(ids), body={}, filename=name, media=self.media, query=request.GET,
                               extended=self.extended)

    def post(self, request):
        body = body_json(request._request.body, "Expected a list of resources to archive in the body")
        if isinstance(body, list):   # the identifiers alone, as Orthanc has always taken them
            ids, body = body, {}
        elif isinstance(body, dict):
            if "Resources" not in body:
                raise BadFileFormat("Missing field Resources in the JSON body")
            ids = body["Resources"]
        else:
            raise BadFileFormat()
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadFileFormat("Expected a list of strings (Orthanc identifiers)")
        name = _safe_filename(str(body.get("Filename") or "Archive.zip"))
        return _archive_answer(_levels_of(ids), body=body, filename=name, media=self.media, extended=self.extended)


urlpatterns = [
    path("jobs", JobListApi.as_view()),
    path("jobs/<str:job_id>", JobApi.as_view()),
    *[path(f"jobs/<str:job_id>/{action}", JobActionApi.as_view(action=action)) for action in ACTIONS],
    path("jobs/<str:job_id>/<str:key>", JobOutputApi.as_view()),
    path("tools/create-archive", CreateArchiveApi.as_view()),
    path("tools/create-media", CreateArchiveApi.as_view(media=True)),
    path("tools/create-media-extended", CreateArchiveApi.as_view(media=True, extended=True)),
    *[path(f"{level.plural}/<str:public_id>/{kind}", ResourceArchiveApi.as_view(level=level, media=kind == "media"))
      for level in (Level.PATIENT, Level.STUDY, Level.SERIES) for kind in ("archive", "media")],
]


def job_result(job: Job) -> HttpResponse:
    """A synchronous job's answer: its Content, or its error as Orthanc reports it."""
    if job.state == "Success":
        return json_response(_sorted(job.content))
    error = next((e for e in OrthancError if e.code == job.error_code), OrthancError.INTERNAL_ERROR)
    raise ArchiveError(job.error_details or None, orthanc_error=error, payload=job.error_payload)



class BulkDeleteApi(OrthancView):
    """POST /tools/bulk-delete {"Resources": [ids of any level]}: unknown IDs are skipped (Orthanc 1.10.1 answers
    200 with an empty body either way)."""

    read_only_absent = frozenset({"post"})

    def post(self, request):
        from archive import services

        try:   # Orthanc answers a body that is no JSON object with BadRequest here
            body = body_json(request._request.body)
        except BadFileFormat:
            raise BadRequest() from None
        if not isinstance(body, dict):
            raise BadRequest()
        ids = body.get("Resources")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadFileFormat("List of strings expected in field: Resources")
        for public_id in ids:
            try:
                resource = selectors.resource_get_any_level(public_id=public_id)
            except ArchiveError:
                continue
            services.resource_delete(level=list(Level)[resource.level], public_id=public_id)
        return HttpResponse(b"", content_type="application/json")


urlpatterns.append(path("tools/bulk-delete", BulkDeleteApi.as_view()))


class CreateDicomApi(OrthancView):
    """POST /tools/create-dicom: new instance(s) from Tags and Content, stored; Orthanc's upload answer, or the
    series' answer when Content is a list (a series of instances)."""

    def post(self, request):
        from archive.create import dicom_create
        from archive.ingest import Origin
        from explorer.api.upload import upload_answer

        try:
            body = json.loads(request._request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise BadRequest()  # Orthanc: no details
        created = dicom_create(body=body, origin=Origin.rest(remote_ip=request.META.get("REMOTE_ADDR", "")))
        if created.series is not None:
            return json_response({"ID": created.series, "Path": f"/series/{created.series}", "Status": "Success"})
        return json_response(upload_answer(created.results[0]))


urlpatterns.append(path("tools/create-dicom", CreateDicomApi.as_view()))
