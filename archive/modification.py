"""Modification and anonymization of stored DICOM as Orthanc's DicomModification does them (/modify, /anonymize,
/tools/bulk-modify, /tools/bulk-anonymize), at the Orthanc 1.12.11 level.

A request body becomes one ``Modification`` (``modification_parse`` / ``anonymization_parse``), shared by every
instance of one job: it carries the map original identifier -> new identifier, per level, so the instances of
one series keep one new SeriesInstanceUID, a reference to an instance of the job gets that instance's new
SOPInstanceUID, and all instances of one patient get one new PatientID. ``modification_state`` and
``modification_from_state`` turn it into JSON and back so a job can resume after a restart; with ``uid_seed``
set, the new identifiers are derived from (seed, level, original) and a rerun makes the same ones.

``instance_modify`` applies it to a Part 10 file, in Orthanc's order (DicomModification::Apply):

1. (anonymization) UIDs replaced by the user are registered in the map, so references to them follow;
2. private attributes removed (top level; except those kept), unless KeepPrivateTags;
3. attributes of the profile's "clear" list emptied, when present (top level);
4. attributes removed (top level; exact tags: the curve/overlay ranges only apply inside sequences, as in
   Orthanc, so top-level overlays survive);
5. replacements inserted or replaced (strings cast to the attribute's VR, ``null`` empties, lists of objects
   make sequences);
6. new StudyInstanceUID (study level and above), SeriesInstanceUID (series and above) and SOPInstanceUID,
   unless kept or replaced; MediaStorageSOPInstanceUID follows;
7. (anonymization) one walk over the dataset: top-level attributes of the profile's "U" list (PatientID and
   PatientName among them) get mapped values; inside sequences, private attributes and those to remove are
   dropped, those to clear emptied (strings) or dropped (others), and Study/Series/SOP Instance UIDs and the
   "U" attributes mapped. A ReferencedSOPInstanceUID under ReferencedFrameOfReferenceSequence >
   RTReferencedStudySequence is a StudyInstanceUID (RT-STRUCT), mapped as such. Paths given to "Keep" are left
   alone;
8. paths into sequences (``Seq[0].Tag``, ``Seq[*].Tag``) removed, then replaced.

Anonymization always works at the patient level (new Study/Series/SOP UIDs whatever the route), with the
profile of "DicomVersion" (2008, 2017c, 2021b, 2023b; default 2023b), PatientIdentityRemoved = YES and
DeidentificationMethod = "Orthanc 1.12.11 - PS 3.15-2023b Table E.1-1 Basic Profile"; once the request departs
from the profile (Replace, Remove, Keep, KeepPrivateTags) that becomes "Orthanc 1.12.11" (Orthanc 1.12.7, bug
240; earlier versions removed it). The generated PatientName "AnonymizedN" comes from a global sequence of the
archive: the caller passes it (``patient_name``); without it PatientName is mapped like PatientID.

Pixel data is never decoded: untouched elements, PixelData included, are written back as the bytes read, in
the original transfer syntax.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pydicom
from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from archive.anonymization_profiles import DEFAULT_PROFILE, PROFILES, Profile
from archive.dicom.tags import parse_tag
from archive.errors import BadFileFormat, BadParameterType, BadRequest, ParameterOutOfRange, UnknownDicomTag
from archive.levels import Level

# The version /system reports (explorer.api.system.VERSION): DeidentificationMethod names it.
ORTHANC_VERSION = "1.12.11"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
REFERENCED_SOP_INSTANCE_UID = 0x00081155
REFERENCED_FRAME_OF_REFERENCE_SEQUENCE = 0x30060010
RT_REFERENCED_STUDY_SEQUENCE = 0x30060012
PIXEL_DATA = 0x7FE00010
ENCAPSULATED_DOCUMENT = 0x00420011
UIDS = {Level.STUDY: STUDY_UID, Level.SERIES: SERIES_UID, Level.INSTANCE: SOP_UID}
# Orthanc's "database keys": touching them needs "Force", removing them is refused.
DATABASE_KEYS = frozenset({PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID})
_UID_LEVEL = {STUDY_UID: Level.STUDY, SERIES_UID: Level.SERIES, SOP_UID: Level.INSTANCE}

# VRs DCMTK handles as strings (DcmByteString): the only ones Orthanc's visitor can rewrite.
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                         "UR", "UT"})
_INT_VRS = frozenset({"US", "UL", "SS", "SL", "SV", "UV", "OL", "OV"})
_FLOAT_VRS = frozenset({"FL", "FD", "OF", "OD"})
_BINARY_VRS = frozenset({"OB", "OW", "UN"})
_ORTHANC_METHODS = frozenset(f"Orthanc {ORTHANC_VERSION} - {p.method}" for p in PROFILES.values())


class Path(NamedTuple):
    """A DicomPath: items of sequences (tag, index, or None for ``[*]``), then the final tag."""

    prefix: tuple[tuple[int, int | None], ...]
    tag: int


@dataclass
class Modification:
    """One /modify or /anonymize request, ready to apply to every instance of its job (mutable: uid_map grows)."""

    level: Level
    is_anonymization: bool = False
    replace: dict[int, Any] = field(default_factory=dict)     # top-level tag -> JSON value
    remove: set[int] = field(default_factory=set)
    clear: set[int] = field(default_factory=set)
    uids: set[int] = field(default_factory=set)              # "U" attributes (anonymization): mapped values
    keep: set[int] = field(default_factory=set)
    removed_ranges: list[tuple[int, int, int, int]] = field(default_factory=list)
    remove_private: bool = False
    private_to_keep: set[int] = field(default_factory=set)
    keep_uids: set[int] = field(default_factory=set)         # Study/Series/SOP Instance UIDs the body keeps
    keep_paths: list[Path] = field(default_factory=list)
    remove_paths: list[Path] = field(default_factory=list)
    replace_paths: list[tuple[Path, Any]] = field(default_factory=list)
    private_creator: str = ""
    force: bool = False
    keep_source: bool = True
    # level ("Patient", "Study", "Series", "Instance") -> original identifier -> new identifier
    uid_map: dict[str, dict[str, str]] = field(default_factory=dict)
    uid_seed: str | None = None  # set: new identifiers derived from (seed, level, original), reruns agree


# -- parsing --------------------------------------------------------------------------------------------------

def _bool(body: dict, name: str, default: bool) -> bool:
    if name not in body:
        return default
    if not isinstance(body[name], bool):
        raise BadFileFormat(f'Member "{name}" should be a Boolean value')
    return body[name]


def _tag(text: str) -> int:
    try:
        return int(parse_tag(text))
    except ValueError:
        raise UnknownDicomTag() from None


def _path_tag(token: str) -> int:
    if token.startswith("(") and token.endswith(")"):
        token = token[1:-1]
    return _tag(token)


def path_parse(text: str) -> Path:
    """A path as Orthanc's DicomPath::Parse reads it: ``Tag``, ``Seq[0].Tag``, ``Seq[*].Sub[1].Tag``, tags by
    name or ``gggg,eeee`` (optionally in parentheses); indexes from 0."""
    tokens = text.split(".")
    prefix: list[tuple[int, int | None]] = []
    for token in tokens[:-1]:
        left, sep, right = token.partition("[")
        left, right = left.strip(), right.strip()
        if not sep:
            raise ParameterOutOfRange("Parent path doesn't contain an index")
        if not left:
            raise ParameterOutOfRange("Parent path doesn't contain a tag")
        if not right.endswith("]"):
            raise ParameterOutOfRange("Parent path doesn't contain the end of the index")
        tag = _path_tag(left)
        index = right[:-1].strip()
        if index == "*":
            prefix.append((tag, None))
            continue
        try:
            number = int(index)
        except ValueError:
            raise ParameterOutOfRange(f"Not a valid index in parent path: [{right}") from None
        if number < 0:
            raise ParameterOutOfRange(f"Negative index in parent path: {index}")
        prefix.append((tag, number))
    return Path(tuple(prefix), _path_tag(tokens[-1].strip()))


def _mark_not_orthanc_anonymization(mod: Modification) -> None:
    # Orthanc 1.12.7 (bug 240): a request that departs from the profile is no longer "the profile"; the
    # DeidentificationMethod then only names Orthanc (1.12.6 and earlier removed the replacement instead).
    if mod.replace.get(DEIDENTIFICATION_METHOD) in _ORTHANC_METHODS:
        mod.replace[DEIDENTIFICATION_METHOD] = f"Orthanc {ORTHANC_VERSION}"


def _keep_tag(mod: Modification, tag: int) -> None:
    mod.keep.add(tag)
    mod.remove.discard(tag)
    mod.clear.discard(tag)
    mod.uids.discard(tag)
    mod.replace.pop(tag, None)
    if tag in _UID_LEVEL:
        mod.keep_uids.add(tag)
    elif _is_private(tag):
        mod.private_to_keep.add(tag)
    _mark_not_orthanc_anonymization(mod)


def _remove_tag(mod: Modification, tag: int) -> None:
    mod.remove.add(tag)
    mod.clear.discard(tag)
    mod.uids.discard(tag)
    mod.replace.pop(tag, None)
    mod.private_to_keep.discard(tag)
    _mark_not_orthanc_anonymization(mod)


def _replace_tag(mod: Modification, tag: int, value: Any, *, safe: bool) -> None:
    mod.clear.discard(tag)
    mod.remove.discard(tag)
    mod.uids.discard(tag)
    mod.private_to_keep.discard(tag)
    mod.replace[tag] = value
    if not safe:
        _mark_not_orthanc_anonymization(mod)


def _parse_list(mod: Modification, value: Any, *, keep: bool, force: bool) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest()
    for name in value:
        path = path_parse(name)
        if not path.prefix and not force and path.tag in DATABASE_KEYS:
            raise BadRequest(f'Marking tag "{name}" as to be {"kept" if keep else "removed"} requires the "Force" '
                             "option to be set to true")
        if keep:
            if not path.prefix:
                _keep_tag(mod, path.tag)
            mod.keep_paths.append(path)
            _mark_not_orthanc_anonymization(mod)
        elif not path.prefix:
            _remove_tag(mod, path.tag)
        else:
            mod.remove_paths.append(path)
            _mark_not_orthanc_anonymization(mod)


def _parse_replacements(mod: Modification, value: Any, *, force: bool) -> None:
    if not isinstance(value, dict):
        raise BadRequest()
    for name, new in value.items():
        path = path_parse(name)
        if not path.prefix and not force and path.tag in DATABASE_KEYS:
            raise BadRequest(f'Marking tag "{name}" as to be replaced requires the "Force" option to be set to true')
        if path.prefix:
            mod.replace_paths.append((path, new))
            _mark_not_orthanc_anonymization(mod)
        else:
            _replace_tag(mod, path.tag, new, safe=False)


def _common(mod: Modification, body: dict, *, force: bool) -> None:
    """Remove, Replace, Keep, PrivateCreator, in Orthanc's order (which decides which error comes first)."""
    if "Remove" in body:
        _parse_list(mod, body["Remove"], keep=False, force=force)
    if "Replace" in body:
        _parse_replacements(mod, body["Replace"], force=force)
    if "Keep" in body:
        _parse_list(mod, body["Keep"], keep=True, force=force)


