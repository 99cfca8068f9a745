"""Main DICOM tags per level, their stored values and signatures, and tag parsing, as Orthanc 1.12.11 has them.

The golden answers come from real Orthanc 1.10.1: its MainDicomTags lack the 1.12.5 additions
(TimezoneOffsetFromUTC, PerformedProcedureStepStart{Date,Time}), which are checked on their own.
"""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from archive.dicom.tags import (
    MAIN_DICOM_TAGS,
    STUDY_STORED_TAGS,
    main_dicom_sequences,
    main_dicom_tags,
    main_dicom_tags_signature,
    parse_tag,
    tag_key,
    tag_name,
)
from archive.levels import Level
from tests.samples import GOLDEN_FILES, golden, orthanc_id, sample_path

ADDED_IN_1_12_5 = {"TimezoneOffsetFromUTC", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"}

# MainDicomTagsSignature metadata as a real Orthanc 1.12.x database records it (PostgreSQL dump).
SIGNATURES_1_12 = {
    Level.PATIENT: "0010,0010;0010,0020;0010,0030;0010,0040;0010,1000",
    Level.STUDY: "0008,0020;0008,0030;0008,0050;0008,0080;0008,0090;0008,0201;0008,1030;0020,000d;0020,0010;"
                 "0032,1032;0032,1060",
    Level.SERIES: "0008,0021;0008,0031;0008,0060;0008,0070;0008,0201;0008,1010;0008,103e;0008,1070;0018,0010;"
                  "0018,0015;0018,0024;0018,1030;0018,1090;0018,1400;0020,000e;0020,0011;0020,0037;0020,0105;"
                  "0020,1002;0040,0244;0040,0245;0040,0254;0040,0275;0054,0081;0054,0101;0054,1000",
    Level.INSTANCE: "0008,0012;0008,0013;0008,0018;0020,0012;0020,0013;0020,0032;0020,0037;0020,0100;0020,4000;"
                    "0028,0008;0054,1330",
}


def _read(rel: str) -> Dataset:
    return pydicom.dcmread(sample_path(rel), stop_before_pixels=True)


def _raw(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """An element as dcmread leaves it: undecoded bytes."""
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _ids(ds: Dataset) -> dict[Level, str]:
    chain = [str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]
    return {level: orthanc_id(*chain[:i + 1]) for i, level in enumerate(Level)}


@pytest.mark.parametrize("level", list(Level))
def test_signature_matches_orthanc_1_12(level):
    assert main_dicom_tags_signature(level) == SIGNATURES_1_12[level]


def test_signature_adds_extra_tags_sorted_and_once():
    extra = (Tag(0x0028, 0x0010), Tag(0x0008, 0x0018))  # Rows, and SOPInstanceUID already there
    signature = main_dicom_tags_signature(Level.INSTANCE, extra)
    assert signature.split(";") == sorted(SIGNATURES_1_12[Level.INSTANCE].split(";") + ["0028,0010"])


def test_study_stores_the_patient_tags_too():
    assert set(MAIN_DICOM_TAGS[Level.PATIENT]) <= set(STUDY_STORED_TAGS)
    assert "0010,0010" not in main_dicom_tags_signature(Level.STUDY)


def test_lists_keep_orthanc_order():
    assert MAIN_DICOM_TAGS[Level.PATIENT][0] == Tag("PatientName")
    assert MAIN_DICOM_TAGS[Level.PATIENT][-1] == Tag("PatientID")
    assert MAIN_DICOM_TAGS[Level.SERIES][-1] == Tag("RequestAttributesSequence")


@pytest.mark.parametrize("rel", GOLDEN_FILES)
@pytest.mark.parametrize("level", list(Level))
def test_main_dicom_tags_match_golden(rel, level):
    ds = _read(rel)
    answer = golden()[f"GET /{level.plural}/{_ids(ds)[level]}"]["json"]
    ours = {k: v for k, v in main_dicom_tags(ds, level).items() if k not in ADDED_IN_1_12_5}
    assert ours == answer["MainDicomTags"]
    if level is Level.STUDY:
        assert main_dicom_tags(ds, Level.PATIENT) == answer["PatientMainDicomTags"]


def test_1_12_5_additions_are_stored():
    series = main_dicom_tags(_read("Brainix/Flair/IM-0001-0001.dcm"), Level.SERIES)
    assert series["PerformedProcedureStepStartDate"] == "20061201"
    assert series["PerformedProcedureStepStartTime"] == "141645.000000"
    study = main_dicom_tags(_read("TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm"), Level.STUDY)
    assert study["TimezoneOffsetFromUTC"] == "-0400"


def _dataset(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_absent_tags_are_left_out_and_empty_ones_stored_empty():
    ds = _dataset(PatientID="P", PatientName="", PatientSex="O")
    assert main_dicom_tags(ds, Level.PATIENT) == {"PatientName": "", "PatientSex": "O", "PatientID": "P"}


def test_too_long_values_are_not_stored():
    # Orthanc's summary turns values over 256 bytes into null values, which the index skips
    ds = Dataset()
    _raw(ds, 0x00081030, "LO", b"x" * 258)  # StudyDescription
    _raw(ds, 0x00200010, "SH", b"y" * 256)  # StudyID
    assert main_dicom_tags(ds, Level.STUDY) == {"StudyID": "y" * 256}


def test_multiple_values_are_joined_with_a_backslash():
    ds = _dataset(ImageOrientationPatient=["1", "0", "0", "0", "1", "0"])
    assert main_dicom_tags(ds, Level.INSTANCE)["ImageOrientationPatient"] == "1\\0\\0\\0\\1\\0"


@pytest.mark.parametrize(("rel", "name"), [
    ("Encodings/Lena-latin2.dcm", "Test-éüäö"),                       # ISO_IR 101
    ("Encodings/Lena-cyrillic.dcm", "Test-Дћ"),                       # ISO_IR 144
    ("Encodings/DavidClunie/SCSH31", "Yamada^Tarou=山田^太郎=やまだ^たろう"),  # \ISO 2022 IR 87
])
def test_text_is_decoded_with_the_file_charset(rel, name):
    assert main_dicom_tags(_read(rel), Level.PATIENT)["PatientName"] == name


def test_default_encoding_applies_without_specific_character_set():
    ds = Dataset()
    _raw(ds, 0x00100010, "PN", b"Caf\xe9")
    assert main_dicom_tags(ds, Level.PATIENT)["PatientName"] == "Café"
    assert main_dicom_tags(ds, Level.PATIENT, default_encoding="Cyrillic")["PatientName"] == "Cafщ"


def test_sequences_are_kept_apart():
    ds = _read("Brainix/Flair/IM-0001-0001.dcm")
    assert "RequestAttributesSequence" not in main_dicom_tags(ds, Level.SERIES)
    sequences = main_dicom_sequences(ds, Level.SERIES)
    entry = sequences["0040,0275"]
    assert entry["Name"] == "RequestAttributesSequence" and entry["Type"] == "Sequence"
    assert entry["Value"][0]["0040,0009"]["Value"] == "A10029316691"


def test_extra_main_dicom_tags_are_stored():
    ds = _read("DummyCT.dcm")
    extra = (parse_tag("Rows"), parse_tag("0028,0011"), parse_tag("SOPInstanceUID"))
    tags = main_dicom_tags(ds, Level.INSTANCE, extra=extra)
    assert tags["Rows"] == "512" and tags["Columns"] == "512"
    assert list(tags).count("SOPInstanceUID") == 1


def test_only_top_level_elements_count():
    item = _dataset(StudyDescription="nested")
    ds = _dataset(ReferencedStudySequence=[item])
    assert main_dicom_tags(ds, Level.STUDY) == {}


@pytest.mark.parametrize("text", ["0010,0010", "0010-0010", "00100010", "PatientName", " 0010,0010 "])
def test_parse_tag_accepts_orthanc_spellings(text):
    assert parse_tag(text) == Tag(0x0010, 0x0010)


def test_parse_tag_accepts_dcmtk_names_and_hex_case():
    assert parse_tag("7FE0,0010") == Tag(0x7FE0, 0x0010)
    assert parse_tag("RETIRED_OtherPatientIDs") == Tag(0x0010, 0x1000)


@pytest.mark.parametrize("text", ["", "Nope", "0010,001", "0010:0010", "(0010,0010)", "patientname", "zzzz,0010"])
def test_parse_tag_rejects_unknown_names(text):
    with pytest.raises(ValueError):
        parse_tag(text)


def test_tag_key_is_lowercase_hex():
    assert tag_key(Tag(0x7FE0, 0x0010)) == "7fe0,0010"
    assert tag_key(0x0020000D) == "0020,000d"


@pytest.mark.parametrize(("tag", "creator", "name"), [
    (0x00101000, None, "OtherPatientIDs"),           # Orthanc patches DCMTK's RETIRED_ name
    (0x00080000, None, "GenericGroupLength"),
    (0x00090000, None, "PrivateGroupLength"),
    (0x00090010, None, "PrivateCreator"),
    (0x00091011, "GEMS_GENIE_1", "StudyFlags"),     # DCMTK's private dictionary
    # private.dic says "End NumberForBaseline": DCMTK strips every space of a name when it loads it
    # (names as real Orthanc 1.10.1 gave them)
    (0x00191014, "GEMS_ACQU_01", "EndNumberForBaseline"),
    (0x00191087, "GEMS_ACQU_01", "CardiacRepetitionTime"),
    (0x00471001, "GEMS_ADWSoft_3D1", "ReconstructionParametersSequence"),
    (0x20111011, "FDMS 1.0", "ImagePositionSpecifyingFlag"),
    (0x00091011, "SOMEONE", "Unknown Tag & Data"),
    (0x00091011, None, "Unknown Tag & Data"),
    (0x60000010, None, "OverlayRows"),
    (0x60020010, None, "OverlayRows"),              # repeating group
    (0x00189999, None, "Unknown Tag & Data"),
])
def test_tag_name_as_dcmtk(tag, creator, name):
    assert tag_name(tag, creator) == name
