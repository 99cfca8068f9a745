"""Orthanc's main DICOM tags: the tags each level keeps in the index, and how their values are stored.

The lists are Orthanc 1.12.11's defaults: the ones of ``DicomMap.cpp`` (unchanged from 1.4.2 to 1.12.4),
plus the 1.12.5 additions for QIDO-RS (TimezoneOffsetFromUTC on studies and series; the performed
procedure step start date and time and RequestAttributesSequence on series). Real 1.12.x databases record
exactly these signatures, e.g. series
``0008,0021;0008,0031;0008,0060;0008,0070;0008,0201;...;0040,0244;0040,0245;0040,0254;0040,0275;...``.

Values are what Orthanc's ``ExtractDicomSummary`` gives for the top-level element (see ``json.py`` for the
conversion): absent elements are left out, present but empty ones are stored as ``""``, values longer
than 256 UTF-8 bytes and binary or empty numeric ones (Orthanc's null values) are left out, as are
sequences, which Orthanc keeps apart in the ``MainDicomSequences`` metadata (``main_dicom_sequences``).
A study also stores the patient's main tags (Orthanc's ``PatientMainDicomTags``), under its own signature.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from archive.levels import Level


def _tags(*keywords: str) -> tuple[BaseTag, ...]:
    return tuple(Tag(tag_for_keyword(k)) for k in keywords)


# In Orthanc's order (DicomMap.cpp's DEFAULT_*_MAIN_DICOM_TAGS, then the 1.12.5 additions).
MAIN_DICOM_TAGS: dict[Level, tuple[BaseTag, ...]] = {
    Level.PATIENT: _tags("PatientName", "PatientBirthDate", "PatientSex", "OtherPatientIDs", "PatientID"),
    Level.STUDY: _tags(
        "StudyDate", "StudyTime", "StudyID", "StudyDescription", "AccessionNumber", "StudyInstanceUID",
        "RequestedProcedureDescription", "InstitutionName", "RequestingPhysician", "ReferringPhysicianName",
        "TimezoneOffsetFromUTC"),
    Level.SERIES: _tags(
        "SeriesDate", "SeriesTime", "Modality", "Manufacturer", "StationName", "SeriesDescription",
        "BodyPartExamined", "SequenceName", "ProtocolName", "SeriesNumber", "CardiacNumberOfImages",
        "ImagesInAcquisition", "NumberOfTemporalPositions", "NumberOfSlices", "NumberOfTimeSlices",
        "SeriesInstanceUID", "ImageOrientationPatient", "SeriesType", "OperatorsName",
        "PerformedProcedureStepDescription", "AcquisitionDeviceProcessingDescription", "ContrastBolusAgent",
        "TimezoneOffsetFromUTC", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
        "RequestAttributesSequence"),
    Level.INSTANCE: _tags(
        "InstanceCreationDate", "InstanceCreationTime", "AcquisitionNumber", "ImageIndex", "InstanceNumber",
        "NumberOfFrames", "TemporalPositionIdentifier", "SOPInstanceUID", "ImagePositionPatient",
        "ImageComments", "ImageOrientationPatient"),
}

# What a study row stores: its own tags and a copy of the patient's (shown as PatientMainDicomTags).
STUDY_STORED_TAGS: tuple[BaseTag, ...] = MAIN_DICOM_TAGS[Level.STUDY] + MAIN_DICOM_TAGS[Level.PATIENT]

# Orthanc patches the names of these tags whatever the DCMTK dictionary says (FromDcmtkBridge,
# GetTagNameInternal), e.g. OtherPatientIDs that DCMTK calls RETIRED_OtherPatientIDs.
MAIN_DICOM_TAG_NAMES: dict[int, str] = {
    0x00080050: "AccessionNumber", 0x00080018: "SOPInstanceUID", 0x00100020: "PatientID",
    0x0020000E: "SeriesInstanceUID", 0x0020000D: "StudyInstanceUID", 0x7FE00010: "PixelData",
    0x00541330: "ImageIndex", 0x00200013: "InstanceNumber", 0x00540081: "NumberOfSlices",
    0x00280008: "NumberOfFrames", 0x00181090: "CardiacNumberOfImages", 0x00201002: "ImagesInAcquisition",
    0x00100010: "PatientName", 0x00200032: "ImagePositionPatient", 0x00200037: "ImageOrientationPatient",
    0x00101000: "OtherPatientIDs",
}

# Orthanc's DefaultEncoding names -> SpecificCharacterSet defined terms (PS3.3 C.12.1.1.2), as Orthanc's
# GetDicomSpecificCharacterSet answers them (Windows1251 has no DICOM term: its nearest is given).
ENCODING_TO_CHARSET = {
    "Ascii": "ISO_IR 6", "Utf8": "ISO_IR 192", "Latin1": "ISO_IR 100", "Latin2": "ISO_IR 101",
    "Latin3": "ISO_IR 109", "Latin4": "ISO_IR 110", "Latin5": "ISO_IR 148", "Cyrillic": "ISO_IR 144",
    "Windows1251": "ISO_IR 144", "Arabic": "ISO_IR 127", "Greek": "ISO_IR 126", "Hebrew": "ISO_IR 138",
    "Thai": "ISO_IR 166", "Japanese": "ISO_IR 13", "Chinese": "GB18030", "JapaneseKanji": "ISO 2022 IR 87",
    "Korean": "ISO 2022 IR 149", "SimplifiedChinese": "ISO 2022 IR 58",
}

_HEX = frozenset("0123456789abcdefABCDEF")


def dataset_group_invalid(group: int) -> bool:
    """Groups a dataset may not hold (DCMTK's removeInvalidGroups): command, file meta, odd ones below 8."""
    return group in (0x0000, 0x0002) or (group < 0x0008 and group % 2 == 1)


def tag_key(tag: int) -> str:
    """Orthanc's spelling of a tag (DicomTag::Format): lowercase ``gggg,eeee``."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


@functools.cache
def _dcmtk_names() -> dict:
    """DCMTK's names where they differ from pydicom's keywords, and its private dictionary
    (generated by scripts/build-dicom-names): Orthanc names tags as DCMTK does."""
    with open(Path(__file__).with_name("data") / "dcmtk_names.json", encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def _names_to_tags() -> dict[str, int]:
    """DCMTK's public names (RETIRED_... spellings included), for parse_tag."""
    out = {}
    for key, name in _dcmtk_names()["public"].items():
        out[name] = int(key[:4], 16) << 16 | int(key[5:], 16)
    return out


@functools.lru_cache(maxsize=8192)
def tag_name(tag: int, creator: str | None = None) -> str:
    """The name Orthanc gives an element (``Name`` in ``/tags``, keys of ``MainDicomTags``): DCMTK's
    dictionary name, "PrivateCreator" for a private creator, or "Unknown Tag & Data"."""
    tag = int(tag)
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        if group == 0x0002:
            return "FileMetaInformationGroupLength"
        return "PrivateGroupLength" if group & 1 else "GenericGroupLength"
    names = _dcmtk_names()
    if group & 1:
        if 0x0010 <= element <= 0x00FF:
            return "PrivateCreator"
        if creator is not None:
            known = names["private"].get(creator, {}).get(f"{group:04x},{element & 0xFF:02x}")
            if known:
                return known
        return "Unknown Tag & Data"
    patched = MAIN_DICOM_TAG_NAMES.get(tag)
    if patched is not None:
        return patched
    key = f"{group:04x},{element:04x}"
    if key in names["public"]:
        return names["public"][key]
    for g1, g2, e1, e2, name in names["ranges"]:
        if g1 <= group <= g2 and e1 <= element <= e2 and (group - g1) % 2 == 0:
            return name
    return keyword_for_tag(tag) or "Unknown Tag & Data"


def parse_tag(text: str) -> BaseTag:
    """A tag as Orthanc's FromDcmtkBridge::ParseTag reads it: ``gggg,eeee``, ``gggg-eeee``, ``ggggeeee``
    or a dictionary name (``PatientName``). Raises ValueError on anything else."""
    text = text.strip()
    if len(text) == 9 and text[4] in ",-" and _HEX.issuperset(text[:4] + text[5:]):
        return Tag(int(text[:4], 16), int(text[5:], 16))
    if len(text) == 8 and _HEX.issuperset(text):
        return Tag(int(text[:4], 16), int(text[4:], 16))
    tag = tag_for_keyword(text)
    if tag is None:
        tag = _names_to_tags().get(text)
    if tag is None or not text:
        raise ValueError(f"Unknown DICOM tag: {text}")
    return Tag(tag)


def level_tags(level: Level, extra: Sequence[BaseTag] = ()) -> tuple[BaseTag, ...]:
    """The main DICOM tags of ``level`` and its ExtraMainDicomTags, in that order."""
    tags = MAIN_DICOM_TAGS[level]
    if not extra:
        return tags
    known = set(tags)
    return tags + tuple(t for t in extra if t not in known and not known.add(t))


def main_dicom_tags(ds: Dataset, level: Level, *, extra: Sequence[BaseTag] = (),
                    default_encoding: str = "Latin1") -> dict[str, str]:
    """The main DICOM tags of ``level`` found in ``ds``, name -> value, as Orthanc stores them in its index.

    ``extra`` is the level's ``ExtraMainDicomTags``. Only top-level elements count. Sequences are not in
    this dict: see ``main_dicom_sequences``. For a study, Orthanc stores the patient tags too: call this
    with Level.PATIENT as well (``STUDY_STORED_TAGS``).
    """
    # json.py builds on this module; the conversion of values lives there.
    from archive.dicom.json import main_tag_values

    return main_tag_values(ds, level_tags(level, extra), default_encoding=default_encoding)


def main_dicom_sequences(ds: Dataset, level: Level, *, extra: Sequence[BaseTag] = (),
                         default_encoding: str = "Latin1") -> dict[str, Any]:
    """The main DICOM tags of ``level`` that are sequences (RequestAttributesSequence on series, and
    sequences listed in ExtraMainDicomTags), in Orthanc's full format: ``{"0040,0275": {"Name": ...,
    "Type": "Sequence", "Value": [...]}}``. Orthanc 1.12 keeps them in the MainDicomSequences metadata
    and shows them in MainDicomTags (``full_to_simplified`` gives that shape)."""
    from archive.dicom.json import main_tag_sequences

    return main_tag_sequences(ds, level_tags(level, extra), default_encoding=default_encoding)


def main_dicom_tags_signature(level: Level, extra: Sequence[BaseTag] = ()) -> str:
    """The MainDicomTagsSignature metadata (and ``/system``'s MainDicomTags): the level's main tags and
    extra tags, sorted, as ``gggg,eeee`` joined by ``;`` (DicomMap::ComputeSignature). A study's
    signature does not include the patient tags it stores."""
    return _signature(level, tuple(extra))


@functools.lru_cache(maxsize=64)
def _signature(level: Level, extra: tuple[BaseTag, ...]) -> str:
    # Computed for every instance stored and every /system (~15 us each): the configuration rarely changes.
    return ";".join(sorted({tag_key(t) for t in level_tags(level, extra)}))


@functools.lru_cache(maxsize=4096)
def tag_number(name: str) -> int | None:
    """The tag a key of ``Resource.main_tags`` names (the inverse of ``tag_name`` for main tags and the
    ExtraMainDicomTags a user may configure), or None."""
    for tags in MAIN_DICOM_TAGS.values():
        for tag in tags:
            if tag_name(tag) == name:
                return int(tag)
    try:
        return int(parse_tag(name))
    except ValueError:
        return None