def _default_private_creator() -> str:
    """The configuration's DefaultPrivateCreator, Orthanc's creator when the body names none."""
    from django.conf import settings

    return str(settings.ORTHANC.get("DefaultPrivateCreator") or "")


def _finish(mod: Modification, body: dict, *, force: bool) -> Modification:
    mod.private_creator = _default_private_creator()
    if "PrivateCreator" in body:
        if not isinstance(body["PrivateCreator"], str):
            raise BadFileFormat("String value expected in field: PrivateCreator")
        mod.private_creator = body["PrivateCreator"]
    if "KeepSource" in body and not isinstance(body["KeepSource"], bool):
        raise BadFileFormat("Boolean value expected in field: KeepSource")
    mod.force = force
    mod.keep_source = bool(body.get("KeepSource", True))
    return mod


def modification_parse(body: dict, *, level: Level, patient_id_check: bool = True) -> Modification:
    """The body of a /modify request (Orthanc's ParseModifyRequest), with Orthanc's errors; fields of the job
    (Synchronous, Priority, Transcode, ...) are ignored here. ``patient_id_check=False`` leaves the check of a
    patient's PatientID to the job, where Orthanc makes it (DicomModification::Apply): an asynchronous request
    is then submitted, and its job fails."""
    if not isinstance(body, dict):
        raise BadFileFormat()
    force = _bool(body, "Force", False)
    mod = Modification(level=level, remove_private=_bool(body, "RemovePrivateTags", False))
    _common(mod, body, force=force)
    _finish(mod, body, force=force)
    if patient_id_check and level is Level.PATIENT and PATIENT_ID not in mod.replace and not force:
        raise BadRequest("When modifying a patient, her PatientID is required to be modified.")
    return mod


