"""C-FIND answers (PS3.4 C.4.1): a query identifier in, the matching identifiers out, through the same parser
and matcher as POST /tools/find, as Orthanc's OrthancFindRequestHandler goes through its DatabaseLookup.

What Orthanc does, and so do we (checked with DCMTK findscu against Orthanc 1.10.1):

- The level is QueryRetrieveLevel: PATIENT, STUDY, SERIES, IMAGE (or INSTANCE); without it, or with another
  value, the request fails (0xC000, "Failed: unable to process"). The root (patient or study) is not checked.
- Every non-empty, non-sequence element is a constraint (QueryRetrieveLevel, SpecificCharacterSet and
  TimezoneOffsetFromUTC excepted; file meta elements are ignored, as DCMTK drops them on receipt); PN is
  matched case-insensitively unless CaseSensitivePN, every other VR case-sensitively, identifiers included
  (``PatientID=p1`` does not match ``P1``). /tools/find folds every VR by default, so the index answers the
  case-insensitive superset and the case-sensitive constraints are checked again here with the same
  ``matching.constraint_match`` (PS3.4 C.2.2.2).
- Wildcards on a VR that does not allow them (``StudyInstanceUID=*``, ``StudyDate=2024*``) fail the request,
  as /tools/find answers 400; a constraint on a tag of a lower level matches nothing.
- The answer holds each requested element (the query's elements), with the resource's value or empty:
  main tags from the index (up to the study, which keeps its own copy of the patient's), the computed
  counters (NumberOfStudyRelatedInstances...), ModalitiesInStudy, SOPClassesInStudy, InstanceAvailability
  ("ONLINE" for instances, 1.11.0; empty at other levels), the rest read from the file of the resource's
  oldest instance, the first one of its first series (private tags by number); then QueryRetrieveLevel as asked,
  RetrieveAETitle (0008,0054) = DicomAet unless asked for (then empty, as Orthanc answers it), and
  SpecificCharacterSet of the DefaultEncoding, its values written as Orthanc writes them (_ANSWER_CODECS). The
  query's own character set only decodes the query; a query without one is read in the DefaultEncoding.
- The contexts of C-FIND (and C-ECHO, C-MOVE, C-GET) prefer explicit little endian, as Orthanc's.
- A sequence asks for the sequence: it is copied from a file of the resource, or answered empty (1.12.11);
  a sequence with content is no constraint (a warning, as Orthanc only matches sequences on worklists) but is
  answered all the same, as real Orthanc 1.10.1 answers it.
- LimitFindResults (LimitFindInstances at the instance level): the first ones are answered, then the final
  status is 0xFE00 ("matching terminated"), as Orthanc's FindScp answers a query it cropped.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

import pydicom
from django.conf import settings
from pydicom.charset import convert_encodings, python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from archive import runtime
from archive.dicom.matching import Constraint, constraint_match, constraint_parse
from archive.dicom.tags import ENCODING_TO_CHARSET, dataset_group_invalid, tag_key
from archive.errors import ArchiveError
from archive.find import MODALITIES_IN_STUDY, modalities_constraint, resources_find
from archive.find_request import find_request_parse  # the parser of POST /tools/find: one matcher for both
from archive.levels import Level
from archive.requested_tags import requested_values_many
from archive.selectors import instance_dicom_header, instance_oldest

logger = logging.getLogger(__name__)

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
TIMEZONE_OFFSET = 0x00080201
RETRIEVE_AE_TITLE = 0x00080054
INSTANCE_AVAILABILITY = 0x00080056
_NOT_CONSTRAINTS = frozenset({QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET})

LEVELS = {"PATIENT": Level.PATIENT, "STUDY": Level.STUDY, "SERIES": Level.SERIES, "IMAGE": Level.INSTANCE,
          "INSTANCE": Level.INSTANCE}
_BINARY_NUMBERS = {"US": int, "SS": int, "UL": int, "SL": int, "UV": int, "SV": int, "FL": float, "FD": float}
_DATE_VRS = frozenset({"DA", "DT", "TM"})


class QueryRefused(Exception):
    """The identifier cannot be answered (Orthanc throws; the SCP answers 0xC000)."""


@dataclass
class FindAnswers:
    answers: list[Dataset]
    complete: bool = True       # False: LimitFindResults cut the answers short


def _vr(tag: int) -> str:
    """The answer's VR: the dictionary's; UN for private tags, creators included (Orthanc 1.10.1 answers
    ``(0011,0010) UN``), and for tags it does not know."""
    if tag >> 16 & 1:
        return "UN"
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _text(elem: DataElement) -> str:
    """The query value as Orthanc's DicomMap holds it: text, multiple values joined by backslashes, ending
    at the first NUL (DCMTK's C string; PostgreSQL would refuse the NUL)."""
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, (list, MultiValue)):
        text = "\\".join("" if v is None else str(v) for v in value)
    else:
        text = str(value)
    return text.partition("\x00")[0].rstrip(" ")


