"""Orthanc's main DICOM tags: the tags each level keeps in the index, and how their values are stored.

The lists are Orthanc 1.12.11's defaults (DicomMap.cpp, with the 1.12.5 additions for QIDO-RS);
``ExtraMainDicomTags`` adds to them per level. Values are the file's strings decoded with its
SpecificCharacterSet (or Orthanc's DefaultEncoding when absent), multiple values joined with a backslash,
absent tags omitted.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from archive.levels import Level


def _tags(*keywords: str) -> tuple[BaseTag, ...]:
    return tuple(Tag(tag_for_keyword(k)) for k in keywords)


MAIN_DICOM_TAGS: dict[Level, tuple[BaseTag, ...]] = {
    Level.PATIENT: _tags("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs"),
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

# Orthanc's DefaultEncoding names -> SpecificCharacterSet defined terms (PS3.3 C.12.1.1.2).
ENCODING_TO_CHARSET = {
    "Ascii": "ISO_IR 6", "Utf8": "ISO_IR 192", "Latin1": "ISO_IR 100", "Latin2": "ISO_IR 101",
    "Latin3": "ISO_IR 109", "Latin4": "ISO_IR 110", "Latin5": "ISO_IR 148", "Cyrillic": "ISO_IR 144",
    "Windows1251": "ISO_IR 144", "Arabic": "ISO_IR 127", "Greek": "ISO_IR 126", "Hebrew": "ISO_IR 138",
    "Thai": "ISO_IR 166", "Japanese": "ISO_IR 13", "Chinese": "GB18030", "JapaneseKanji": "ISO 2022 IR 87",
    "Korean": "ISO 2022 IR 149", "SimplifiedChinese": "ISO 2022 IR 58",
}


def tag_key(tag: BaseTag) -> str:
    """Orthanc's spelling of a tag: lowercase ``gggg,eeee``."""
    return f"{tag.group:04x},{tag.element:04x}"


def tag_name(tag: BaseTag) -> str:
    """The keyword of a tag, or its ``gggg,eeee`` spelling when the dictionary does not know it."""
    return keyword_for_tag(tag) or tag_key(tag)


def parse_tag(text: str) -> BaseTag:
    """A tag from ``gggg,eeee``, ``ggggeeee``, ``gggg-eeee`` or a dictionary keyword; ValueError otherwise."""
    text = text.strip()
    compact = text.replace(",", "").replace("-", "").replace("(", "").replace(")", "")
    if len(compact) == 8:
        try:
            return Tag(int(compact[:4], 16), int(compact[4:], 16))
        except ValueError:
            pass
    tag = tag_for_keyword(text)
    if tag is None:
        raise ValueError(f"Unknown DICOM tag: {text}")
    return Tag(tag)


def ensure_charset(ds: Dataset, default_encoding: str) -> None:
    """Apply Orthanc's DefaultEncoding to a dataset that does not declare its SpecificCharacterSet."""
    if "SpecificCharacterSet" not in ds and default_encoding in ENCODING_TO_CHARSET:
        ds.SpecificCharacterSet = ENCODING_TO_CHARSET[default_encoding]


def value_string(value) -> str:
    """A DICOM value as Orthanc stores it in the index: text, multiple values joined with a backslash."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(value_string(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00 ")
    return str(value)


def main_dicom_tags(ds: Dataset, level: Level, *, extra: Sequence[BaseTag] = (),
                    default_encoding: str = "Latin1") -> dict[str, str]:
    """The main DICOM tags of ``level`` found in ``ds``, keyword -> value, as Orthanc indexes them."""
    ensure_charset(ds, default_encoding)
    out: dict[str, str] = {}
    for tag in (*MAIN_DICOM_TAGS[level], *extra):
        if tag not in ds:
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            continue  # sequences are not indexed as strings (Orthanc keeps them in MainDicomSequences)
        out[tag_name(tag)] = value_string(elem.value)
    return out


def main_dicom_tags_signature(level: Level, extra: Sequence[BaseTag] = ()) -> str:
    """The MainDicomTagsSignature metadata: the level's main tags, sorted, ``gggg,eeee`` joined by ``;``."""
    tags = sorted(set(MAIN_DICOM_TAGS[level]) | set(extra))
    return ";".join(tag_key(t) for t in tags)