def anonymization_parse(body: dict, *, level: Level,
                        patient_name: str | Callable[[], str] | None = None) -> Modification:
    """The body of an /anonymize request (Orthanc's ParseAnonymizationRequest), with Orthanc's errors.

    ``level`` is the route's level; anonymization itself works at the patient level (every UID is new).
    ``patient_name``: the "AnonymizedN" name Orthanc gives when the body leaves PatientName alone (N from
    the archive's global anonymization sequence); a callable is only called then, so the sequence only moves
    when used. Without it PatientName gets a generated identifier, as DicomModification alone does.
    """
    del level  # the route's level decides what the job reports, not what is anonymized
    if not isinstance(body, dict):
        raise BadFileFormat()
    force = _bool(body, "Force", False)
    version = DEFAULT_PROFILE
    if "DicomVersion" in body:
        version = body["DicomVersion"]
        if not isinstance(version, str):
            raise BadFileFormat()
        if version not in PROFILES:
            raise ParameterOutOfRange(f"Unknown specific version of the DICOM standard: {version}")
    mod = _anonymization_setup(PROFILES[version])
    if _bool(body, "KeepPrivateTags", False):
        mod.remove_private = False
        _mark_not_orthanc_anonymization(mod)
    _common(mod, body, force=force)
    if PATIENT_NAME in mod.uids and patient_name is not None:
        name = patient_name() if callable(patient_name) else patient_name
        _replace_tag(mod, PATIENT_NAME, name, safe=True)
    return _finish(mod, body, force=force)


