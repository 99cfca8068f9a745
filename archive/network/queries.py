"""What our DICOM SCU keeps between requests: the queries of /modalities/{id}/query with their answers
(/queries/{id}, Orthanc's QueryRetrieveHandler kept in its SharedArchive), and the storage commitment reports
(/storage-commitment/{id}, Orthanc's StorageCommitmentReports). Orthanc keeps both in memory (QueryRetrieveSize
queries, 100 reports); several processes serve us, so they are rows (DicomQuery, StorageCommitmentReport).

Also the C-FIND identifiers Orthanc builds (DicomControlUserConnection::Find): the query normalized to the tags
of the level (NormalizeFindQuery), the manufacturer's quirks (ConvertQueryFields: "GenericNoWildcardInDates"
empties a "*" in DA attributes, "GenericNoUniversalWildcard" in every attribute), the unique keys of the level
and the levels above added with universal matching (PS3.4 C.2.2.2.3: empty, or "*" for "GE"), and the answers
as Orthanc shows them (each a DicomMap: sequences left out, QueryRetrieveLevel and SpecificCharacterSet added
when the remote left them out).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from archive.dicom.json import convert_full, dataset_to_full, dicom_encoding
from archive.dicom.tags import ENCODING_TO_CHARSET, MAIN_DICOM_TAGS, parse_tag, tag_key, tag_name
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
from archive.models import DicomQuery, StorageCommitmentReport
from archive.network import scu
from archive.network.registry import Modality, modality_get, modality_json, modality_parse
from archive.settings import archive_settings

QR_LEVEL = 0x00080052
CHARSET = 0x00080005
PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID, ACCESSION = 0x00100020, 0x0020000D, 0x0020000E, 0x00080018, 0x00080050
LEVEL_TEXT = {Level.PATIENT: "PATIENT", Level.STUDY: "STUDY", Level.SERIES: "SERIES", Level.INSTANCE: "IMAGE"}
# The unique keys that identify a resource of each level in a C-MOVE or C-GET (Orthanc's Move(), PS3.4 C.4.2.2.1).
RETRIEVE_KEYS = {Level.PATIENT: (PATIENT_ID,), Level.STUDY: (STUDY_UID,), Level.SERIES: (STUDY_UID, SERIES_UID),
                 Level.INSTANCE: (STUDY_UID, SERIES_UID, SOP_UID)}
# NormalizeFindQuery: the attributes a level may carry besides the main tags of it and the levels above.
_LEVEL_EXTRAS = {
    Level.PATIENT: (0x00201200, 0x00201202, 0x00201204),  # NumberOfPatientRelated{Studies,Series,Instances}
    Level.STUDY: (0x00080061, 0x00201206, 0x00201208, 0x00080062),  # ModalitiesInStudy, ..., SOPClassesInStudy
    Level.SERIES: (0x00201209,),  # NumberOfSeriesRelatedInstances
    Level.INSTANCE: (),
}


def level_parse(text: Any) -> Level:
    """Orthanc's StringToResourceType (Level.parse); ParameterOutOfRange otherwise."""
    if isinstance(text, str):
        try:
            return Level.parse(text.strip())   # a QueryRetrieveLevel value may be padded
        except ValueError:
            pass
    raise ParameterOutOfRange()


