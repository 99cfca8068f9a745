"""/modalities and the DICOM SCU routes (echo, store, find, query/retrieve, move, get, storage commitment), as
Orthanc's OrthancRestModalities.cpp registers them. Requests are checked here with Orthanc's errors, in its
order; the network work is archive.network (scu, queries) and, for transfers, the jobs of jobs.kinds.dicom.

Checked against Orthanc 1.10.1 (tests/explorer/api/test_modalities_orthanc.py); 1.12 additions follow the
1.12.11 source: /get and RetrieveMethod (1.12.6), CalledAet/Host/Port in /store (1.11.3), jobs for /move with
ID/Path when asynchronous (1.11.1), Details in retrieve jobs (1.12.10), Resources in store jobs (1.12.11).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from archive import selectors
from archive.body_fields import boolean_field, unsigned_field
from archive.dicom.tags import parse_tag
from archive.errors import (
    ArchiveError,
    BadFileFormat,
    BadParameterType,
    OrthancError,
    ParameterOutOfRange,
    UnknownResource,
)
from archive.find_request import tag_format_of_body
from archive.levels import Level
from archive.models import ExportedResource, MetadataType, Resource
from archive.network import queries, registry, scu
from archive.network.registry import Modality
from explorer.api.base import OrthancView
from explorer.api.jobs import job_mode, job_result, submitted
from explorer.api.params import flag, tag_format
from explorer.api.rendering import bare_response, json_response, text_response
from jobs import engine
from jobs.kinds import dicom as dicom_jobs

_SHA1 = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{8}){4}$")


# -- request bodies -------------------------------------------------------------------------------------------

_NOT_JSON = object()


def _json(request) -> Any:
    """The body as JSON (any type), or _NOT_JSON (Orthanc's ParseJsonRequest failing)."""
    raw = request._request.body
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _NOT_JSON


def _object(request, message: str | None = "Must provide a JSON object") -> dict:
    value = _json(request)
    if not isinstance(value, dict):
        raise BadFileFormat(message)
    return value


def _unsigned(body: dict, name: str) -> int | None:
    return unsigned_field(body, name, 0) if name in body else None


def _port(body: dict) -> int | None:
    """The Port of /store (1.11.3), read as Toolbox::GetJsonUnsignedIntegerField: not an integer is a bad
    parameter type, a negative one out of range (and so, here, one above 65535, which Orthanc would wrap)."""
    if "Port" not in body:
        return None
    value = body["Port"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameterType()
    if not 0 <= value < 65536:
        raise ParameterOutOfRange()
    return value


def _string(body: dict, name: str, default: str) -> str:
    """Toolbox::GetJsonStringField: a value of another type is a bad parameter type, without details."""
    if name not in body:
        return default
    if not isinstance(body[name], str):
        raise BadParameterType()
    return body[name]


def _boolean(body: dict, name: str, default: bool) -> bool:
    """Toolbox::GetJsonBooleanField (SerializationToolbox's readers answer BadFileFormat: boolean_field)."""
    if name not in body:
        return default
    if not isinstance(body[name], bool):
        raise BadParameterType()
    return body[name]


def _params(name: str, body: Any = None) -> scu.ScuParameters:
    """GetAssociationParameters: the modality by its symbolic name, the body's Timeout."""
    modality = registry.modality_get(name)
    timeout = _unsigned(body, "Timeout") if isinstance(body, dict) else None
    return scu.scu_parameters(modality=modality, timeout=timeout)


def _submit(request, body: dict, *, kind: str, parameters: dict, content: dict) -> HttpResponse:
    """SubmitCommandsJob: synchronous by default (its Content answered), else {ID, Path}."""
    mode = job_mode(body)
    job = engine.job_submit(kind=kind, priority=mode.priority, parameters=parameters, content=content,
                            user_data=mode.user_data)
    if mode.asynchronous:
        return submitted(job)
    return job_result(engine.job_wait(job_id=job.id))


# -- /modalities ----------------------------------------------------------------------------------------------

MODALITY_OPERATIONS = ["configuration", "echo", "find", "find-instance", "find-patient", "find-series",
                       "find-study", "find-worklist", "get", "move", "query", "storage-commitment", "store",
                       "store-straight"]


class ModalityListApi(OrthancView):
    def get(self, request):
        modalities = registry.modalities_all()
        if flag(request, "expand"):
            return json_response({name: registry.modality_json(m) for name, m in modalities.items()})
        return json_response(sorted(modalities))


class ModalityApi(OrthancView):
    def get(self, request, name: str):
        if name not in registry.modalities_all():
            return bare_response(404)  # Orthanc's handler answers nothing
        return json_response(MODALITY_OPERATIONS)

    def put(self, request, name: str):
        body = _json(request)
        if body is _NOT_JSON:
            raise BadFileFormat()
        registry.modality_set(name, registry.modality_parse(body))
        return text_response("")

    def delete(self, request, name: str):
        registry.modality_delete(name)
        return text_response("")


class ModalityConfigurationApi(OrthancView):
    def get(self, request, name: str):
        return json_response(registry.modality_json(registry.modality_get(name)))


# -- C-ECHO ---------------------------------------------------------------------------------------------------

def _echo(params: scu.ScuParameters, body: Any) -> HttpResponse:
    """ExecuteEcho: C-ECHO, then with CheckFind (default DicomEchoChecksFind) a C-FIND of a random study,
    which fails when the remote does not know us. A failed echo is a bare 500."""
    if isinstance(body, dict) and "CheckFind" in body:
        check_find = boolean_field(body, "CheckFind", False)
    else:
        check_find = bool(settings.ORTHANC.get("DicomEchoChecksFind", False))
    if not scu.echo(params):
        return bare_response(500)
    if check_find:
        from pydicom.uid import generate_uid

        queries.modality_find(params, level=Level.STUDY, query={queries.STUDY_UID: generate_uid()},
                              normalize=False)
    return json_response({})


class EchoApi(OrthancView):
    def post(self, request, name: str):
        body: Any = {}
        if request._request.body:
            body = _json(request)
            if body is _NOT_JSON:
                raise BadFileFormat("Cannot parse the JSON body")
        return _echo(_params(name, body), body)


class DicomEchoToolApi(OrthancView):
    """POST /tools/dicom-echo (1.8.1): a modality described in the body."""

    def post(self, request):
        body = _json(request)
        if body is _NOT_JSON:
            raise BadFileFormat("Cannot parse the JSON body")
        modality = registry.modality_parse(body)
        timeout = _unsigned(body, "Timeout") if isinstance(body, dict) else None
        return _echo(scu.scu_parameters(modality=modality, local_aet=modality.local_aet or None,
                                        timeout=timeout), body)


# -- legacy C-FIND (deprecated in Orthanc, kept) --------------------------------------------------------------

def _tags(*keywords: str) -> list[int]:
    return [int(parse_tag(k)) for k in keywords]


TEMPLATES = {  # DicomMap::SetupFind*Template (the main tags of 1.10.1, less those outside the level's module)
    Level.PATIENT: _tags("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs"),
    Level.STUDY: _tags("StudyDate", "StudyTime", "StudyID", "StudyDescription", "AccessionNumber",
                       "StudyInstanceUID", "ReferringPhysicianName", "PatientID"),
    Level.SERIES: _tags("SeriesDate", "SeriesTime", "Modality", "SeriesDescription", "BodyPartExamined",
                        "ProtocolName", "SeriesNumber", "SeriesInstanceUID", "OperatorsName",
                        "PerformedProcedureStepDescription", "AccessionNumber", "PatientID", "StudyInstanceUID"),
    Level.INSTANCE: _tags("InstanceCreationDate", "InstanceCreationTime", "InstanceNumber", "SOPInstanceUID",
                          "AccessionNumber", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
}
# What each level keeps of the merged fields besides its own main tags (FindPatient ... FindInstance).
_KEPT_ABOVE = {
    Level.PATIENT: [],
    Level.STUDY: [queries.PATIENT_ID, queries.ACCESSION, 0x00080061],
    Level.SERIES: [queries.PATIENT_ID, queries.ACCESSION, queries.STUDY_UID],
    Level.INSTANCE: [queries.PATIENT_ID, queries.ACCESSION, queries.STUDY_UID, queries.SERIES_UID],
}


def _merge(level: Level, body: Any) -> dict[int, str] | None:
    """MergeQueryAndTemplate: the level's template with the body's values; None when the body is not an
    object (Orthanc then answers nothing)."""
    if not isinstance(body, dict):
        return None
    fields = {tag: "" for tag in TEMPLATES[level]}
    for name, value in body.items():
        try:
            tag = int(parse_tag(name))
        except ValueError:
            raise ArchiveError(orthanc_error=OrthancError.UNKNOWN_DICOM_TAG) from None
        if isinstance(value, dict | list):
            raise ArchiveError(orthanc_error=OrthancError.INTERNAL_ERROR)
        fields[tag] = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    return fields


def _restricted(level: Level, fields: dict[int, str]) -> dict[int, str]:
    from archive.dicom.tags import MAIN_DICOM_TAGS

    own = {int(t) for t in MAIN_DICOM_TAGS[level]}
    return {t: v for t, v in fields.items() if t in own or t in _KEPT_ABOVE[level]}


def _too_short(level: Level, fields: dict[int, str]) -> bool:
    """Orthanc refuses (answers nothing to) lower-level finds without identifiers longer than 2 characters."""
    if level is Level.PATIENT:
        return False
    ids = len(fields.get(queries.ACCESSION, "")) <= 2 and len(fields.get(queries.PATIENT_ID, "")) <= 2
    if level is Level.STUDY:
        return ids
    if level is Level.SERIES:
        return ids or len(fields.get(queries.STUDY_UID, "")) <= 2
    return ids or len(fields.get(queries.STUDY_UID, "")) <= 2 or len(fields.get(queries.SERIES_UID, "")) <= 2


def _find(params: scu.ScuParameters, level: Level, fields: dict[int, str]) -> list[dict]:
    return queries.modality_find(params, level=level, query=_restricted(level, fields), normalize=True)


class LegacyFindApi(OrthancView):
    def post(self, request, name: str):
        body = _json(request)
        fields = _merge(self.level, body)
        if fields is None or _too_short(self.level, fields):
            return bare_response(400)
        answers = _find(_params(name, body), self.level, fields)
        return json_response([queries.render(a, "simplify") for a in answers])


class HierarchicalFindApi(OrthancView):
    """POST /modalities/{id}/find: patients, their studies, their series (one association in Orthanc)."""

    def post(self, request, name: str):
        body = _json(request)
        fields = _merge(Level.PATIENT, body)
        if fields is None:
            return bare_response(400)
        params = _params(name, body)
        result = []
        for patient in _find(params, Level.PATIENT, fields):
            patient_json = queries.render(patient, "simplify")
            study_fields = _merge(Level.STUDY, body)
            study_fields.update(_copy(patient, queries.PATIENT_ID))
            patient_json["Studies"] = []
            for study in _find(params, Level.STUDY, study_fields):
                study_json = queries.render(study, "simplify")
                series_fields = _merge(Level.SERIES, body)
                series_fields.update(_copy(study, queries.PATIENT_ID, queries.STUDY_UID))
                study_json["Series"] = [queries.render(s, "simplify")
                                        for s in _find(params, Level.SERIES, series_fields)]
                patient_json["Studies"].append(study_json)
            result.append(patient_json)
        return json_response(result)


def _copy(answer: dict, *tags: int) -> dict[int, str]:
    values = queries.full_values(answer)
    return {t: values[t] for t in tags if t in values}


class FindWorklistApi(OrthancView):
    def post(self, request, name: str):
        body = _json(request)
        if body is _NOT_JSON:
            raise BadFileFormat("Must provide a JSON object")
        if isinstance(body, dict) and "Query" in body:  # 1.9.5
            query, fmt = body["Query"], tag_format_of_body(body, "simplify")
        else:
            query, fmt = body, "simplify"
        if not isinstance(query, dict):
            raise BadFileFormat()
        params = _params(name, body)
        answers = queries.modality_find_worklist(params, query=query)
        return json_response([queries.render(a, fmt) for a in answers])


# -- /query and /queries --------------------------------------------------------------------------------------

def _query_answer(row) -> HttpResponse:
    return json_response({"ID": row.id, "Path": f"/queries/{row.id}"})


class QueryApi(OrthancView):
    def post(self, request, name: str):
        body = _object(request)
        if not isinstance(body.get("Level"), str):
            raise BadFileFormat("The JSON body must contain field Level")
        if "Normalize" in body and not isinstance(body["Normalize"], bool):
            raise BadFileFormat("The field Normalize must contain a Boolean")
        if "Query" in body and not isinstance(body["Query"], dict):
            raise BadFileFormat("The field Query must contain a JSON object")
        if "LocalAet" in body and not isinstance(body["LocalAet"], str):
            raise BadFileFormat("The field LocalAet must contain a string")
        registry.modality_get(name)
        level = queries.level_parse(body["Level"])
        query = queries.tags_parse(body["Query"]) if "Query" in body else {}
        timeout = _unsigned(body, "Timeout")
        row = queries.query_run(modality_name=name, level=level, query=query,
                                normalize=body.get("Normalize", True), local_aet=body.get("LocalAet"),
                                timeout=timeout)
        return _query_answer(row)


class QueryListApi(OrthancView):
    def get(self, request):
        return json_response(queries.queries_list())


class QueryItemApi(OrthancView):
    def get(self, request, query_id: str):
        queries.query_get(query_id=query_id)
        return json_response(["answers", "level", "modality", "query", "retrieve"])

    def delete(self, request, query_id: str):
        queries.query_delete(query_id=query_id)
        return text_response("")


class QueryAnswersApi(OrthancView):
    def get(self, request, query_id: str):
        row = queries.query_get(query_id=query_id)
        if flag(request, "expand"):
            fmt = tag_format(request, "full")
            return json_response([queries.render(a, fmt) for a in row.answers])
        return json_response([str(k) for k in range(len(row.answers))])


class QueryAnswerApi(OrthancView):
    def get(self, request, query_id: str, index: str):
        row = queries.query_get(query_id=query_id)
        queries.query_answer(row, index)
        operations = ["content", "retrieve"]
        level = queries.query_level(row)
        # Orthanc's switch falls through, and names the first one "query-study" (sic)
        if level is Level.PATIENT:
            operations.append("query-study")
        if level in (Level.PATIENT, Level.STUDY):
            operations.append("query-series")
        if level in (Level.PATIENT, Level.STUDY, Level.SERIES):
            operations.append("query-instances")
        return json_response(operations)


class QueryAnswerContentApi(OrthancView):
    def get(self, request, query_id: str, index: str):
        queries.answer_index(index)
        row = queries.query_get(query_id=query_id)
        return json_response(queries.render(queries.query_answer(row, index), tag_format(request, "full")))


class QueryChildrenApi(OrthancView):
    def post(self, request, query_id: str, index: str):
        queries.answer_index(index)
        parent = queries.query_get(query_id=query_id)
        queries.query_answer(parent, index)
        if self.level.depth <= queries.query_level(parent).depth:
            raise UnknownResource()
        body = _json(request)
        if body is _NOT_JSON:
            raise BadFileFormat("Must provide a JSON object")
        body = body if isinstance(body, dict) else {}
        timeout = _unsigned(body, "Timeout")
        query = queries.tags_parse(body["Query"]) if "Query" in body else {}
        row = queries.query_children(parent=parent, index=index, level=self.level, query=query, timeout=timeout)
        return _query_answer(row)


class QueryLevelApi(OrthancView):
    def get(self, request, query_id: str):
        return text_response(queries.query_get(query_id=query_id).level)


class QueryModalityApi(OrthancView):
    def get(self, request, query_id: str):
        return text_response(queries.query_get(query_id=query_id).modality)


class QueryQueryApi(OrthancView):
    def get(self, request, query_id: str):
        row = queries.query_get(query_id=query_id)
        return json_response(queries.render(queries.tags_full(queries.query_tags(row)), tag_format(request, "full")))


RETRIEVE_ITEM_TAGS = (queries.QR_LEVEL, queries.PATIENT_ID, queries.STUDY_UID, queries.SERIES_UID, queries.SOP_UID,
                      queries.ACCESSION)


class QueryRetrieveApi(OrthancView):
    """/queries/{id}/retrieve and /queries/{id}/answers/{index}/retrieve: a DicomMoveScu or DicomGetScu job."""

    one = False

    def post(self, request, query_id: str, index: str | None = None):
        if index is not None:
            queries.answer_index(index)
        row = queries.query_get(query_id=query_id)
        remote = queries.query_remote(row)
        target = remote.local_aet or scu.default_aet()
        timeout: int | None = row.timeout or None
        method = remote.retrieve_method
        body = _json(request)
        if isinstance(body, dict):
            target = _string(body, "TargetAet", target)
            if "Timeout" in body:
                value = body["Timeout"]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise BadParameterType()
                if value >= 2**31:      # more than any socket takes (an OverflowError, a 500)
                    raise BadFileFormat()
                if value >= 0:
                    timeout = value
            chosen = body.get("RetrieveMethod", "")     # SerializationToolbox::ReadString (1.12.6)
            if not isinstance(chosen, str):
                raise BadFileFormat("String value expected in field: RetrieveMethod")
            if chosen:
                method = _retrieve_method(chosen)
        else:
            raw = request._request.body
            if raw:
                target = raw.decode("utf-8", "replace")
            body = {}
        method = method or _retrieve_method(str(settings.ORTHANC.get("DicomDefaultRetrieveMethod", "C-MOVE")))
        answers = [queries.query_answer(row, index)] if index is not None else row.answers
        items, commands = [], []
        for answer in answers:
            values = queries.full_values(answer)
            items.append({t: values[t] for t in RETRIEVE_ITEM_TAGS if t in values})
            commands.append({t: values[t] for t in (*RETRIEVE_ITEM_TAGS, 0x00080062) if t in values})
        params = scu.scu_parameters(modality=remote, local_aet=row.local_aet, timeout=timeout)
        is_move = method == "C-MOVE"
        permissive = boolean_field(body, "Permissive", False)
        content = dicom_jobs.retrieve_content(params=params, commands=items, fmt=tag_format_of_body(body, "short"),
                                              target_aet=target if is_move else None)
        parameters = dicom_jobs.retrieve_parameters(params=params, commands=commands, permissive=permissive,
                                                    target_aet=target if is_move else None, timeout=timeout)
        return _submit(request, body, kind=dicom_jobs.MOVE if is_move else dicom_jobs.GET, parameters=parameters,
                       content=content)


def _retrieve_method(text: str) -> str:
    if text not in registry.RETRIEVE_METHODS:
        raise ParameterOutOfRange(f"Unknown retrieve method: {text}")
    return text


# -- C-MOVE and C-GET of given resources ----------------------------------------------------------------------

def _resources(body: Any, level: Level) -> list[dict[int, str]]:
    """ParseMoveGetJob: each resource an object of tags to strings, with the Query/Retrieve Level."""
    out = []
    for item in body["Resources"]:
        if not isinstance(item, dict):
            raise BadFileFormat()
        tags: dict[int, str] = {}
        for name, value in item.items():
            try:
                tag = int(parse_tag(name))
            except ValueError:
                raise ArchiveError(orthanc_error=OrthancError.UNKNOWN_DICOM_TAG) from None
            if not isinstance(value, str):
                raise BadFileFormat()
            tags[tag] = value
        tags[queries.QR_LEVEL] = queries.LEVEL_TEXT[level]
        out.append(tags)
    return out


class RetrieveApi(OrthancView):
    """POST /modalities/{id}/move and (1.12.6) /modalities/{id}/get."""

    is_move = True

    def post(self, request, name: str):
        body = _json(request)
        if (not isinstance(body, dict) or not isinstance(body.get("Resources"), list)
                or not isinstance(body.get("Level"), str)):
            raise BadFileFormat("Must provide a JSON body containing fields Resources and Level")
        level = queries.level_parse(body["Level"])
        modality = registry.modality_get(name)
        local_aet = _string(body, "LocalAet", modality.local_aet or scu.default_aet())
        timeout = _unsigned(body, "Timeout")
        commands = _resources(body, level)
        params = scu.scu_parameters(modality=modality, local_aet=local_aet, timeout=timeout)
        target = _string(body, "TargetAet", scu.default_aet()) if self.is_move else None
        permissive = boolean_field(body, "Permissive", False)
        content = dicom_jobs.retrieve_content(params=params, commands=commands, fmt="short", target_aet=target)
        parameters = dicom_jobs.retrieve_parameters(params=params, commands=commands, permissive=permissive,
                                                    target_aet=target, timeout=timeout)
        return _submit(request, body, kind=dicom_jobs.MOVE if self.is_move else dicom_jobs.GET,
                       parameters=parameters, content=content)


# -- C-STORE --------------------------------------------------------------------------------------------------

def _export_request(request) -> tuple[list[str], dict]:
    """GetInstancesToExport's body: an ID as text, a JSON string, a list of IDs, or {"Resources": [...], ...}."""
    raw = request._request.body
    text = raw.decode("utf-8", "replace").strip()
    if _SHA1.match(text):
        return [text], {}
    value = _json(request)
    if value is _NOT_JSON:
        raise BadFileFormat("Must provide a JSON value")
    if isinstance(value, str):
        return [value], {}
    if isinstance(value, list):
        resources, options = value, {}
    elif isinstance(value, dict):
        if "Resources" not in value:
            raise BadFileFormat('Missing field in JSON: "Resources"')
        resources, options = value["Resources"], value
        if not isinstance(resources, list):
            raise BadFileFormat('JSON field "Resources" must contain an array')
    else:
        raise BadFileFormat("Must provide a JSON object, or a JSON array of strings")
    ids = []
    for item in resources:
        if not isinstance(item, str):
            raise BadFileFormat("Resources to be exported must be specified as a JSON array of strings")
        ids.append(item.strip())
    return ids, options


def _export_resources(ids: list[str], remote_name: str) -> tuple[list[Resource], list[str]]:
    """The resources (checked) and their instances, each series in InstanceNumber order (Orthanc 1.12.11)."""
    roots: list[Resource] = []
    for public_id in ids:
        if not _SHA1.match(public_id):
            raise BadFileFormat(f"This string is not a valid Orthanc identifier: {public_id}")
        roots.append(selectors.resource_get_any_level(public_id=public_id))
    instances: list[str] = []  # as Orthanc, an instance named twice (a series and one of its instances) goes twice
    for root in roots:
        found = selectors.resource_descendants(resource=root, level=Level.INSTANCE)
        by_series: dict[int, list[Resource]] = {}
        for instance in found:
            by_series.setdefault(instance.parent_id, []).append(instance)
        for members in by_series.values():
            instances += [i.public_id for i in sorted(members, key=_instance_number)]
    if settings.ORTHANC.get("LogExportedResources", False):
        _log_exports(roots, remote_name)
    return roots, instances


def _instance_number(instance: Resource) -> tuple[int, int]:
    try:
        return (0, int(str(instance.main_tags.get("InstanceNumber", "")).strip()))
    except ValueError:
        return (1, instance.index_in_series or 0)


def _log_exports(roots: list[Resource], remote: str) -> None:
    from archive.timeutil import iso, utcnow

    for root in roots:
        chain = {root.level: root}
        current = root
        while current.parent_id is not None:
            current = Resource.objects.get(id=current.parent_id)
            chain[current.level] = current
        tags = {level: chain[level].main_tags if level in chain else {} for level in range(4)}
        ExportedResource.objects.create(
            level=root.level, public_id=root.public_id, remote_modality=remote, date=iso(utcnow()),
            patient_id=tags[0].get("PatientID", ""), study_instance_uid=tags[1].get("StudyInstanceUID", ""),
            series_instance_uid=tags[2].get("SeriesInstanceUID", ""),
            sop_instance_uid=tags[3].get("SOPInstanceUID", ""))


def _generate_transaction_uid() -> str:
    """Toolbox::GenerateDicomPrivateUniqueIdentifier: a UUID-derived UID (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


class StoreApi(OrthancView):
    def post(self, request, name: str):
        ids, body = _export_request(request)
        roots, instances = _export_resources(ids, name)
        modality = registry.modality_get(name)
        local_aet = _string(body, "LocalAet", modality.local_aet or scu.default_aet())
        originator_aet = _string(body, "MoveOriginatorAet", scu.default_aet())
        originator_id = body.get("MoveOriginatorID", 0)
        if isinstance(originator_id, bool) or not isinstance(originator_id, int):
            raise BadParameterType()        # Toolbox::GetJsonIntegerField
        port = _port(body)
        modality = Modality(**{**modality.__dict__, "aet": _string(body, "CalledAet", modality.aet),
                               "host": _string(body, "Host", modality.host),
                               "port": modality.port if port is None else port})
        if originator_id and not 0 <= originator_id < 65536:
            raise ParameterOutOfRange()
        commitment = _boolean(body, "StorageCommitment", False)
        timeout = _unsigned(body, "Timeout")
        params = scu.scu_parameters(modality=modality, local_aet=local_aet, timeout=timeout)
        content: dict[str, Any] = {
            "Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": len(instances),
            "LocalAet": params.local_aet, "ParentResources": sorted({r.public_id for r in roots}),
            "RemoteAet": modality.aet,
            "Resources": [{"ID": public_id, "Type": list(Level)[level].value}
                          for public_id, level in sorted({(r.public_id, r.level) for r in roots})],
        }
        parameters: dict[str, Any] = {
            "remote": registry.modality_json(modality), "local_aet": params.local_aet, "timeout": timeout,
            "instances": instances, "permissive": boolean_field(body, "Permissive", False),
            "storage_commitment": commitment, "move_originator": None}
        if originator_id:
            content.update({"MoveOriginatorAET": originator_aet, "MoveOriginatorID": originator_id})
            parameters["move_originator"] = [originator_aet, originator_id]
        if commitment:
            parameters["transaction_uid"] = content["StorageCommitmentTransactionUID"] = _generate_transaction_uid()
        return _submit(request, body, kind=dicom_jobs.STORE, parameters=parameters, content=content)


class StoreStraightApi(OrthancView):
    def post(self, request, name: str):
        params = _params(name)
        data = request._request.body
        scu.dicom_parse(data)
        with scu.StoreConnection(params) as connection:
            sop_class, sop_instance = connection.store(data)
        return json_response({"SOPClassUID": sop_class, "SOPInstanceUID": sop_instance})


# -- storage commitment ---------------------------------------------------------------------------------------

def _instance_references(public_id: str) -> list[tuple[str, str]]:
    from archive.models import Metadata

    root = selectors.resource_get_any_level(public_id=public_id)
    instances = selectors.resource_descendants(resource=root, level=Level.INSTANCE)
    classes = dict(Metadata.objects.filter(resource_id__in=[i.id for i in instances],
                                           type=MetadataType.SopClassUid).values_list("resource_id", "value"))
    out = []
    for instance in instances:
        uid = instance.main_tags.get("SOPInstanceUID")
        if instance.id not in classes or uid is None:
            raise ArchiveError(f"Cannot retrieve SOP Class/Instance UID of Orthanc instance: {instance.public_id}")
        out.append((classes[instance.id], uid))
    return out


class StorageCommitmentRequestApi(OrthancView):
    def post(self, request, name: str):
        body = _object(request, "Must provide a JSON object with a list of resources")
        if "Resources" not in body and "DicomInstances" not in body:
            raise BadFileFormat('Empty storage commitment request, one of these fields is mandatory: "Resources" '
                                'or "DicomInstances"')
        references: list[tuple[str, str]] = []
        if "Resources" in body:
            if not isinstance(body["Resources"], list):
                raise BadFileFormat('The "Resources" field must provide an array of Orthanc resources')
            for item in body["Resources"]:
                if not isinstance(item, str):
                    raise BadFileFormat('The "Resources" field must provide an array of strings, found: '
                                        + json.dumps(item, indent=3) + "\n")
                references += _instance_references(item)
        if "DicomInstances" in body:
            references += _dicom_instances(body["DicomInstances"])
        transaction_uid = _generate_transaction_uid()
        remote = registry.modality_get(name)
        params = scu.scu_parameters(modality=remote, local_aet=scu.default_aet(), timeout=_unsigned(body, "Timeout"))
        queries.storage_commitment_pending(transaction_uid=transaction_uid, remote_aet=remote.aet)
        scu.storage_commitment_request(params, transaction_uid=transaction_uid, references=references,
                                       on_report=queries.storage_commitment_report_dataset)
        return json_response({"ID": transaction_uid, "Path": f"/storage-commitment/{transaction_uid}"})


def _dicom_instances(items: Any) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise BadFileFormat('The "DicomInstances" field must provide an array of DICOM instances')
    out = []
    for item in items:
        if isinstance(item, list):
            if len(item) != 2 or not all(isinstance(v, str) for v in item):
                raise BadFileFormat("An instance entry must provide an array with 2 strings: SOP Class UID and "
                                    "SOP Instance UID")
            out.append((item[0], item[1]))
        elif isinstance(item, dict):
            if not isinstance(item.get("SOPClassUID"), str) or not isinstance(item.get("SOPInstanceUID"), str):
                raise BadFileFormat('An instance entry must provide an object with 2 string fiels: "SOPClassUID" '
                                    'and "SOPInstanceUID')
            out.append((item["SOPClassUID"], item["SOPInstanceUID"]))
        else:
            raise BadFileFormat("JSON array or object is expected to specify one instance to be queried, found: "
                                + json.dumps(item, indent=3) + "\n")
    return out


class StorageCommitmentReportApi(OrthancView):
    def get(self, request, transaction_uid: str):
        report = queries.storage_commitment_get(transaction_uid=transaction_uid)
        return json_response(queries.storage_commitment_json(report))


class StorageCommitmentRemoveApi(OrthancView):
    def post(self, request, transaction_uid: str):
        queries.storage_commitment_remove(transaction_uid=transaction_uid)
        return json_response({})


urlpatterns = [
    path("modalities", ModalityListApi.as_view()),
    path("modalities/<str:name>", ModalityApi.as_view()),
    path("modalities/<str:name>/configuration", ModalityConfigurationApi.as_view()),  # New in Orthanc 1.8.1
    path("modalities/<str:name>/echo", EchoApi.as_view()),
    path("modalities/<str:name>/find-patient", LegacyFindApi.as_view(level=Level.PATIENT)),
    path("modalities/<str:name>/find-study", LegacyFindApi.as_view(level=Level.STUDY)),
    path("modalities/<str:name>/find-series", LegacyFindApi.as_view(level=Level.SERIES)),
    path("modalities/<str:name>/find-instance", LegacyFindApi.as_view(level=Level.INSTANCE)),
    path("modalities/<str:name>/find", HierarchicalFindApi.as_view()),
    path("modalities/<str:name>/find-worklist", FindWorklistApi.as_view()),
    path("modalities/<str:name>/store", StoreApi.as_view()),
    path("modalities/<str:name>/store-straight", StoreStraightApi.as_view()),  # New in Orthanc 1.6.1
    path("modalities/<str:name>/move", RetrieveApi.as_view(is_move=True)),
    path("modalities/<str:name>/get", RetrieveApi.as_view(is_move=False)),  # New in Orthanc 1.12.6
    path("modalities/<str:name>/query", QueryApi.as_view()),
    path("modalities/<str:name>/storage-commitment", StorageCommitmentRequestApi.as_view()),
    path("queries", QueryListApi.as_view()),
    path("queries/<str:query_id>", QueryItemApi.as_view()),
    path("queries/<str:query_id>/answers", QueryAnswersApi.as_view()),
    path("queries/<str:query_id>/answers/<str:index>", QueryAnswerApi.as_view()),
    path("queries/<str:query_id>/answers/<str:index>/content", QueryAnswerContentApi.as_view()),
    path("queries/<str:query_id>/answers/<str:index>/retrieve", QueryRetrieveApi.as_view()),
    path("queries/<str:query_id>/answers/<str:index>/query-studies", QueryChildrenApi.as_view(level=Level.STUDY)),
    path("queries/<str:query_id>/answers/<str:index>/query-series", QueryChildrenApi.as_view(level=Level.SERIES)),
    path("queries/<str:query_id>/answers/<str:index>/query-instances",
         QueryChildrenApi.as_view(level=Level.INSTANCE)),
    path("queries/<str:query_id>/level", QueryLevelApi.as_view()),
    path("queries/<str:query_id>/modality", QueryModalityApi.as_view()),
    path("queries/<str:query_id>/query", QueryQueryApi.as_view()),
    path("queries/<str:query_id>/retrieve", QueryRetrieveApi.as_view()),
    path("storage-commitment/<str:transaction_uid>", StorageCommitmentReportApi.as_view()),
    path("storage-commitment/<str:transaction_uid>/remove", StorageCommitmentRemoveApi.as_view()),
    path("tools/dicom-echo", DicomEchoToolApi.as_view()),  # New in Orthanc 1.8.1
]