def _anonymization_setup(profile: Profile) -> Modification:
    mod = Modification(level=Level.PATIENT, is_anonymization=True, remove_private=True,
                       clear=set(profile.clear), remove=set(profile.remove), uids=set(profile.uids),
                       removed_ranges=list(profile.removed_ranges))
    mod.replace[DEIDENTIFICATION_METHOD] = f"Orthanc {ORTHANC_VERSION} - {profile.method}"
    mod.replace[PATIENT_IDENTITY_REMOVED] = "YES"
    mod.uids |= {PATIENT_ID, PATIENT_NAME}  # new values, mapped as identifiers of the patient level
    return mod


# -- state ----------------------------------------------------------------------------------------------------

def _path_state(path: Path) -> dict:
    return {"Prefix": [[t, i] for t, i in path.prefix], "Tag": path.tag}


def _path_from_state(state: dict) -> Path:
    return Path(tuple((int(t), None if i is None else int(i)) for t, i in state["Prefix"]), int(state["Tag"]))


_TAG_SETS = ("remove", "clear", "uids", "keep", "private_to_keep", "keep_uids")


def modification_state(mod: Modification) -> dict:
    """A JSON-serialisable picture of ``mod``, its generated identifiers included."""
    state: dict[str, Any] = {name: sorted(getattr(mod, name)) for name in _TAG_SETS}
    state.update({
        "level": mod.level.value, "is_anonymization": mod.is_anonymization,
        "replace": {f"{tag:08x}": value for tag, value in sorted(mod.replace.items())},
        "removed_ranges": [list(r) for r in mod.removed_ranges], "remove_private": mod.remove_private,
        "keep_paths": [_path_state(p) for p in mod.keep_paths],
        "remove_paths": [_path_state(p) for p in mod.remove_paths],
        "replace_paths": [[_path_state(p), v] for p, v in mod.replace_paths],
        "private_creator": mod.private_creator, "force": mod.force, "keep_source": mod.keep_source,
        "uid_map": {level: dict(table) for level, table in mod.uid_map.items()}, "uid_seed": mod.uid_seed,
    })
    return state


def modification_from_state(state: dict) -> Modification:
    """The Modification ``modification_state`` described."""
    mod = Modification(level=Level(state["level"]), is_anonymization=bool(state["is_anonymization"]))
    for name in _TAG_SETS:
        setattr(mod, name, {int(t) for t in state[name]})
    mod.replace = {int(tag, 16): value for tag, value in state["replace"].items()}
    mod.removed_ranges = [tuple(int(v) for v in r) for r in state["removed_ranges"]]  # type: ignore[misc]
    mod.remove_private = bool(state["remove_private"])
    mod.keep_paths = [_path_from_state(p) for p in state["keep_paths"]]
    mod.remove_paths = [_path_from_state(p) for p in state["remove_paths"]]
    mod.replace_paths = [(_path_from_state(p), v) for p, v in state["replace_paths"]]
    mod.private_creator, mod.force = state["private_creator"], bool(state["force"])
    mod.keep_source = bool(state["keep_source"])
    mod.uid_map = {level: dict(table) for level, table in state["uid_map"].items()}
    mod.uid_seed = state.get("uid_seed")
    return mod


