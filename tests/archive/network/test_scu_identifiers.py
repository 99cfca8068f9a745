"""The C-FIND and C-MOVE identifiers our SCU builds, as Orthanc's DicomControlUserConnection (the exchange
itself is checked against real Orthanc in tests/explorer/api/test_modalities_orthanc.py)."""

from __future__ import annotations

import pytest

from archive.errors import BadRequest
from archive.levels import Level
from archive.network.queries import find_identifier, level_parse, retrieve_identifier, tags_parse


def _values(ds) -> dict[str, str]:
    out = {}
    for elem in ds:
        value = elem.value.decode() if isinstance(elem.value, bytes) else str(elem.value)
        out[elem.keyword] = value
    return out


def test_study_find_adds_the_unique_keys_with_universal_matching() -> None:
    ds = find_identifier(level=Level.STUDY, query={0x00100010: "Doe*"}, manufacturer="Generic", normalize=True)
    assert _values(ds) == {"SpecificCharacterSet": "ISO_IR 100", "AccessionNumber": "", "QueryRetrieveLevel": "STUDY",
                           "PatientName": "Doe*", "PatientID": "", "StudyInstanceUID": ""}


def test_normalize_drops_the_tags_of_lower_levels() -> None:
    ds = find_identifier(level=Level.PATIENT, query={0x00080060: "CT", 0x00100010: ""}, manufacturer="Generic",
                         normalize=True)
    assert "Modality" not in _values(ds)
    kept = find_identifier(level=Level.PATIENT, query={0x00080060: "CT"}, manufacturer="Generic", normalize=False)
    assert _values(kept)["Modality"] == "CT"


def test_ge_universal_matching_is_a_star() -> None:
    ds = find_identifier(level=Level.SERIES, query={}, manufacturer="GE", normalize=True)
    assert {k: v for k, v in _values(ds).items() if k.endswith(("UID", "ID", "Number"))} == {
        "AccessionNumber": "*", "PatientID": "*", "StudyInstanceUID": "*", "SeriesInstanceUID": "*"}


@pytest.mark.parametrize(("manufacturer", "date", "name"), [
    ("Generic", "*", "*"), ("GenericNoWildcardInDates", "", "*"), ("GenericNoUniversalWildcard", "", "")])
def test_manufacturer_wildcard_quirks(manufacturer, date, name) -> None:
    ds = find_identifier(level=Level.STUDY, query={0x00080020: "*", 0x00100010: "*"}, manufacturer=manufacturer,
                         normalize=True)
    assert (_values(ds)["StudyDate"], _values(ds)["PatientName"]) == (date, name)


def test_retrieve_identifier_keeps_the_unique_keys_of_the_level() -> None:
    ds = retrieve_identifier(level=Level.SERIES, answer={0x0020000D: "1.2", 0x0020000E: "1.2.3", 0x00100010: "x*"},
                             manufacturer="Generic")
    assert _values(ds) == {"SpecificCharacterSet": "ISO_IR 100", "QueryRetrieveLevel": "SERIES",
                           "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}
    with pytest.raises(BadRequest, match="Missing tag 0020,000e"):
        retrieve_identifier(level=Level.SERIES, answer={0x0020000D: "1.2"}, manufacturer="Generic")


def test_levels_and_query_maps_are_read_as_orthanc() -> None:
    assert level_parse("IMAGE") is Level.INSTANCE and level_parse("study") is Level.STUDY
    # orthanc-api-client sends "Studies" (query_studies): Orthanc 1.10.1 takes it, we refused it
    assert level_parse("Studies") is Level.STUDY and level_parse("Images") is Level.INSTANCE
    assert tags_parse({"PatientName": "x", "0020,000d": "1.2"}) == {0x00100010: "x", 0x0020000D: "1.2"}


def test_a_specific_character_set_among_the_keys_is_the_querys_encoding() -> None:
    """ParsedDicomFile::CreateFromDicomMap: a name the DefaultEncoding (Latin-1) cannot hold is sent whole in
    UTF-8 when the query says ISO_IR 192 (without it, Orthanc and we drop what Latin-1 lacks)."""
    from archive.network.queries import dataset_of

    utf8 = dataset_of({0x00080005: "ISO_IR 192", 0x00100010: "山田*"})
    assert utf8[0x00080005].value == "ISO_IR 192" and utf8[0x00100010].value.encode("utf-8") == "山田*".encode()
    latin1 = dataset_of({0x00100010: "Dvořák*"})
    assert latin1[0x00080005].value == "ISO_IR 100" and str(latin1[0x00100010].value) == "Dvoák*"