def _normalize(value: str, vr: str, manufacturer: str) -> str:
    """Orthanc's workarounds for broken modalities (the DicomModalities "Manufacturer" of the caller)."""
    if manufacturer == "GenericNoUniversalWildcard" and value == "*":
        return ""
    if manufacturer == "GenericNoWildcardInDates" and vr in _DATE_VRS:
        return value.replace("*", "")
    return value


def _level(identifier: Dataset) -> Level:
    elem = identifier.get(QUERY_RETRIEVE_LEVEL)
    text = _text(elem).strip().upper() if elem is not None else ""
    if text not in LEVELS:
        raise QueryRefused(f"C-FIND request without a valid QueryRetrieveLevel (0008,0052): {text!r}")
    return LEVELS[text]


def _limit(level: Level) -> int:
    key = "LimitFindInstances" if level is Level.INSTANCE else "LimitFindResults"
    return int(settings.ORTHANC.get(key, 0) or 0)


def find_answers(identifier: Dataset, *, retrieve_aet: str, manufacturer: str = "Generic") -> FindAnswers:
    """The C-FIND answers for a query identifier. Raises QueryRefused when Orthanc would fail the request."""
    _query_charset(identifier)
    level = _level(identifier)
    requested: list[tuple[BaseTag, DataElement]] = []
    sequences: list[BaseTag] = []
    query: dict[str, str] = {}
    sensitive: list[tuple[int, str, str]] = []   # (tag, VR, value) to check case-sensitively afterwards
    case_sensitive_pn = bool(settings.ORTHANC.get("CaseSensitivePN", False))
    for elem in identifier:
        tag = elem.tag
        if elem.VR == "SQ":
            items = elem.value or []
            if not (len(items) == 0 or (len(items) == 1 and len(items[0]) == 0)):
                logger.warning("Orthanc only supports sequence matching on worklists, ignoring C-FIND SCU "
                               "constraint on tag (%s)", tag_key(tag))
            sequences.append(tag)   # asked for either way: answered as the resource has it (Orthanc 1.10.1)
            continue
        if tag.element == 0 or tag == SPECIFIC_CHARACTER_SET or dataset_group_invalid(tag.group):
            # group lengths are no attributes; the charset only decodes the query; file meta elements, as
            # Orthanc's own SCU sends at the instance level (MediaStorageSOPInstanceUID), are dropped on
            # receipt by Orthanc: neither constraints nor answered (seen with Orthanc 1.10.1)
            continue
        requested.append((tag, elem))
        if tag in _NOT_CONSTRAINTS:
            continue
        vr = _vr(tag)
        try:
            value = _normalize(_text(elem), vr, manufacturer)
        except Exception as exc:   # a value that the query's character set cannot decode
            raise QueryRefused(f"cannot read the value of {tag_key(tag)}: {exc}") from exc
        if not value:
            continue   # universal matching (PS3.4 C.2.2.2.3)
        query[tag_key(tag)] = value
        if vr != "PN" or case_sensitive_pn:
            sensitive.append((int(tag), vr, value))

    resources = _matches(level, query, sensitive)
    limit = _limit(level)
    complete = not (limit and len(resources) > limit)
    if not complete:
        resources = resources[:limit]
    return FindAnswers(_answers(resources, requested, sequences, retrieve_aet, level=level), complete)