# -- identifiers ----------------------------------------------------------------------------------------------

def _generate(mod: Modification, original: str, level: Level) -> str:
    if mod.uid_seed is None:
        return str(uuid.uuid4()) if level is Level.PATIENT else generate_uid(prefix=UID_ROOT)
    sources = [str(mod.uid_seed), level.value, original]
    if level is Level.PATIENT:  # Orthanc's new PatientID is a UUID
        return str(uuid.UUID(bytes=hashlib.sha256("\0".join(sources).encode()).digest()[:16], version=4))
    return generate_uid(prefix=UID_ROOT, entropy_srcs=sources)


def identifier_map(mod: Modification, original: str, level: Level) -> str:
    """The new identifier of ``original`` at ``level``, made once per Modification (Orthanc's
    MapDicomIdentifier: the original without surrounding spaces)."""
    stripped = original.strip()
    table = mod.uid_map.setdefault(level.value, {})
    new = table.get(stripped)
    if new is None:
        new = table[stripped] = _generate(mod, stripped, level)
    return new


# -- application ----------------------------------------------------------------------------------------------

def instance_modify(data: bytes, mod: Modification) -> bytes:
    """The modified (or anonymized) Part 10 file; ``data`` is not changed, nor its transfer syntax and pixels."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    dataset_modify(ds, mod)
    _file_meta_complete(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dataset_modify(ds: Dataset, mod: Modification) -> None:
    """Apply ``mod`` to ``ds`` in place (see the module docstring for the steps)."""
    if any(_is_removed(mod, tag) for tag in DATABASE_KEYS):
        raise BadRequest("It is forbidden to remove one of the main Dicom identifiers")
    if mod.is_anonymization:
        for tag, level in _UID_LEVEL.items():
            if tag in mod.replace:
                replacement = mod.replace[tag]
                if not isinstance(replacement, str):
                    raise BadParameterType()
                original = (_string(ds, tag) or "").strip()
                mod.uid_map.setdefault(level.value, {}).setdefault(original, replacement)
    if mod.remove_private:
        for tag in [t for t in ds.keys() if _is_private(t) and t not in mod.private_to_keep]:
            del ds[tag]
    # Set intersections: a profile lists hundreds of tags, a dataset holds a few of them.
    for tag in sorted(mod.clear & ds.keys()):
        _element_empty(ds, tag)
    for tag in sorted(mod.remove & ds.keys()):
        del ds[tag]
    for tag in sorted(mod.replace):
        _element_set(ds, tag, mod.replace[tag], mod.private_creator)
    for level, tag in UIDS.items():
        if level.depth >= max(mod.level.depth, Level.STUDY.depth) and tag not in mod.replace \
                and tag not in mod.keep_uids:
            ds[tag] = DataElement(tag, "UI", identifier_map(mod, _string(ds, tag) or "", level))
    if mod.is_anonymization:
        _visit_top(ds, mod)
    for path in mod.remove_paths:
        for item in _items_at(ds, path.prefix):
            if path.tag in item:
                del item[path.tag]
    for path, value in mod.replace_paths:
        for item in _items_at(ds, path.prefix):
            _element_set(item, path.tag, value, mod.private_creator)
    if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _is_private(tag: int) -> bool:
    group = tag >> 16
    return bool(group & 1) and group > 7 and group != 0xFFFF  # DCMTK's DcmTagKey::isPrivate


def _is_removed(mod: Modification, tag: int) -> bool:
    if tag in mod.remove:
        return True
    group, element = tag >> 16, tag & 0xFFFF
    return any(g0 <= group <= g1 and e0 <= element <= e1 for g0, g1, e0, e1 in mod.removed_ranges)


def _vr_of(ds: Dataset, tag: int) -> str:
    """The VR of an element of ``ds``, without decoding its value when the file or the dictionary says it; may
    be ambiguous ("OB or OW"), never so for a string or a sequence."""
    vr = getattr(ds.get_item(tag), "VR", None)
    if vr and vr != "UN":
        return vr
    try:
        known = dictionary_VR(tag)
    except KeyError:
        return ds[tag].VR  # private or unknown: let pydicom decide (it recognises undefined-length sequences)
    # A sequence stored as UN with a defined length stays an opaque UN for DCMTK: Orthanc never looks inside.
    return "UN" if vr == "UN" and known == "SQ" else known


def _is_un(ds: Dataset, tag: int) -> bool:
    """Whether the file stores this element as UN (explicit VR): Orthanc then only removes it, never rewrites."""
    return getattr(ds.get_item(tag), "VR", None) == "UN"


def _string(ds: Dataset, tag: int) -> str | None:
    """A string element's value as Orthanc reads it (multiple values joined by backslashes), None if absent."""
    if tag not in ds:
        return None
    value = ds[tag].value
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _element_empty(ds: Dataset, tag: int) -> None:
    try:
        vr = dictionary_VR(tag)  # DCMTK's insertEmptyElement makes an element of the dictionary's VR
    except KeyError:
        vr = _vr_of(ds, tag)
    if " or " in vr:
        vr = ds[tag].VR  # pydicom resolves "US or SS" from the dataset
    ds[tag] = DataElement(tag, vr, Sequence([]) if vr == "SQ" else None)


