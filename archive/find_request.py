"""The body of POST /tools/find and POST /tools/count-resources, parsed (Orthanc's Find handler of
OrthancRestResources.cpp): the REST views (explorer/api/find.py) and the C-FIND SCP (archive/network/cfind.py)
share it, so a query matches the same through either.

``find_request_parse`` turns the JSON body into a ``FindQuery`` (archive/find.py) plus the answer options, with
Orthanc's checks in Orthanc's order: the type checks of every field first, then the level, the tag format, Limit,
Since, the Query, and the fields 1.12.0 and 1.12.5 added. The error bodies of the fields 1.10.1 knows were checked
live against it (see tests/explorer/api/test_find_api.py); where 1.12.x rewords a message ("should be" became
"must be") the 1.12.x text is used, as /system reports 1.12.11. Every error is an ArchiveError: each protocol
renders it (the REST error body, a C-FIND failure status).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.tag import BaseTag

from archive.dicom.matching import RANGE_VRS, WILDCARD_VRS
from archive.dicom.tags import MAIN_DICOM_TAGS, parse_tag, tag_key
from archive.errors import (
    ArchiveError,
    BadFileFormat,
    BadRequest,
    OrthancError,
    ParameterOutOfRange,
    UnknownDicomTag,
)
from archive.find import MODALITIES_IN_STUDY, FindQuery, MetadataConstraint, OrderKey, TagConstraint
from archive.levels import Level
from archive.metadata import metadata_number
from archive.settings import archive_settings

# ResponseContent values (1.12.5; IsProtected 1.12.9). "RequestedTags" is accepted: the tags show whenever some
# are requested, as Orthanc's visitor adds them.
RESPONSE_CONTENT = frozenset({"MainDicomTags", "RequestedTags", "Metadata", "Status", "Parent", "Children",
                              "Labels", "Attachments", "IsStable", "IsProtected"})
ORDER_TYPES_TAG = {"DicomTag", "DicomTagAsInt", "DicomTagAsFloat"}
LABELS_CONSTRAINTS = ("All", "Any", "None")
# Orthanc's computed tags (ResourceFinder's IsComputedTag): never stored, so a constraint on one is answered
# like one on a tag read from the files; ModalitiesInStudy is the exception the index answers (1.12.5).
COMPUTED_TAGS = frozenset(int(parse_tag(k)) for k in (
    "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances",
    "SOPClassesInStudy", "ModalitiesInStudy", "InstanceAvailability"))

_UNHANDLED = "An unhandled exception was generated inside the HTTP server"
# ResourceFinder's messages, as 1.12.x spells them (the first one has lost its "U" in Orthanc's source).
_SINCE_REFUSED = ("nable to use 'Since' when finding resources when querying against Dicom Tags that are not in "
                  "the MainDicomTags or when using CaseSenstive queries.")
_COUNT_REFUSED = ("Unable to count resources when querying tags that are not stored as MainDicomTags in the "
                  "Database or when using case sensitive queries.")


@dataclass(frozen=True)
class FindRequest:
    """A parsed /tools/find body: the query for the archive and how to answer it."""

    query: FindQuery
    expand: bool = False
    fmt: str = "simplify"                             # simplify | short | full
    requested_tags: tuple[BaseTag, ...] = ()          # RequestedTags, plus the lookup tags not in the index
    response_content: frozenset[str] | None = None    # None: Expand decides (legacy description or IDs)


def _field(name: str, what: str) -> BadRequest:
    return BadRequest(f'Field "{name}" {what}')


def _is_int(value: Any) -> bool:
    """JsonCpp's intValue: an integer that fits in 64 signed bits (true/false and 1.0 are not)."""
    return type(value) is int and -2**63 <= value < 2**63


def _as_bool(value: Any) -> bool:
    """JsonCpp's asBool, which Orthanc uses on Expand: numbers and null convert, text and containers throw,
    which Orthanc's HTTP server answers as a 500."""
    if value is None or isinstance(value, (bool, int, float)):
        return bool(value)
    raise ArchiveError(_UNHANDLED, orthanc_error=OrthancError.INTERNAL_ERROR)


def _level(text: str) -> Level:
    """Orthanc's StringToResourceType: case-insensitive, singular or plural, "Image(s)", no blanks."""
    try:
        return Level.parse(text)
    except ValueError:
        raise ParameterOutOfRange() from None


def _tag(text: str) -> BaseTag:
    """A tag name or ``gggg,eeee``. Orthanc's unknown-tag error has no HTTP status of its own: a 500."""
    if text != text.strip():
        raise UnknownDicomTag()
    try:
        return parse_tag(text)
    except ValueError:
        raise UnknownDicomTag() from None


def _index_tags() -> set[int]:
    """The tags the index holds at some level (ExtraMainDicomTags included), and ModalitiesInStudy."""
    settings = archive_settings()
    tags = {int(t) for level in Level for t in MAIN_DICOM_TAGS[level] + tuple(settings.extra_main_tags(level))}
    tags.add(MODALITIES_IN_STUDY)
    return tags