def _matches(level: Level, query: dict[str, str], sensitive: list[tuple[int, str, str]]) -> list:
    """The matching resources: the index through /tools/find's own parser (case-insensitive, the superset),
    then the case-sensitive constraints checked on the indexed values."""
    body = json.dumps({"Level": level.value, "Query": query, "CaseSensitive": False}).encode()
    try:
        request = find_request_parse(body)
        resources = resources_find(query=request.query)
    except ArchiveError as exc:
        raise QueryRefused(str(exc)) from exc
    if not sensitive or not resources:
        return resources
    tags = [Tag(tag) for tag, _vr_, _value in sensitive]
    constraints = [constraint_parse(tag, value, vr=vr, case_sensitive=True) if tag != MODALITIES_IN_STUDY
                   else modalities_constraint(value, case_sensitive=True) for tag, vr, value in sensitive]
    values = requested_values_many(resources, tags, file_of=instance_oldest)
    kept = []
    for resource in resources:
        found = values.get(resource.id, {})
        if all(_sensitive_match(c, t, _as_text(found.get(_key(t)))) for c, t in zip(constraints, tags, strict=True)):
            kept.append(resource)
    return kept


def _sensitive_match(constraint: Constraint, tag: BaseTag, value: str | None) -> bool:
    """ModalitiesInStudy is a constraint on the Modality of some series (DatabaseLookup): one of the study's
    modalities matches it; every other tag is matched as the index holds it."""
    if tag == MODALITIES_IN_STUDY:
        return bool(value) and any(constraint_match(constraint, m) for m in value.split("\\"))
    return constraint_match(constraint, value)


def _key(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or tag_key(tag)


def _as_text(value) -> str | None:
    if isinstance(value, str):
        return value
    return None


# The codecs Orthanc's answers are written with, where pydicom's differ: ISO_IR 6 holds ASCII only (pydicom reads
# it as Latin-1), ISO_IR 13 is Shift-JIS (DCMTK's converter; pydicom writes JIS X 0201 alone, kanji became "?"),
# ISO 2022 IR 87 switches back to ASCII before each delimiter and writes JIS X 0212 too ("ü" as ESC $ ( D + d), as
# Python's iso2022_jp_1 does (pydicom left out the switches, and failed on an empty name group).
_ANSWER_CODECS = {"ISO_IR 6": "ascii", "ISO_IR 13": "shift_jis", "ISO 2022 IR 87": "iso2022_jp_1"}
# Code extensions with a G1 designation (Korean, simplified Chinese): pydicom writes them as DICOM wants.
_PYDICOM_WRITES = frozenset({"ISO 2022 IR 149", "ISO 2022 IR 58"})
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})   # the text VRs of PS3.5 6.1.2.3


@dataclass(frozen=True)
class _Charset:
    term: str | None     # the SpecificCharacterSet answered (None: no DICOM term, none declared)
    codec: str           # the Python codec of the values


def _charset() -> _Charset:
    """The answers' character set: the DefaultEncoding's, as Orthanc converts its UTF-8 values to it."""
    encoding = runtime.default_encoding(cached=True)
    if encoding == "Windows1251":
        return _Charset(None, "cp1251")   # no DICOM term: Orthanc declares no character set
    term = ENCODING_TO_CHARSET.get(encoding, "ISO_IR 100")
    return _Charset(term, _ANSWER_CODECS.get(term) or python_encoding.get(term, "latin_1"))


def _query_charset(identifier: Dataset) -> None:
    """A query without SpecificCharacterSet is read in the DefaultEncoding, as Orthanc reads it (pydicom would
    read Latin-1). Before any of its values is converted."""
    elem = identifier.get(SPECIFIC_CHARACTER_SET)
    if elem is not None and _text(elem).strip():
        return
    charset = _charset()
    # pydicom converts a received element with the encoding the dataset was read in, so that is what changes
    implicit, little = identifier.original_encoding
    identifier.set_original_encoding(implicit, little, convert_encodings([charset.codec]) if charset.term is None
                                     else convert_encodings(charset.term))