def _visit_top(ds: Dataset, mod: Modification) -> None:
    # Top level: only the "U" attributes the body left alone; the sequences are walked.
    for tag in list(ds.keys()):
        vr = _vr_of(ds, tag)
        if vr == "SQ":
            _visit_sequence(ds[tag], (), mod)
        elif tag in mod.uids and vr in _STRING_VRS and tag not in mod.clear and tag not in mod.replace \
                and not _is_removed(mod, tag) and not _is_un(ds, tag):
            level = Level.PATIENT if tag in (PATIENT_ID, PATIENT_NAME) else Level.INSTANCE
            ds[tag] = DataElement(tag, vr, identifier_map(mod, _string(ds, tag) or "", level))


def _visit_sequence(element: DataElement, parents: tuple[tuple[int, int], ...], mod: Modification) -> None:
    for index, item in enumerate(element.value or ()):
        _visit_item(item, (*parents, (int(element.tag), index)), mod)


def _kept(mod: Modification, parents: tuple[tuple[int, int], ...], tag: int) -> bool:
    """DicomPath::IsMatch of any "Keep" path: the element itself, or a sequence it lies in."""
    for path in mod.keep_paths:
        n = len(path.prefix)
        if len(parents) < n:
            continue
        pairs = zip(path.prefix, parents[:n], strict=True)
        if any(pt != t or (pi is not None and pi != i) for (pt, pi), (t, i) in pairs):
            continue
        if (tag if len(parents) == n else parents[n][0]) == path.tag:
            return True
    return False


def _visit_item(item: Dataset, parents: tuple[tuple[int, int], ...], mod: Modification) -> None:
    drop: list[int] = []
    for tag in list(item.keys()):
        if mod.keep_paths and _kept(mod, parents, tag):
            continue
        if mod.remove_private and _is_private(tag) or tag >> 16 == 0x0002:
            drop.append(tag)  # (file meta elements inside an item do not survive DCMTK either)
            continue
        removed, cleared = _is_removed(mod, tag), tag in mod.clear
        is_uid = tag in _UID_LEVEL or tag in mod.uids
        if not (removed or cleared or is_uid):
            if _vr_of(item, tag) == "SQ":
                _visit_sequence(item[tag], parents, mod)
            continue
        vr = _vr_of(item, tag)
        if vr not in _STRING_VRS:
            if removed or cleared:
                drop.append(tag)
            elif vr == "SQ":
                _visit_sequence(item[tag], parents, mod)
            continue
        if removed:
            drop.append(tag)
        elif _is_un(item, tag):
            continue  # Orthanc's visitor cannot rewrite a string stored as UN (DCMTK logs it and keeps the value)
        elif cleared:
            item[tag] = DataElement(tag, vr, "")
        else:
            level = _level_in_item(tag, parents)
            item[tag] = DataElement(tag, vr, identifier_map(mod, _string(item, tag) or "", level))
    for tag in drop:
        del item[tag]