def tags_parse(value: Any, *, field: str = "Query") -> dict[int, str]:
    """SerializationToolbox::ReadMapOfTags: an object of tag names to strings."""
    message = f"Associative array of DICOM tags to strings expected in field: {field}"
    if not isinstance(value, dict):
        raise BadFileFormat(message)
    out: dict[int, str] = {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise BadFileFormat(message)
        try:
            out[int(parse_tag(name))] = item
        except ValueError:
            raise BadFileFormat(message) from None
    return out


def default_encoding() -> str:
    return archive_settings().default_encoding


def dataset_of(tags: dict[int, Any]) -> Dataset:
    """A dataset in the DefaultEncoding (with its SpecificCharacterSet) from tag values, as Orthanc's
    ParsedDicomFile(DicomMap) or ParsedDicomFile::CreateFromJson (lists of objects are sequences)."""
    from archive.create import Options, _Builder  # the JSON-to-dataset writer of /tools/create-dicom

    builder = _Builder(encoding=default_encoding(), options=Options(decode_binary=False),
                       dictionary=archive_settings().dictionary)
    builder.set_encoding(_query_encoding(tags.get(CHARSET)))
    for tag in sorted(tags):
        if tag == CHARSET:
            continue
        builder.replace(tag, tags[tag])
    return builder.ds


def _query_encoding(charset: Any) -> str:
    """ParsedDicomFile::CreateFromDicomMap: a SpecificCharacterSet among the values sets the encoding (an empty
    one means the DefaultEncoding); one Orthanc does not support is refused."""
    if charset is None or charset == "":
        return default_encoding()
    encoding = dicom_encoding(charset) if isinstance(charset, str) else None
    if encoding is None:
        raise ParameterOutOfRange(f'Unsupported value for the SpecificCharacterSet (0008,0005) tag: "{charset}"')
    return encoding


def _allowed(level: Level) -> set[int]:
    allowed = {CHARSET, *_LEVEL_EXTRAS[level]}
    for up in list(Level)[:level.depth + 1]:
        allowed.update(int(t) for t in MAIN_DICOM_TAGS[up])
        allowed.update(int(t) for t in archive_settings().extra_main_tags(up))
    return allowed


def _is_date(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "DA"
    except KeyError:
        return False


def find_identifier(*, level: Level, query: dict[int, str], manufacturer: str, normalize: bool) -> Dataset:
    """The C-FIND identifier Orthanc sends for ``query`` at ``level`` (see the module docstring)."""
    fields = dict(query)
    if normalize:
        fields = {t: v for t, v in fields.items() if t in _allowed(level)}
        if manufacturer in ("GenericNoWildcardInDates", "GenericNoUniversalWildcard"):
            for tag, value in fields.items():
                if value == "*" and (manufacturer == "GenericNoUniversalWildcard" or _is_date(tag)):
                    fields[tag] = ""
    universal = "*" if manufacturer == "GE" else ""
    keys = {Level.PATIENT: (PATIENT_ID,), Level.STUDY: (ACCESSION, STUDY_UID, PATIENT_ID),
            Level.SERIES: (SERIES_UID, ACCESSION, STUDY_UID, PATIENT_ID),
            Level.INSTANCE: (SOP_UID, SERIES_UID, ACCESSION, STUDY_UID, PATIENT_ID)}[level]
    for tag in keys:
        fields.setdefault(tag, universal)
    fields[QR_LEVEL] = LEVEL_TEXT[level]
    return dataset_of(fields)


def retrieve_identifier(*, level: Level, answer: dict[int, str], manufacturer: str) -> Dataset:
    """The C-MOVE / C-GET identifier of a resource: the unique keys of its level (BadRequest "Missing tag"
    when one is absent) and the Query/Retrieve Level (Orthanc's DicomControlUserConnection::Move)."""
    fields: dict[int, str] = {}
    for tag in RETRIEVE_KEYS[level]:
        if tag not in answer:
            raise BadRequest(f"Missing tag {tag_key(tag)}")
        fields[tag] = answer[tag]
    if manufacturer == "GenericNoUniversalWildcard":
        fields = {t: ("" if v == "*" else v) for t, v in fields.items()}
    fields[QR_LEVEL] = LEVEL_TEXT[level]
    return dataset_of(fields)


def answer_full(ds: Dataset, *, level: Level | None) -> dict:
    """An answer as Orthanc keeps it (a DicomMap summary), in the full format: no sequences; the level and the
    character set added when absent."""
    full = dataset_to_full(ds, max_length=0, default_encoding=default_encoding())
    out = {key: entry for key, entry in full.items() if entry["Type"] in ("String", "Null")}
    for elem in ds:  # a remote may answer with group 0002 elements: they are a DicomMap's too
        if elem.tag.group == 2 and elem.VR not in ("OB", "UN", "SQ"):
            value = elem.value.decode("latin-1") if isinstance(elem.value, bytes) else str(elem.value)
            out[tag_key(elem.tag)] = {"Name": tag_name(elem.tag), "Type": "String", "Value": value.rstrip(" \x00")}
    # Orthanc keeps each answer as a DICOM file (DicomFindAnswers): DCMTK fills its meta header from the
    # dataset, and Orthanc's summary then shows MediaStorageSOP{Class,Instance}UID (seen with 1.10.1).
    for meta, source in ((0x00020002, 0x00080016), (0x00020003, SOP_UID)):
        entry = out.get(tag_key(source))
        if entry is not None and entry["Type"] == "String" and tag_key(meta) not in out:
            out[tag_key(meta)] = {"Name": tag_name(meta), "Type": "String", "Value": entry["Value"]}
    if level is not None and tag_key(QR_LEVEL) not in out:
        out[tag_key(QR_LEVEL)] = {"Name": "QueryRetrieveLevel", "Type": "String", "Value": LEVEL_TEXT[level]}
    if tag_key(CHARSET) not in out:
        out[tag_key(CHARSET)] = {"Name": "SpecificCharacterSet", "Type": "String",
                                 "Value": ENCODING_TO_CHARSET.get(default_encoding(), "ISO_IR 100")}
    return dict(sorted(out.items()))


def worklist_full(ds: Dataset) -> dict:
    """A worklist answer, whole (sequences included)."""
    return dataset_to_full(ds, max_length=0, default_encoding=default_encoding())


def full_values(full: dict) -> dict[int, str]:
    """The string values of a full-format map, by tag."""
    return {int(k[:4], 16) << 16 | int(k[5:], 16): e["Value"] for k, e in full.items() if e["Type"] == "String"}


def tags_full(tags: dict[int, str]) -> dict:
    """A DicomMap of strings (a query) in the full format."""
    return {tag_key(t): {"Name": tag_name(t), "Type": "String", "Value": v} for t, v in sorted(tags.items())}


def render(full: dict, fmt: str) -> dict:
    return convert_full(full, fmt)


# -- C-FIND ---------------------------------------------------------------------------------------------------

FIND_MODEL = {Level.PATIENT: "1.2.840.10008.5.1.4.1.2.1.1"}  # Patient Root; Study Root otherwise
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def modality_find(params: scu.ScuParameters, *, level: Level, query: dict[int, str], normalize: bool = True
                  ) -> list[dict]:
    """C-FIND at ``level``: the answers in the full format."""
    identifier = find_identifier(level=level, query=query, manufacturer=params.remote.manufacturer,
                                 normalize=normalize)
    answers = scu.find(params, identifier=identifier, model=FIND_MODEL.get(level, STUDY_ROOT_FIND))
    return [answer_full(a, level=level) for a in answers]


def modality_find_worklist(params: scu.ScuParameters, *, query: dict) -> list[dict]:
    """C-FIND on the Modality Worklist model with the query as given (sequences allowed)."""
    tags: dict[int, Any] = {}
    for name, value in query.items():
        try:
            tags[int(parse_tag(name))] = value
        except ValueError:
            raise ArchiveError(orthanc_error=OrthancError.UNKNOWN_DICOM_TAG) from None
    answers = scu.find(params, identifier=dataset_of(tags), model="1.2.840.10008.5.1.4.31")
    return [worklist_full(a) for a in answers]


# -- /queries -------------------------------------------------------------------------------------------------

def _query_retrieve_size() -> int:
    return max(0, int(settings.ORTHANC.get("QueryRetrieveSize", 100) or 0))


def query_run(*, modality_name: str, level: Level, query: dict[int, str], normalize: bool = True,
              local_aet: str | None = None, timeout: int | None = None) -> DicomQuery:
    """/modalities/{id}/query: run the C-FIND now and keep it with its answers (the QueryRetrieveSize most
    recent are kept, as Orthanc's archive of queries)."""
    modality = modality_get(modality_name)
    params = scu.scu_parameters(modality=modality, local_aet=local_aet, timeout=timeout or None)
    answers = modality_find(params, level=level, query=query, normalize=normalize)
    row = DicomQuery.objects.create(
        id=str(uuid.uuid4()), modality=modality_name, remote=modality_json(modality), level=level.value,
        query={tag_key(t): v for t, v in sorted(query.items())}, answers=answers, normalize=normalize,
        local_aet=params.local_aet, timeout=timeout or 0)
    _trim(DicomQuery.objects.all(), _query_retrieve_size())
    return row


def _trim(qs, size: int) -> None:
    if size:
        old = list(qs.order_by("-created").values_list("pk", flat=True)[size:])
        if old:
            qs.filter(pk__in=old).delete()


def query_get(*, query_id: str) -> DicomQuery:
    row = DicomQuery.objects.filter(id=query_id).first()
    if row is None:
        raise UnknownResource()
    return row


def query_answer(query: DicomQuery, index: str) -> dict:
    """An answer by its index in the URI: not a number is Orthanc's failed lexical_cast, past the end
    ParameterOutOfRange."""
    position = answer_index(index)
    if position >= len(query.answers):
        raise ParameterOutOfRange()
    return query.answers[position]


def answer_index(index: str) -> int:
    from archive.errors import BadParameterType

    sign, digits = (index[0], index[1:]) if index[:1] in ("+", "-") else ("", index)
    if not (digits.isascii() and digits.isdigit()):
        raise BadParameterType("Syntax error in some user-supplied data")
    if sign == "-" and int(digits):
        return 1 << 64    # boost::lexical_cast<size_t> wraps a negative number: an index past any end
    return int(digits)


def query_level(query: DicomQuery) -> Level:
    return Level(query.level)


def query_remote(query: DicomQuery) -> Modality:
    return modality_parse(query.remote)


def query_tags(query: DicomQuery) -> dict[int, str]:
    return {int(k[:4], 16) << 16 | int(k[5:], 16): v for k, v in query.query.items()}


def query_children(*, parent: DicomQuery, index: str, level: Level, query: dict[int, str],
                   timeout: int | None) -> DicomQuery:
    """/queries/{id}/answers/{index}/query-studies|series|instances: a new query below one answer, with the
    answer's identifiers copied (InexistentTag when the answer lacks one)."""
    from archive.errors import InexistentTag

    answer = full_values(query_answer(parent, index))
    parent_level = query_level(parent)
    if level.depth <= parent_level.depth:
        raise UnknownResource()
    if timeout is None and parent.timeout:
        timeout = parent.timeout
    tags = dict(query)
    for tag in RETRIEVE_KEYS[parent_level] if parent_level is not Level.PATIENT else (PATIENT_ID,):
        if tag not in answer:
            raise InexistentTag()
        tags[tag] = answer[tag]
    remote = query_remote(parent)
    params = scu.scu_parameters(modality=remote, local_aet=parent.local_aet, timeout=timeout or None)
    answers = modality_find(params, level=level, query=tags, normalize=parent.normalize)
    row = DicomQuery.objects.create(
        id=str(uuid.uuid4()), modality=parent.modality, remote=parent.remote, level=level.value,
        query={tag_key(t): v for t, v in sorted(tags.items())}, answers=answers, normalize=parent.normalize,
        local_aet=parent.local_aet, timeout=timeout or 0)
    _trim(DicomQuery.objects.all(), _query_retrieve_size())
    return row


def queries_list() -> list[str]:
    return list(DicomQuery.objects.order_by("created").values_list("id", flat=True))


def query_delete(*, query_id: str) -> None:
    """Orthanc answers an unknown query as a deleted one."""
    DicomQuery.objects.filter(id=query_id).delete()


# -- storage commitment reports -------------------------------------------------------------------------------

REPORTS_SIZE = 100  # Orthanc's StorageCommitmentReports(100)
FAILURE_REASONS = {  # PS3.3 C.14.1.1, as Orthanc's EnumerationToString describes them
    0: "Success",
    0x0110: "A general failure in processing the operation was encountered",
    0x0112: "One or more of the elements in the Referenced SOP Instance Sequence was not available",
    0x0213: "The SCP does not currently have enough resources to store the requested SOP Instance(s)",
    0x0122: "Storage Commitment has been requested for a SOP Instance with a SOP Class that is not supported "
            "by the SCP",
    0x0119: "The SOP Class of an element in the Referenced SOP Instance Sequence did not correspond to the SOP "
            "class registered for this SOP Instance at the SCP",
    0x0131: "The Transaction UID of the Storage Commitment Request is already in use",
}


def storage_commitment_pending(*, transaction_uid: str, remote_aet: str) -> None:
    """A pending report, written before the request is sent (the answer may come back first)."""
    with transaction.atomic():
        StorageCommitmentReport.objects.filter(transaction_uid=transaction_uid).delete()
        StorageCommitmentReport.objects.create(transaction_uid=transaction_uid, remote_aet=remote_aet)
    _trim(StorageCommitmentReport.objects.all(), REPORTS_SIZE)


def storage_commitment_report_store(*, transaction_uid: str, success: Iterable[tuple[str, str]],
                                    failures: Iterable[tuple[str, str, int]], remote_aet: str | None = None
                                    ) -> bool:
    """For the SCP receiving an N-EVENT-REPORT (PS3.4 J.3.3): the completed report of the transaction. With
    the reporter's ``remote_aet`` (a report on an association of its own), as Orthanc's StorageCommitmentReports:
    the report is stored whatever the transaction (one we never asked for too), its RemoteAET the reporter's.
    Without it (the report came on our request's association): only a known transaction is completed."""
    fields = {"complete": True, "success": [list(s) for s in success], "failures": [list(f) for f in failures]}
    if remote_aet is not None:
        StorageCommitmentReport.objects.update_or_create(transaction_uid=transaction_uid,
                                                         defaults={**fields, "remote_aet": remote_aet})
        _trim(StorageCommitmentReport.objects.all(), REPORTS_SIZE)
        return True
    return bool(StorageCommitmentReport.objects.filter(transaction_uid=transaction_uid).update(**fields))


def storage_commitment_report_dataset(dataset: Dataset, remote_aet: str | None = None) -> bool:
    """storage_commitment_report_store from an N-EVENT-REPORT's Event Information (Transaction UID, Referenced
    SOP Sequence, Failed SOP Sequence with Failure Reason)."""
    success = [(str(i.get("ReferencedSOPClassUID", "")), str(i.get("ReferencedSOPInstanceUID", "")))
               for i in dataset.get("ReferencedSOPSequence", [])]
    failures = [(str(i.get("ReferencedSOPClassUID", "")), str(i.get("ReferencedSOPInstanceUID", "")),
                 int(i.get("FailureReason", 0x0110))) for i in dataset.get("FailedSOPSequence", [])]
    return storage_commitment_report_store(transaction_uid=str(dataset.get("TransactionUID", "")),
                                           success=success, failures=failures, remote_aet=remote_aet)


def storage_commitment_get(*, transaction_uid: str) -> StorageCommitmentReport:
    row = StorageCommitmentReport.objects.filter(transaction_uid=transaction_uid).first()
    if row is None:
        raise InexistentItem(f"No storage commitment transaction with UID: {transaction_uid}")
    return row


def storage_commitment_status(report: StorageCommitmentReport) -> str:
    if not report.complete:
        return "Pending"
    return "Failure" if report.failures else "Success"


def storage_commitment_json(report: StorageCommitmentReport) -> dict:
    """As Orthanc's StorageCommitmentReports::Report::Format."""
    out: dict[str, Any] = {"RemoteAET": report.remote_aet, "Status": storage_commitment_status(report)}
    if report.complete:
        out["Success"] = [{"SOPClassUID": c, "SOPInstanceUID": i} for c, i in report.success]
        out["Failures"] = [{"Description": FAILURE_REASONS.get(int(r), "Unknown failure reason"),
                            "FailureReason": int(r), "SOPClassUID": c, "SOPInstanceUID": i}
                           for c, i, r in report.failures]
    return dict(sorted(out.items()))


class _BadSequenceOfCalls(ArchiveError):
    """Orthanc answers this one with HTTP 500 (checked with 1.10.1), not the code's own 400."""

    orthanc_error = OrthancError.BAD_SEQUENCE_OF_CALLS

    @property
    def http_status(self) -> int:
        return 500


def storage_commitment_remove(*, transaction_uid: str) -> None:
    """Delete the instances the remote committed to (only after a Success report)."""
    from archive import services
    from archive.models import MainDicomTag, Resource

    report = storage_commitment_get(transaction_uid=transaction_uid)
    if storage_commitment_status(report) != "Success":
        raise _BadSequenceOfCalls(f"Cannot remove DICOM instances after failure in storage commitment "
                                  f"transaction: {transaction_uid}")
    uids = [i for _c, i in report.success]
    rows = MainDicomTag.objects.filter(level=Level.INSTANCE.depth, tag=SOP_UID, value__in=uids).values("resource_id")
    ids = Resource.objects.filter(id__in=rows).order_by("id").values_list("public_id", flat=True)
    for public_id in list(ids):
        services.resource_delete(level=Level.INSTANCE, public_id=public_id)


__all__ = ["answer_full", "dataset_of", "find_identifier", "level_parse", "modality_find",
           "modality_find_worklist", "queries_list", "query_children", "query_delete", "query_get", "query_run",
           "retrieve_identifier", "storage_commitment_get", "storage_commitment_json", "storage_commitment_pending",
           "storage_commitment_remove", "storage_commitment_report_dataset", "storage_commitment_report_store",
           "tags_parse"]