def _element(tag: BaseTag, vr: str, value: str | None, charset: _Charset = _Charset("ISO_IR 100", "latin_1")
             ) -> DataElement:
    """One answer element; a value that does not fit its VR is answered empty (Orthanc's permissive mode).
    Characters the answer's character set cannot hold are dropped, as Orthanc's conversion from UTF-8 drops
    them (pydicom would write '?' for each)."""
    if not value:
        return DataElement(tag, vr, None)
    codec = charset.codec
    value = value.encode(codec, errors="ignore").decode(codec)
    try:
        if vr in _BINARY_NUMBERS:
            numbers = [_BINARY_NUMBERS[vr](v) for v in value.split("\\")]
            return DataElement(tag, vr, numbers[0] if len(numbers) == 1 else numbers)
        if vr in ("OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            raw = value.encode("utf-8")
            # even length, as every value must be (DCMTK refuses an odd fragment; pydicom pads only text)
            return DataElement(tag, vr, raw + b"\x00" if len(raw) % 2 else raw)
        if vr == "AT":
            return DataElement(tag, vr, None)
        if vr in _CHARSET_VRS and charset.term not in _PYDICOM_WRITES and (
                not value.isascii() or (vr == "PN" and value.endswith("="))):
            # Written as Orthanc writes them (see _ANSWER_CODECS); a name keeps its empty trailing groups
            # ("Wang^XiaoDong=^=", pydicom's PersonName dropped the last "="). pydicom pads the bytes.
            return DataElement(tag, vr, value.encode(codec))
        return DataElement(tag, vr, value)
    except (TypeError, ValueError):
        return DataElement(tag, vr, None)


def _answers(resources: list, requested: list[tuple[BaseTag, DataElement]], sequences: list[BaseTag],
             retrieve_aet: str, *, level: Level) -> list[Dataset]:
    tags = [tag for tag, _elem in requested
            if tag not in _NOT_CONSTRAINTS and tag not in (INSTANCE_AVAILABILITY, RETRIEVE_AE_TITLE)]
    # InstanceAvailability is computed for instances only (1.12.11's ResourceFinder): empty at other levels
    availability = "ONLINE" if level is Level.INSTANCE else None
    retrieve_requested = any(tag == RETRIEVE_AE_TITLE for tag, _elem in requested)
    values = requested_values_many(resources, tags, file_of=instance_oldest) if resources and tags else {}
    charset = _charset()
    out = []
    for resource in resources:
        found = values.get(resource.id, {})
        ds = Dataset()
        if charset.term is not None:
            ds.SpecificCharacterSet = charset.term
        for tag, elem in requested:
            if tag == QUERY_RETRIEVE_LEVEL:
                ds.add(DataElement(tag, "CS", _text(elem)))   # as asked (Orthanc's fix of its issue 30)
            elif tag == TIMEZONE_OFFSET:
                continue
            elif tag == INSTANCE_AVAILABILITY:
                ds.add(DataElement(tag, "CS", availability))
            elif tag == RETRIEVE_AE_TITLE:
                # Asked for, it is answered empty: Orthanc (1.10.1 seen, 1.12.11's LookupVisitorV2 read) sets its
                # AET, then overwrites it with the requested tags, RetrieveAETitle being none of the resource's
                ds.add(DataElement(tag, "AE", None))
            else:
                ds.add(_element(tag, _vr(tag), _as_text(found.get(_key(tag))), charset))
        if not retrieve_requested:
            ds.add(DataElement(RETRIEVE_AE_TITLE, "AE", retrieve_aet))
        if sequences:
            _copy_sequences(ds, resource, sequences)
        out.append(ds)
    return out


def _copy_sequences(ds: Dataset, resource, sequences: list[BaseTag]) -> None:
    try:
        source = pydicom.dcmread(io.BytesIO(instance_dicom_header(instance=instance_oldest(resource=resource))),
                                 stop_before_pixels=True, force=True)
    except Exception:   # no readable file: the sequences are answered empty
        logger.warning("C-FIND: cannot read a file of %s for its sequences", resource.public_id, exc_info=True)
        source = Dataset()
    for tag in sequences:
        elem = source.get(tag)
        if elem is not None and elem.VR == "SQ":
            ds.add(DataElement(tag, "SQ", Sequence([item for item in elem.value])))
        else:
            ds.add(DataElement(tag, "SQ", Sequence([])))