def _level_in_item(tag: int, parents: tuple[tuple[int, int], ...]) -> Level:
    if tag in _UID_LEVEL:
        return _UID_LEVEL[tag]
    if tag in (PATIENT_ID, PATIENT_NAME):
        return Level.PATIENT
    if tag == REFERENCED_SOP_INSTANCE_UID and len(parents) == 2 and parents[0][0] == \
            REFERENCED_FRAME_OF_REFERENCE_SEQUENCE and parents[1][0] == RT_REFERENCED_STUDY_SEQUENCE:
        return Level.STUDY  # RT-STRUCT: this "ReferencedSOPInstanceUID" holds a StudyInstanceUID
    return Level.INSTANCE


def _items_at(ds: Dataset, prefix: tuple[tuple[int, int | None], ...]) -> Iterator[Dataset]:
    if not prefix:
        yield ds
        return
    (tag, index), rest = prefix[0], prefix[1:]
    if tag not in ds or _vr_of(ds, tag) != "SQ":
        return
    for k, item in enumerate(ds[tag].value or ()):
        if index is None or index == k:
            yield from _items_at(item, rest)


# -- values ---------------------------------------------------------------------------------------------------

def _tag_text(tag: int) -> str:
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def _vr_for(tag: int, private_creator: str) -> str:
    if _is_private(tag):
        if private_creator:
            try:
                return private_dictionary_VR(tag, private_creator).split(" or ")[0]
            except KeyError:
                pass
        return "UN"
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


def _element_set(ds: Dataset, tag: int, value: Any, private_creator: str) -> None:
    """Insert or replace ``tag`` from a JSON value as Orthanc's ParsedDicomFile::Replace does."""
    if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
        # group lengths and the file meta information are the writer's business (Orthanc answers 200 too;
        # pydicom refuses a group 0002 element in the dataset)
        return
    if tag in (SOP_UID, SOP_CLASS_UID) and not isinstance(value, str):
        raise BadParameterType()
    ds[tag] = _element_from_json(tag, value, private_creator)
    if hasattr(ds, "file_meta") and isinstance(value, str):
        if tag == SOP_UID:
            ds.file_meta.MediaStorageSOPInstanceUID = value
        elif tag == SOP_CLASS_UID:
            ds.file_meta.MediaStorageSOPClassUID = value


def _element_from_json(tag: int, value: Any, private_creator: str) -> DataElement:
    vr = _vr_for(tag, private_creator)
    if value is None:
        return DataElement(tag, vr, Sequence([]) if vr == "SQ" else None)
    if isinstance(value, str):
        return DataElement(tag, vr, _cast(tag, vr, value))
    if isinstance(value, list):
        if vr != "SQ":
            raise BadParameterType(f"Bad Parameter type for tag {_tag_text(tag)}")
        items = []
        for entry in value:
            item = Dataset()
            if isinstance(entry, dict):
                for name, sub in entry.items():
                    sub_tag = _tag(name)
                    item[sub_tag] = _element_from_json(sub_tag, sub, private_creator)
            elif not (isinstance(entry, list) and not entry):  # [] stands for an empty item (Lua)
                raise BadParameterType()
            items.append(item)
        return DataElement(tag, "SQ", Sequence(items))
    raise BadParameterType(f"Bad Parameter type for tag {_tag_text(tag)}")


def _cast(tag: int, vr: str, text: str) -> Any:
    """A string of the REST API as the value of an element of this VR (Orthanc's FillElementWithString)."""
    if vr in _STRING_VRS:
        return text
    if vr in _BINARY_VRS:
        if text.startswith("data:") and ";base64," in text:
            try:
                data = base64.b64decode(text.split(";base64,", 1)[1], validate=True)
            except binascii.Error:
                raise BadFileFormat() from None
        else:
            data = text.encode("utf-8")
        # a value has an even length; DCMTK pads an odd one with a NUL when Orthanc writes it, pydicom does not
        return data + b"\x00" if len(data) % 2 else data
    if vr == "SQ" or vr == "AT":
        raise BadParameterType(f"Bad Parameter type for tag {_tag_text(tag)}")
    try:
        parts = text.split("\\") if text else []
        values: list[Any] = [int(p) if vr in _INT_VRS else float(p) for p in parts]
    except ValueError:
        raise BadFileFormat(f"While creating a DICOM instance, tag ({_tag_text(tag)}) has out-of-range value: "
                            f'"{text}"') from None
    return values[0] if len(values) == 1 else values


def _file_meta_complete(ds: Dataset) -> None:
    """Files stored without a meta header (implicit VR datasets) get one, as Orthanc writes them."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                  ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

