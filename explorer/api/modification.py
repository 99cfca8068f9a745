"""Modification routes: /modify and /anonymize at every level, /tools/bulk-modify|bulk-anonymize|bulk-content,
/studies/{id}/merge and /split, and the /reconstruct routes. Requests are checked here (Orthanc's 400 and 404
before any job starts); the work runs as jobs (jobs.kinds.modify, jobs.kinds.restructure) or, for one instance
and for /reconstruct, at once as Orthanc does."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path

from archive import metadata, modification, reconstruct, restructure, selectors
from archive.body_fields import boolean_field
from archive.dicom.tags import parse_tag
from archive.errors import BadFileFormat, BadRequest, ParameterOutOfRange, UnknownResource
from archive.find_request import tag_format_of_body
from archive.levels import Level
from archive.models import Resource
from archive.modification_checks import modification_sanity_check
from explorer.api.base import OrthancView, remote_ip
from explorer.api.jobs import (
    body_json,
    body_json_object,
    body_object,
    job_mode,
    job_result,
    submitted,
    transcode_of,
)
from explorer.api.rendering import json_response, text_response
from explorer.api.representations import resource_json
from jobs import engine


def _run(request, body: dict, *, kind: str, parameters: dict, content: dict | None = None) -> HttpResponse:
    """Submit a job; answer {ID, Path} when asynchronous, else wait and answer its Content."""
    mode = job_mode(body)
    parameters["remote_ip"] = remote_ip(request)
    content = {"Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": 0, **(content or {})}
    job = engine.job_submit(kind=kind, priority=mode.priority, parameters=parameters, content=content,
                            user_data=mode.user_data)
    if mode.asynchronous:
        return submitted(job)
    return job_result(engine.job_wait(job_id=job.id))


def _anonymized_patient_name(body: dict) -> str | None:
    """Orthanc names the anonymized patient "Anonymized{N}" (N a server-wide counter) unless the body sets
    PatientName; the request is checked first (Orthanc's 400 before anything moves) and the name is fixed at
    submission, so a job that runs again keeps it. None when the body names the patient."""
    from archive.runtime import anonymization_sequence_next

    modification.anonymization_parse(body, level=Level.PATIENT)
    names: list[str] = []
    modification.anonymization_parse(
        body, level=Level.PATIENT,
        patient_name=lambda: names.append(f"Anonymized{anonymization_sequence_next()}") or names[-1])
    return names[0] if names else None


def _transcode(body: dict) -> tuple[str | None, int]:
    if "Transcode" in body and not isinstance(body["Transcode"], str):
        raise BadFileFormat("String value expected in field: Transcode")
    return transcode_of(body, {})


# -- one instance: the modified file is the answer, nothing is stored ------------------------------------------

class InstanceModifyApi(OrthancView):
    anonymize = False

    def post(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        body = body_json_object(request._request.body)
        if self.anonymize:
            mod = modification.anonymization_parse(body, level=Level.INSTANCE,
                                                    patient_name=_anonymized_patient_name(body))
        else:
            mod = modification.modification_parse(body, level=Level.INSTANCE)
        syntax = body.get("Transcode")
        if syntax is not None:
            from archive.dicom.transcode import TRANSCODERS, file_transcode

            if not isinstance(syntax, str) or syntax not in TRANSCODERS:
                raise ParameterOutOfRange(f"Unknown transfer syntax: {syntax}")
        data = modification.instance_modify(selectors.instance_dicom(instance=instance), mod)
        if syntax is not None:
            data = file_transcode(data, syntax=syntax, quality=_transcode(body)[1])
        return HttpResponse(data, content_type="application/dicom")


# -- patients, studies, series: a ResourceModification job ---------------------------------------------------

class ResourceModifyApi(OrthancView):
    anonymize = False

    def post(self, request, public_id: str):
        body = body_json_object(request._request.body)
        name = None
        if self.anonymize:
            mod = modification.anonymization_parse(body, level=self.level)
        else:
            mod = modification.modification_parse(body, level=self.level,
                                                  patient_id_check=not job_mode(body).asynchronous)
        transcode, quality = _transcode(body)
        selectors.resource_get(level=self.level, public_id=public_id)
        modification_sanity_check(mod, resources=[public_id])
        if self.anonymize:
            name = _anonymized_patient_name(body)
        return _run(request, body, kind="ResourceModification", parameters={
            "anonymize": self.anonymize, "level": self.level.value, "resources": [public_id], "single": True,
            "body": body, "transcode": transcode, "quality": quality, "patient_name": name})


def _resources(body: dict) -> list[str]:
    ids = body.get("Resources")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadFileFormat("List of strings expected in field: Resources")
    return ids


def _modify_level(body: dict) -> Level:
    """Bulk modification: "Level", or the highest level whose identifier is replaced (Orthanc 1.9.7)."""
    if "Level" in body:
        try:
            return Level.parse(body["Level"])   # any case, singular or plural, as Orthanc
        except (ValueError, AttributeError):
            raise ParameterOutOfRange(f"Unknown resource type: {body['Level']}") from None
    replaced = {int(parse_tag(k)) for k in body.get("Replace", {}) or {}}
    for tag, level in ((0x00100020, Level.PATIENT), (0x0020000D, Level.STUDY), (0x0020000E, Level.SERIES)):
        if tag in replaced:
            return level
    return Level.INSTANCE


class BulkModifyApi(OrthancView):
    anonymize = False

    def post(self, request):
        body = body_json_object(request._request.body)
        if self.anonymize:
            level = Level.PATIENT
            mod = modification.anonymization_parse(body, level=level)
        else:
            level = _modify_level(body)
            mod = modification.modification_parse(body, level=level)
        transcode, quality = _transcode(body)
        ids = sorted(set(_resources(body)))
        if Resource.objects.filter(public_id__in=ids).count() != len(ids):
            raise UnknownResource()
        modification_sanity_check(mod, resources=ids)
        name = _anonymized_patient_name(body) if self.anonymize else None
        return _run(request, body, kind="ResourceModification", parameters={
            "anonymize": self.anonymize, "level": level.value, "resources": ids, "single": False, "body": body,
            "transcode": transcode, "quality": quality, "patient_name": name})


urlpatterns = [
    path("instances/<str:public_id>/modify", InstanceModifyApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/anonymize", InstanceModifyApi.as_view(level=Level.INSTANCE, anonymize=True)),
    *[path(f"{level.plural}/<str:public_id>/{action}",
           ResourceModifyApi.as_view(level=level, anonymize=action == "anonymize"))
      for level in (Level.PATIENT, Level.STUDY, Level.SERIES) for action in ("modify", "anonymize")],
    path("tools/bulk-modify", BulkModifyApi.as_view()),
    path("tools/bulk-anonymize", BulkModifyApi.as_view(anonymize=True)),
]


# -- bulk content -------------------------------------------------------------------------------------------

class BulkContentApi(OrthancView):
    """POST /tools/bulk-content: the JSON of each resource (unknown ones skipped), or of the resources at
    "Level" above or below them, with their metadata unless "Metadata" is false."""

    def post(self, request):
        body = body_object(request._request.body)
        ids = _resources(body)
        level = None
        if "Level" in body:
            try:
                level = Level.parse(body["Level"])
            except (ValueError, AttributeError):
                raise ParameterOutOfRange(f"Unknown resource type: {body['Level']}") from None
        with_metadata = boolean_field(body, "Metadata", True)
        fmt = tag_format_of_body(body)
        found: list[Resource] = []
        seen: set[int] = set()
        for resource in Resource.objects.filter(public_id__in=ids).select_related("parent"):
            for r in _at_level(resource, level):
                if r.id not in seen:
                    seen.add(r.id)
                    found.append(r)
        order = {public_id: k for k, public_id in enumerate(ids)}
        if level is None:
            found.sort(key=lambda r: order[r.public_id])
        details = selectors.resource_details(found)
        answer = []
        for r in found:
            item = resource_json(r, details, fmt=fmt)
            if with_metadata:
                item["Metadata"] = metadata.metadata_list(level=list(Level)[r.level], public_id=r.public_id,
                                                          numeric=False, expand=True)
            answer.append(dict(sorted(item.items())))
        return json_response(answer)


def _at_level(resource: Resource, level: Level | None) -> list[Resource]:
    if level is None or resource.level == level.depth:
        return [resource]
    if resource.level < level.depth:
        return selectors.resource_descendants(resource=resource, level=level)
    return [selectors.resource_ancestor(resource=resource, level=level)]


urlpatterns.append(path("tools/bulk-content", BulkContentApi.as_view()))


# -- merge and split ----------------------------------------------------------------------------------------

def _restructure_body(raw: bytes) -> dict:
    """Orthanc's SplitStudy and MergeStudy: the body must be JSON (else BadFileFormat), read as an object."""
    body = body_json(raw)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadFileFormat()
    return body


class MergeApi(OrthancView):
    def post(self, request, public_id: str):
        # Orthanc's order: the JSON, the target study (404), then the fields
        body = _restructure_body(request._request.body)
        target = restructure.study_get(public_id, "Cannot merge into an unknown study: ")
        ids = restructure.string_list(body, "Resources", required=True)
        keep_source = boolean_field(body, "KeepSource", False)
        sources = restructure.merge_sources(target=target, resource_ids=ids)
        plan = restructure.merge_plan(target=target)
        return _run(request, body, kind="MergeStudy", parameters={
            "plan": plan.as_dict(), "resources": [r.public_id for r in sources], "keep_source": keep_source},
            content={"TargetStudy": public_id})


class SplitApi(OrthancView):
    def post(self, request, public_id: str):
        from jobs.kinds.copies import UID_ROOT

        # Orthanc's order: the JSON, the study (404), the series and instances (404 each), then the options
        body = _restructure_body(request._request.body)
        study = restructure.study_get(public_id, "Cannot split unknown study ")
        series = restructure.string_list(body, "Series")
        instances = restructure.string_list(body, "Instances")
        sources = restructure.split_sources(study=study, series_ids=series, instance_ids=instances)
        if not series and not instances:
            raise BadRequest('Both the "Series" and the "Instances" fields are missing')
        keep_source = boolean_field(body, "KeepSource", False)
        keep_labels = boolean_field(body, "KeepLabels", False)
        from pydicom.uid import generate_uid

        plan = restructure.split_parse(body, study_uid=generate_uid(prefix=UID_ROOT))
        return _run(request, body, kind="SplitStudy", parameters={
            "plan": plan.as_dict(), "resources": [r.public_id for r in sources], "keep_source": keep_source,
            "keep_labels": keep_labels}, content={"TargetStudyUID": plan.study_uid})


urlpatterns += [
    path("studies/<str:public_id>/merge", MergeApi.as_view()),
    path("studies/<str:public_id>/split", SplitApi.as_view()),
]


# -- reconstruct --------------------------------------------------------------------------------------------

class ReconstructApi(OrthancView):
    """POST /{level}/{id}/reconstruct and /tools/reconstruct: the index rebuilt from the stored files, at once
    (Orthanc runs them in the request too); "ReconstructFiles" also rewrites the files (compression,
    IngestTranscoding); "LimitToThisLevelMainDicomTags" (1.12.4) only refreshes this level's tags."""

    read_only_absent = frozenset({"post"})

    def post(self, request, public_id: str | None = None):
        try:   # Orthanc reads the options of a JSON object and ignores any other body
            body = body_json(request._request.body)
        except BadFileFormat:
            body = {}
        if not isinstance(body, dict):
            body = {}
        files = boolean_field(body, "ReconstructFiles", False)
        if public_id is None:
            reconstruct.archive_reconstruct(files=files)
        else:
            limit = boolean_field(body, "LimitToThisLevelMainDicomTags", False)
            resource = selectors.resource_get(level=self.level, public_id=public_id)
            reconstruct.resource_reconstruct(resource=resource, files=files, this_level_only=limit)
        return text_response("")   # Orthanc answers an empty text/plain body


urlpatterns += [
    *[path(f"{level.plural}/<str:public_id>/reconstruct", ReconstructApi.as_view(level=level)) for level in Level],
    path("tools/reconstruct", ReconstructApi.as_view()),
]
