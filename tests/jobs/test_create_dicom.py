"""/tools/create-dicom as Orthanc answers it. The expected values were checked against Orthanc 1.10.1 (the same
bodies posted to it, its files and /tags read back), except where a comment names a later version."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pydicom
import pytest
from django.test import Client
from PIL import Image

pytestmark = pytest.mark.django_db

OCTET = "data:application/octet-stream;base64," + base64.b64encode(b"\x01\x02\x03hello").decode()
DICTIONARY = {"4321,1012": ["LO", "RadioButton3", 1, 1, "RadioLogic"], "4323,1001": ["DS", "Nocreator", 1, 1]}


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _png(array: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return _uri("image/png", out.getvalue())


GREY = _png(np.arange(6, dtype=np.uint8).reshape(2, 3) * 40)


def _post(body):
    data = body if isinstance(body, bytes) else None
    if data is not None:
        return Client().generic("POST", "/tools/create-dicom", data, content_type="application/json")
    return Client().post("/tools/create-dicom", body, content_type="application/json")


def _created(body) -> str:
    answer = _post(body)
    assert answer.status_code == 200, answer.json()
    return answer.json()["ID"]


def _file(instance: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(Client().get(f"/instances/{instance}/file").content))


def _tags(instance: str) -> dict:
    return Client().get(f"/instances/{instance}/tags").json()


def _simplified(instance: str) -> dict:
    return Client().get(f"/instances/{instance}/simplified-tags").json()


def _error(body, status: int, code: int, details: str | None = None) -> None:
    answer = _post(body)
    assert answer.status_code == status
    assert answer.json()["OrthancStatus"] == code
    assert answer.json().get("Details") == details


# --- What a new instance holds -----------------------------------------------------------------------------

def test_tags_only() -> None:
    answer = _post({"Tags": {"PatientName": "Jodogne^Sebastien", "PatientID": "S"}}).json()
    assert answer["Status"] == "Success" and answer["Path"] == f"/instances/{answer['ID']}"
    tags = _simplified(answer["ID"])
    assert tags["PatientName"] == "Jodogne^Sebastien" and tags["PatientID"] == "S"
    assert tags["SpecificCharacterSet"] == "ISO_IR 100"
    for prefix in ("Study", "Series", "Acquisition", "Content", "InstanceCreation"):
        assert re.fullmatch(r"\d{8}", tags[f"{prefix}Date"]) and re.fullmatch(r"\d{6}\.000000", tags[f"{prefix}Time"])
    assert tags["StudyInstanceUID"] and tags["SeriesInstanceUID"] and tags["SOPInstanceUID"]
    # no SOPClassUID; DCMTK's placeholder in the meta header
    assert "SOPClassUID" not in tags
    assert _file(answer["ID"]).file_meta.MediaStorageSOPClassUID == "1.2.276.0.7230010.3.1.0.1"


def test_patient_id_is_a_uuid_when_not_given() -> None:
    tags = _simplified(_created({"Tags": {}}))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", tags["PatientID"])


@pytest.mark.parametrize("name", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_generated_identifiers_need_force(name: str) -> None:
    _error({"Tags": {name: "1.2.3.4"}}, 400, 2020, name)
    _error({"Tags": {name: "1.2.3.4"}, "Force": False}, 400, 2020, name)
    instance = _created({"Tags": {name: "1.2.3.4"}, "Force": True})
    assert _simplified(instance)[name] == "1.2.3.4"


@pytest.mark.parametrize("name", ["PatientID", "StudyDate", "ContentTime", "SOPClassUID", "PatientName",
                                  "Modality"])
def test_tags_that_need_no_force(name: str) -> None:
    value = {"StudyDate": "20200101", "ContentTime": "101010", "SOPClassUID": "1.2.3"}.get(name, "X1")
    assert _simplified(_created({"Tags": {name: value}}))[name] == value


def test_sop_instance_uid_also_goes_to_the_meta_header() -> None:
    instance = _created({"Tags": {"SOPInstanceUID": "1.2.3.4", "SOPClassUID": "1.2.3"}, "Force": True})
    meta = _file(instance).file_meta
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4" and meta.MediaStorageSOPClassUID == "1.2.3"


@pytest.mark.parametrize("tags", [{"MediaStorageSOPClassUID": "1.2"}, {"TransferSyntaxUID": "1.2.840.10008.1.2"}])
def test_file_meta_elements_in_tags_are_left_to_the_writer(tags) -> None:
    """Orthanc 1.10.1 answers 200; pydicom refused them in the dataset (500)."""
    instance = _created({"Tags": {"PatientID": "P14", **tags}})
    ds = _file(instance)
    assert ds.PatientID == "P14" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert not any(elem.tag.group == 2 for elem in ds)


def test_no_sop_class_uid_metadata_without_the_tag() -> None:
    instance = _created({"Tags": {"PatientName": "Test", "PatientID": "P1"}})
    assert "SopClassUid" not in Client().get(f"/instances/{instance}/metadata").json()
    with_class = _created({"Tags": {"PatientID": "P2", "SOPClassUID": "1.2.3"}})
    assert Client().get(f"/instances/{with_class}/metadata/SopClassUid").content == b"1.2.3"


def test_specific_character_set_picks_the_encoding() -> None:
    utf8 = _created({"Tags": {"PatientName": "Jödogne", "SpecificCharacterSet": "ISO_IR 192"}})
    assert _file(utf8)["PatientName"].value == "Jödogne"
    assert _simplified(utf8)["SpecificCharacterSet"] == "ISO_IR 192"
    # Latin-1 (the DefaultEncoding): what it cannot hold is dropped
    latin1 = _created({"Tags": {"PatientName": "A\u4e2dBé"}})
    assert _file(latin1)["PatientName"].value == "ABé"
    _error({"Tags": {"SpecificCharacterSet": "FOO"}}, 400, 3, "Unknown specific character set: FOO")


def test_numbers_and_attribute_tags() -> None:
    instance = _created({"Tags": {"Rows": "12", "PixelSpacing": "0.5\\0.5", "SliceThickness": "1.25",
                                  "FrameIncrementPointer": "0018,1063", "0010,0000": "12"}})
    ds = _file(instance)
    assert ds["Rows"].VR == "US" and ds.Rows == 12 and ds.SliceThickness == 1.25
    assert _tags(instance)["0028,0009"]["Value"] == "0018,1063"
    assert 0x00100000 not in ds  # group lengths are ignored
    empty = _created({"Tags": {"Rows": ""}})
    assert _tags(empty)["0028,0010"] == {"Name": "Rows", "Type": "Null", "Value": None}


def test_sequences() -> None:
    instance = _created({"Tags": {"ReferencedStudySequence": [
        {"ReferencedSOPClassUID": "1.2", "ReferencedSOPInstanceUID": "1.3"}, {}, []]}})
    items = _tags(instance)["0008,1110"]["Value"]
    assert items[0]["0008,1155"]["Value"] == "1.3" and items[1:] == [{}, {}]
    assert _tags(_created({"Tags": {"ReferencedStudySequence": ""}}))["0008,1110"]["Value"] == []


# --- Private tags, Dictionary, binary values -------------------------------------------------------------------

def test_private_tag_unknown_to_the_dictionary_is_un_without_a_creator_element() -> None:
    for body in ({"Tags": {"0009,1001": "hello"}, "PrivateCreator": "Foo"}, {"Tags": {"0009,1001": "hello"}}):
        ds = _file(_created(body))
        assert ds[0x00091001].VR == "UN" and ds[0x00091001].value == b"hello\x00"
        assert (0x0009, 0x0010) not in ds   # Orthanc does not write the private creator
        assert _tags(_created(body))["0009,1001"] == {"Name": "Unknown Tag & Data", "Type": "Null", "Value": None}


def test_private_creator_element_given_as_a_tag() -> None:
    ds = _file(_created({"Tags": {"0009,0010": "Foo", "0009,1001": "hello"}, "PrivateCreator": "Foo"}))
    assert ds[0x00090010].VR == "LO" and ds[0x00090010].value == "Foo"
    assert ds[0x00091001].VR == "UN"


def test_dictionary_private_tag_takes_its_vr_under_its_creator(orthanc_config) -> None:
    orthanc_config(Dictionary=DICTIONARY, DefaultPrivateCreator="DefaultCreator")
    for tags in ({"4321,1012": "radio"}, {"RadioButton3": "radio"}):
        instance = _created({"Tags": tags, "PrivateCreator": "RadioLogic"})
        assert _file(instance)[0x43211012].VR == "LO"
        assert _tags(instance)["4321,1012"] == {"Name": "Unknown Tag & Data", "Type": "String", "Value": "radio"}
    # the DefaultPrivateCreator is not the tag's creator: UN
    element = _file(_created({"Tags": {"4321,1012": "radio"}}))[0x43211012]
    assert element.VR == "UN" and element.value == b"radio\x00"
    # declared without a creator: no creator given matches it, UN as well
    element = _file(_created({"Tags": {"Nocreator": "1.5"}, "PrivateCreator": ""}))[0x43231001]
    assert element.VR == "UN" and element.value == b"1.5\x00"


def test_dictionary_private_tag_with_the_default_private_creator(orthanc_config) -> None:
    orthanc_config(Dictionary=DICTIONARY, DefaultPrivateCreator="RadioLogic")
    assert _file(_created({"Tags": {"4321,1012": "radio"}}))[0x43211012].VR == "LO"


@pytest.mark.parametrize("interpret", [None, True])
def test_binary_data_uris_are_decoded_by_default(interpret) -> None:
    body = {"Tags": {"ICCProfile": OCTET, "StudyDescription": OCTET, "0009,1002": OCTET}, "PrivateCreator": "Foo"}
    if interpret is not None:
        body["InterpretBinaryTags"] = interpret
    ds = _file(_created(body))
    assert ds["ICCProfile"].VR == "OB" and ds["ICCProfile"].value == b"\x01\x02\x03hello"
    assert ds[0x00091002].value == b"\x01\x02\x03hello"
    assert ds["StudyDescription"].VR == "LO"
    assert ds["StudyDescription"].value == "\x01\x02\x03hello"


def test_binary_data_uris_kept_as_text_without_interpret_binary_tags() -> None:
    ds = _file(_created({"Tags": {"ICCProfile": OCTET, "StudyDescription": OCTET}, "InterpretBinaryTags": False}))
    assert ds["StudyDescription"].value == OCTET
    assert ds["ICCProfile"].value == OCTET.encode() + b"\x00"   # odd length: padded with a NUL
    # only application/octet-stream is decoded
    pdf = _uri("application/pdf", b"%PDF-1")
    assert _file(_created({"Tags": {"StudyDescription": pdf}}))["StudyDescription"].value == pdf


def test_binary_values() -> None:
    assert _file(_created({"Tags": {"ICCProfile": "abc"}}))["ICCProfile"].value == b"abc\x00"
    assert _file(_created({"Tags": {"RedPaletteColorLookupTableData": "abcd"}}))[0x00281201].value == b"abcd"
    _error({"Tags": {"RedPaletteColorLookupTableData": "abc"}}, 500, -1)   # odd OW
    _error({"Tags": {"StudyDescription": "data:application/octet-stream;base64,@@@"}}, 400, 15)


# --- Errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"Tags": []}, {"Tags": "x"}, {"Tags": {}, "InterpretBinaryTags": "true"}, {"Tags": {}, "PrivateCreator": 1},
    {"Tags": {}, "Force": "true"}, {"Tags": {}, "Force": 1}, [1], b"{", b""])
def test_bad_requests(body) -> None:
    _error(body, 400, 8)


@pytest.mark.parametrize(("tags", "status", "code", "details"), [
    ({"StudyDescription": 12}, 400, 5, "Bad Parameter type for tag 0008,1030"),
    ({"StudyDescription": True}, 400, 5, "Bad Parameter type for tag 0008,1030"),
    ({"StudyDescription": {"a": 1}}, 400, 5, "Bad Parameter type for tag 0008,1030"),
    ({"PatientName": [{"PatientID": "x"}]}, 400, 5, "Bad Parameter type for tag 0010,0010"),
    ({"ReferencedStudySequence": ["x"]}, 400, 5, None),
    ({"0009,1010": [{"0009,1001": "x"}]}, 400, 5, "Bad Parameter type for tag 0009,1010"),
    ({"Rows": "abc"}, 400, 15, 'While creating a DICOM instance, tag (0028,0010) has out-of-range value: "abc"'),
    ({"Rows": None}, 400, 15, 'While creating a DICOM instance, tag (0028,0010) has out-of-range value: ""'),
    ({"ReferencedStudySequence": "abc"}, 400, 15,
     'While creating a DICOM instance, tag (0008,1110) has out-of-range value: "abc"'),
    ({"PixelData": "x"}, 400, 2021, None),
    ({"Foo": "X"}, 500, 27, None),
    ({"OtherPatientIDs": "x"}, 500, 27, None),          # DCMTK's name is RETIRED_OtherPatientIDs
    ({"patientname": "x"}, 500, 27, None),
    ({"FrameIncrementPointer": "Nope"}, 500, 27, None),
    ({"ReferencedStudySequence": [{"Zzz": "1"}]}, 500, 27, None),
    # tags are injected in the sorted order of their names: AccessionNumber fails first
    ({"Zzz": "x", "AccessionNumber": 12}, 400, 5, "Bad Parameter type for tag 0008,0050"),
    ({"SOPInstanceUID": "1.2", "AccessionNumber": 12}, 400, 5, "Bad Parameter type for tag 0008,0050"),
])
def test_tag_errors(tags, status, code, details) -> None:
    _error({"Tags": tags}, status, code, details)


def test_sop_uids_must_be_strings() -> None:
    _error({"Tags": {"SOPClassUID": ["1.2"]}, "Force": True}, 400, 5)


def test_legacy_body_without_tags() -> None:
    instance = _created({"PatientName": "V1^Name", "PatientID": "PV1"})
    tags = _simplified(instance)
    assert tags["PatientName"] == "V1^Name" and tags["PatientID"] == "PV1"
    assert "SpecificCharacterSet" not in tags and "ContentDate" not in tags
    _error({"PatientName": 12}, 400, 2019)
    _error({"0009,1001": "x"}, 500, -1, "Cannot apply this function to private tags: 0009,1001")


# --- Content ---------------------------------------------------------------------------------------------------

def test_png_content_becomes_the_pixels() -> None:
    grey = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    instance = _created({"Tags": {"PatientName": "X"}, "Content": _png(grey)})
    image = Client().get(f"/instances/{instance}/image-uint8")
    assert np.asarray(Image.open(io.BytesIO(image.content))).tolist() == grey.tolist()
    ds = _file(instance)
    assert ds["PixelData"].VR == "OW" and ds.PhotometricInterpretation == "MONOCHROME2"
    assert "SOPClassUID" not in ds and "NumberOfFrames" not in ds
    rgba = _file(_created({"Tags": {}, "Content": _png(np.full((1, 2, 4), (10, 20, 30, 40), dtype=np.uint8))}))
    assert ds.BitsAllocated == 8 and rgba.PhotometricInterpretation == "RGB" and rgba.PlanarConfiguration == 0
    assert rgba.PixelData == bytes([10, 20, 30] * 2)


def test_png_content_keeps_a_given_photometric_interpretation() -> None:
    ds = _file(_created({"Tags": {"PhotometricInterpretation": "MONOCHROME1", "Rows": "99"}, "Content": GREY}))
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.Rows == 2


def test_unsupported_png_kinds() -> None:
    palette = Image.new("RGB", (2, 1), (10, 20, 30)).convert("P")
    out = io.BytesIO()
    palette.save(out, format="PNG")
    _error({"Tags": {}, "Content": _uri("image/png", out.getvalue())}, 500, 2)
    _error({"Tags": {}, "Content": _uri("image/png", b"hello")}, 400, 15)


def test_jpeg_is_decoded_unless_encapsulated() -> None:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(out, format="JPEG")
    jpeg = out.getvalue()
    decoded = _file(_created({"Tags": {}, "Content": _uri("image/jpeg", jpeg)}))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert decoded.PixelData == bytes([128] * 64) and decoded["PixelData"].VR == "OW"
    # "Encapsulate" (Orthanc 1.12.7): the JPEG as it is, JPEG baseline transfer syntax
    instance = _created({"Tags": {}, "Content": _uri("image/jpeg", jpeg), "Encapsulate": True})
    raw = Client().get(f"/instances/{instance}/frames/0/raw")
    assert raw["Content-Type"] == "image/jpeg" and raw.content[:len(jpeg)] == jpeg  # + an even-length pad
    _error({"Tags": {}, "Encapsulate": "yes"}, 400, 8)


def test_pdf_becomes_an_encapsulated_document() -> None:
    pdf = b"%PDF-1.4 tiny document\n"
    instance = _created({"Tags": {}, "Content": _uri("application/pdf", pdf)})
    assert Client().get(f"/instances/{instance}/pdf").content == pdf
    tags = _simplified(instance)
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1" and tags["Modality"] == "OT"
    assert tags["ConversionType"] == "WSD" and tags["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    # a data URI in EncapsulatedDocument is embedded too, unless InterpretBinaryTags is false
    embedded = _created({"Tags": {"EncapsulatedDocument": _uri("application/pdf", pdf)}})
    assert _simplified(embedded)["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    kept = _created({"Tags": {"EncapsulatedDocument": _uri("application/pdf", pdf)}, "InterpretBinaryTags": False})
    assert "SOPClassUID" not in _simplified(kept)


def test_octet_stream_content_is_raw_pixel_data() -> None:
    ds = _file(_created({"Tags": {}, "Content": OCTET}))
    assert ds["PixelData"].VR == "OW" and ds.PixelData == b"\x01\x02\x03hello" and "Rows" not in ds


@pytest.mark.parametrize(("content", "status", "code", "details"), [
    (12, 400, 2023, None), ({}, 400, 2023, None), (None, 400, 2023, None), ("hello", 400, 15, None),
    ("data:image/png;base64,@@", 400, 15, None),
    ("data:application/pdf;base64,aGVsbG8=", 400, 15, "Not a PDF file"),
    ("data:text/plain;base64,aGVsbG8=", 500, 2, "Unsupported MIME type for the content of a new DICOM file: "
                                                "text/plain"),
    ("data:foo/bar;base64,aGVsbG8=", 400, 3, None),
])
def test_content_errors(content, status, code, details) -> None:
    _error({"Tags": {}, "Content": content}, status, code, details)


def test_content_list_creates_a_series() -> None:
    answer = _post({"Tags": {"PatientName": "Series"},
                    "Content": [GREY, {"Content": GREY, "Tags": {"ImageComments": "two"}}]}).json()
    assert answer == {"ID": answer["ID"], "Path": f"/series/{answer['ID']}", "Status": "Success"}
    series = Client().get(f"/series/{answer['ID']}").json()
    assert series["MainDicomTags"]["ImagesInAcquisition"] == "2"
    assert series["MainDicomTags"]["NumberOfTemporalPositions"] == "1"
    instances = [_simplified(i) for i in series["Instances"]]
    instances.sort(key=lambda tags: tags["InstanceNumber"])
    assert [(t["InstanceNumber"], t["ImageIndex"], t.get("ImageComments")) for t in instances] == [
        ("1", "1", None), ("2", "2", "two")]
    assert instances[0]["SOPInstanceUID"] != instances[1]["SOPInstanceUID"]
    # an empty list: one instance, without content
    assert _post({"Tags": {}, "Content": []}).json()["Path"].startswith("/instances/")


def test_content_list_errors_remove_the_series() -> None:
    _error({"Tags": {}, "Content": [GREY, {"Tags": {}}]}, 400, 2022)
    _error({"Tags": {}, "Content": [GREY, 12]}, 400, 2023)
    _error({"Tags": {}, "Content": [GREY, {"Content": GREY, "Tags": []}]}, 400, 8, "Tags field is not an array")
    assert Client().get("/series").json() == []
    # Orthanc 1.10.1 answers Unknown resource when the first item fails (it looks up a series it never made)
    _error({"Tags": {}, "Content": [12]}, 404, 17)
    _error({"Tags": {}, "Content": [{"Content": GREY, "Tags": {"SOPInstanceUID": "1.2.3"}}]}, 404, 17)


# --- Parent ----------------------------------------------------------------------------------------------------

@pytest.fixture
def parent() -> dict:
    return _post({"Tags": {
        "SpecificCharacterSet": "ISO_IR 192", "PatientName": "Jödogne^Parent", "PatientID": "PP",
        "PatientBirthDate": "19800101", "PatientSex": "M", "0010,1000": "O1", "StudyDescription": "Study D",
        "AccessionNumber": "ACC", "ReferringPhysicianName": "Ref", "StudyID": "SID", "StudyDate": "20010101",
        "StudyTime": "101010", "Modality": "MR", "SeriesDescription": "Series D", "SeriesNumber": "7",
        "BodyPartExamined": "HEAD", "SeriesDate": "20020202", "SeriesTime": "121212", "ProtocolName": "Proto",
        "SmallestPixelValueInSeries": "3", "PerformedProcedureStepDescription": "",
        "ReferencedPerformedProcedureStepSequence": [{"ReferencedSOPClassUID": "1.2"}],
        "ImageComments": "instance-level", "InstitutionName": "Inst"}}).json()


def test_parent_series_copies_the_modules_of_its_levels(parent) -> None:
    answer = _post({"Tags": {"ImageComments": "child"}, "Parent": parent["ParentSeries"]}).json()
    assert answer["ParentSeries"] == parent["ParentSeries"]
    tags = _simplified(answer["ID"])
    expected = {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Jödogne^Parent", "PatientID": "PP",
                "PatientBirthDate": "19800101", "PatientSex": "M", "OtherPatientIDs": "O1",
                "StudyDescription": "Study D", "AccessionNumber": "ACC", "ReferringPhysicianName": "Ref",
                "StudyID": "SID", "StudyDate": "20010101", "StudyTime": "101010", "Modality": "MR",
                "SeriesDescription": "Series D", "SeriesNumber": "7", "BodyPartExamined": "HEAD",
                "SeriesDate": "20020202", "SeriesTime": "121212", "ProtocolName": "Proto",
                "SmallestPixelValueInSeries": "3", "PerformedProcedureStepDescription": "",
                "ImageComments": "child"}
    assert {k: tags.get(k) for k in expected} == expected
    # not in the parent levels' modules, or a sequence: not copied
    assert "InstitutionName" not in tags and "ReferencedPerformedProcedureStepSequence" not in tags


def test_parent_study(parent) -> None:
    answer = _post({"Tags": {"SeriesDescription": "é", "SpecificCharacterSet": "ISO_IR 100"},
                    "Parent": parent["ParentStudy"]}).json()
    assert answer["ParentStudy"] == parent["ParentStudy"] and answer["ParentSeries"] != parent["ParentSeries"]
    tags = _simplified(answer["ID"])
    assert tags["SpecificCharacterSet"] == "ISO_IR 192"   # the parent's encoding wins
    assert tags["StudyDate"] == "20010101" and tags["SeriesDate"] != "20020202"
    assert tags["SeriesDescription"] == "é" and "Modality" not in tags and "SeriesNumber" not in tags
    dated = _simplified(_created({"Tags": {"SeriesDate": "19990101"}, "Parent": parent["ParentStudy"]}))
    assert dated["SeriesDate"] == "19990101"


def test_parent_patient(parent) -> None:
    answer = _post({"Tags": {}, "Parent": parent["ParentPatient"]}).json()
    assert answer["ParentPatient"] == parent["ParentPatient"] and answer["ParentStudy"] != parent["ParentStudy"]
    tags = _simplified(answer["ID"])
    assert tags["PatientName"] == "Jödogne^Parent" and tags["StudyDate"] != "20010101"
    assert "StudyDescription" not in tags


def test_parent_tags_need_force(parent) -> None:
    _error({"Tags": {"PatientName": "X"}, "Parent": parent["ParentSeries"]}, 400, 2020, "PatientName")
    _error({"Tags": {"StudyDescription": "X"}, "Parent": parent["ParentSeries"]}, 400, 2020, "StudyDescription")
    forced = _created({"Tags": {"PatientName": "X"}, "Parent": parent["ParentSeries"], "Force": True})
    assert _simplified(forced)["PatientName"] == "X"


def test_parent_errors(parent) -> None:
    for unknown in ("nope", 12, None):
        _error({"Tags": {}, "Parent": unknown}, 400, 2024)
    _error({"Tags": {}, "Parent": parent["ID"]}, 400, 2025)
    _error({"Tags": {}, "Parent": {}}, 500, -1, "An unhandled exception was generated inside the HTTP server")
    # the checks come in Orthanc's order: the character set, then the parent, then the options
    _error({"Tags": {"SpecificCharacterSet": "FOO"}, "Parent": "nope"}, 400, 3, "Unknown specific character set: FOO")
    _error({"Tags": {}, "Parent": "nope", "Force": "x"}, 400, 2024)
