"""Modification of stored DICOM as Orthanc's /modify routes do it (DicomModification): Replace, Remove, Keep,
RemovePrivateTags, Force, and new UIDs below the modified level so the copy never overwrites its source.

Checked on real Orthanc 1.10.1: an instance modified alone gets a new SOPInstanceUID; a study modified gets a new
StudyInstanceUID, new SeriesInstanceUIDs and new SOPInstanceUIDs, one new UID per original UID (instances of
one series stay together), the patient unchanged; replacing PatientID or a UID needs "Force".
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from archive.dicom.tags import parse_tag
from archive.errors import BadRequest
from archive.levels import Level

PATIENT_ID = 0x00100020
UIDS = {Level.STUDY: 0x0020000D, Level.SERIES: 0x0020000E, Level.INSTANCE: 0x00080018}
# Orthanc refuses to touch these without "Force": identifiers that decide where an instance belongs.
PROTECTED = {PATIENT_ID, *UIDS.values()}
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root


@dataclass
class Modification:
    level: Level
    replace: dict[int, object] = field(default_factory=dict)
    remove: set[int] = field(default_factory=set)
    keep: set[int] = field(default_factory=set)
    remove_private: bool = False
    force: bool = False
    keep_source: bool = True
    # original UID -> new UID, shared by every instance of one modification (series stay together)
    uid_map: dict[str, str] = field(default_factory=dict)


def _tag_list(body: dict, name: str) -> set[int]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f'"{name}" must be a list of tags')
    return {int(parse_tag(v)) for v in value}


def modification_parse(body: dict, *, level: Level) -> Modification:
    """The body of a /modify request, with Orthanc's errors."""
    replace = body.get("Replace", {})
    if not isinstance(replace, dict):
        raise BadRequest('"Replace" must be a JSON object')
    for name in ("Force", "RemovePrivateTags", "KeepSource"):
        if name in body and not isinstance(body[name], bool):
            raise BadRequest(f'"{name}" must be a Boolean')
    mod = Modification(level=level, replace={int(parse_tag(k)): v for k, v in replace.items()},
                       remove=_tag_list(body, "Remove"), keep=_tag_list(body, "Keep"),
                       remove_private=bool(body.get("RemovePrivateTags", False)),
                       force=bool(body.get("Force", False)), keep_source=bool(body.get("KeepSource", True)))
    if not mod.force:
        for action, tags in (("replaced", mod.replace), ("removed", mod.remove), ("kept", mod.keep)):
            for tag in tags:
                if tag in PROTECTED and not (action == "kept" and tag != PATIENT_ID):
                    name = keyword_for_tag(tag) or f"{tag:08x}"
                    raise BadRequest(f'Marking tag "{name}" as to be {action} requires the "Force" option to be '
                                     "set to true")
    if level is Level.PATIENT and PATIENT_ID not in mod.replace:
        raise BadRequest("When modifying a patient, her PatientID is required to be modified")
    return mod


def _new_uid(mod: Modification, old: str) -> str:
    if old not in mod.uid_map:
        mod.uid_map[old] = generate_uid(prefix=UID_ROOT)
    return mod.uid_map[old]


def instance_modify(data: bytes, mod: Modification) -> bytes:
    """The modified file (a new Part 10 file; the source bytes are not changed)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    _apply(ds, mod)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _apply(ds: Dataset, mod: Modification) -> None:
    if mod.remove_private:
        ds.remove_private_tags()
    for tag in mod.remove:
        if tag in ds:
            del ds[tag]
    for tag, value in mod.replace.items():
        vr = dictionary_VR(tag) if tag in ds or keyword_for_tag(tag) else "LO"
        if tag in ds:
            ds[tag].value = value
        else:
            ds.add_new(tag, vr, value)
    # New UIDs at the modified level and below, unless the request replaces or keeps them.
    for level, tag in UIDS.items():
        if level.depth >= max(mod.level.depth, Level.STUDY.depth) and tag not in mod.replace and tag not in mod.keep:
            if tag in ds:
                ds[tag].value = _new_uid(mod, str(ds[tag].value))
    if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