def _body_object(body: bytes) -> dict:
    def refuse(_constant: str) -> None:   # NaN, Infinity: not JSON for JsonCpp either
        raise ValueError

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise BadRequest("The body must contain a JSON object")
    return value


def _check_types(body: dict) -> None:
    """The type checks Orthanc makes before reading any field, in its order (1.12.5 adds the last four)."""
    if not isinstance(body.get("Level"), str):
        raise _field("Level", "is missing, or should be a string")
    if not isinstance(body.get("Query"), dict):
        raise _field("Query", "is missing, or should be a JSON object")
    if "CaseSensitive" in body and not isinstance(body["CaseSensitive"], bool):
        raise _field("CaseSensitive", "must be a Boolean")
    for name in ("Limit", "Since"):
        if name in body and not _is_int(body[name]):
            raise _field(name, "must be an integer")
    if "RequestedTags" in body and not isinstance(body["RequestedTags"], list):
        raise _field("RequestedTags", "must be an array")
    if "Labels" in body and not isinstance(body["Labels"], list):
        raise _field("Labels", "must be an array of strings")
    if "LabelsConstraint" in body and not isinstance(body["LabelsConstraint"], str):
        raise _field("LabelsConstraint", "must be an array of strings")   # sic, Orthanc's message
    if "OrderBy" in body and not isinstance(body["OrderBy"], list):
        raise _field("OrderBy", "must be an array")
    for name in ("ParentPatient", "ParentStudy", "ParentSeries"):
        if name in body and not isinstance(body[name], str):
            raise _field(name, "must be a string")
    if "MetadataQuery" in body and not isinstance(body["MetadataQuery"], dict):
        raise _field("MetadataQuery", "must be a JSON object")
    if "ResponseContent" in body and not isinstance(body["ResponseContent"], list):
        raise _field("ResponseContent", "must be an array")


def tag_format_of_body(body: dict, default: str = "simplify") -> str:
    """OrthancRestApi::GetDicomFormat(body, default): Simplify, then Short, then Full; the first that is present
    must be a Boolean, and the first true one wins."""
    for name in ("Simplify", "Short", "Full"):
        if name in body:
            if not isinstance(body[name], bool):
                raise BadFileFormat(f"Boolean value expected in field: {name}")
            if body[name]:
                return name.lower()
    return default


def _non_negative(body: dict, name: str) -> int:
    value = body.get(name, 0)
    if value < 0:
        raise ParameterOutOfRange(f'Field "{name}" must be a positive integer')
    return value


def _vr(tag: int) -> str:
    if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return "LO"   # a private creator (live, 1.10.1: "0011,0010": "a*" is a wildcard match)
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _check_wildcards(tag: int, value: str) -> None:
    """Wildcard matching is only defined for AE, CS, LO, LT, PN, SH, ST, UC, UR and UT (PS3.4 C.2.2.2.4); a
    range (PS3.4 C.2.2.2.5, DA/DT/TM) or a list of values is split first. Orthanc refuses a ``*`` or ``?`` left
    in a single value or a range bound of another VR (live, 1.10.1: StudyDate "2004*")."""
    vr = _vr(tag)
    is_range = vr in RANGE_VRS and "-" in value
    if vr in WILDCARD_VRS or ("\\" in value and not is_range):
        return
    if "*" in value or "?" in value:
        raise ParameterOutOfRange(f"Wildcards are not allowed on tag {tag_key(tag)}")


def _no_nul(text: str) -> str:
    """A constraint with a NUL in it: the index holds no NUL (stored text ends at its first NUL, as DCMTK
    reads it), so that character matches nothing, as in Orthanc; PostgreSQL refuses it as a parameter, so a
    noncharacter, which no stored text holds either, stands in for it."""
    return text.replace("\x00", "\ufffe") if "\x00" in text else text


def _query(body: dict) -> tuple[TagConstraint, ...]:
    """Query: tag -> text. JsonCpp lists members sorted, so the first bad one in sorted order is reported; an
    empty text is a universal match and is dropped (before its tag is even parsed, as Orthanc does)."""
    constraints = []
    for key in sorted(body["Query"]):
        value = body["Query"][key]
        if not isinstance(value, str):
            raise BadRequest(f'Tag "{key}" must be associated with a string')
        if value:
            tag = int(_tag(key))
            _check_wildcards(tag, value)
            constraints.append(TagConstraint(tag=tag, query=_no_nul(value)))
    return tuple(constraints)


def _requested_tags(body: dict) -> list[BaseTag]:
    tags = []
    for item in body.get("RequestedTags", []):
        if not isinstance(item, str):
            raise BadRequest("Expecting a list of tags")
        tags.append(_tag(item))
    return tags


def _labels(body: dict) -> tuple[tuple[str, ...], str]:
    labels = []
    for item in body.get("Labels", []):
        if not isinstance(item, str):
            raise _field("Labels", "must contain strings")
        labels.append(_no_nul(item))
    constraint = body.get("LabelsConstraint", "All")
    if constraint not in LABELS_CONSTRAINTS:
        raise _field("LabelsConstraint", 'must be "All", "Any", or "None"')
    return tuple(labels), constraint


def _parent(body: dict) -> tuple[Level, str] | None:
    """ParentPatient, ParentStudy, ParentSeries (1.12.5): the first present one, in that order."""
    for name, level in (("ParentPatient", Level.PATIENT), ("ParentStudy", Level.STUDY),
                        ("ParentSeries", Level.SERIES)):
        if name in body:
            return level, _no_nul(body[name]) if isinstance(body[name], str) else body[name]
    return None


def _metadata_query(body: dict) -> tuple[MetadataConstraint, ...]:
    constraints = []
    query = body.get("MetadataQuery", {})
    for name in sorted(query):
        value = query[name]
        if not isinstance(value, str):
            raise BadRequest(f'Metadata "{name}" must be associated with a string')
        number = metadata_number(name)   # unknown names: Orthanc's StringToMetadata error
        if value:
            constraints.append(MetadataConstraint(metadata=number, query=_no_nul(value)))
    return tuple(constraints)


def _order_by(body: dict) -> tuple[OrderKey, ...]:
    keys = []
    for item in body.get("OrderBy", []):
        if not isinstance(item, dict):
            raise _field("OrderBy", "must contain objects")
        kind, key, direction = item.get("Type"), item.get("Key"), item.get("Direction")
        if not isinstance(kind, str) or not isinstance(key, str) or not isinstance(direction, str):
            raise BadRequest('OrderBy items must have "Type", "Key" and "Direction" strings')
        if direction.upper() not in ("ASC", "DESC"):
            raise ParameterOutOfRange(f'OrderBy "Direction" must be "ASC" or "DESC": {direction}')
        if kind in ORDER_TYPES_TAG:
            number = int(_tag(key))
        elif kind.startswith("Metadata"):
            number = metadata_number(key)
            # 1.12.11 sorts every other Metadata... type (MetadataAsFloat included) as text.
            kind = "MetadataAsInt" if kind == "MetadataAsInt" else "Metadata"
        else:
            raise ParameterOutOfRange(f'OrderBy "Type" is not valid: {kind}')
        keys.append(OrderKey(kind=kind, key=number, descending=direction.upper() == "DESC"))
    return tuple(keys)


def _response_content(body: dict) -> frozenset[str] | None:
    if "ResponseContent" not in body:
        return None
    return response_content_parse(body["ResponseContent"])


def response_content_parse(items: Iterable) -> frozenset[str]:
    """The parts of a ResponseContent (the /tools/find body field, or the ``response-content`` argument of
    the resource lists); an unknown part is an error."""
    values = set()
    for item in items:
        if item not in RESPONSE_CONTENT:
            raise ParameterOutOfRange(f"Unsupported value for ResponseContent: {item}")
        values.add(item)
    return frozenset(values)


def find_request_parse(body: bytes, *, count: bool = False) -> FindRequest:
    """The body of POST /tools/find (``count``: /tools/count-resources) as a FindRequest; raises the
    ArchiveError whose rendering is Orthanc's error body for the first problem Orthanc would report."""
    data = _body_object(body)
    _check_types(data)
    expand = _as_bool(data.get("Expand"))
    level = _level(data["Level"])
    fmt = tag_format_of_body(data)
    limit = _non_negative(data, "Limit")
    since = _non_negative(data, "Since")
    case_sensitive = data.get("CaseSensitive", False)
    tags = _query(data)
    requested = _requested_tags(data)
    labels, labels_constraint = _labels(data)
    parent = _parent(data)
    metadata = _metadata_query(data)
    order_by = _order_by(data)
    response_content = _response_content(data)

    # Tags the index does not hold are read from the files, so neither counts nor Since can be done in the
    # database; Orthanc then refuses them (ResourceFinder). Case-sensitive PN matching is the other such case.
    indexed = _index_tags()
    from_files = [c.tag for c in tags if c.tag not in indexed or (c.tag in COMPUTED_TAGS
                                                                   and c.tag != MODALITIES_IN_STUDY)]
    case_bound = case_sensitive and any(_vr(c.tag) == "PN" for c in tags)
    if count and (case_sensitive or from_files):
        raise BadRequest(_COUNT_REFUSED)
    if not count and since > 0 and (from_files or case_bound):
        raise BadRequest(_SINCE_REFUSED)
    # 1.12.5 reports the lookup tags it had to read from the files (and computed ones) as requested tags.
    for tag in [c.tag for c in tags if c.tag not in indexed or c.tag in COMPUTED_TAGS]:
        if all(int(t) != tag for t in requested):
            requested.append(BaseTag(tag))

    query = FindQuery(level=level, tags=tags, case_sensitive=case_sensitive, labels=labels,
                      labels_constraint=labels_constraint, parent=parent, metadata=metadata, order_by=order_by,
                      since=since, limit=limit)
    return FindRequest(query=query, expand=expand, fmt=fmt, requested_tags=tuple(requested),
                       response_content=response_content)
