"""Anonymization as Orthanc's DicomModification does it (archive.modification, archive.anonymization_profiles).

Two kinds of tests: unit tests on synthetic instances (tests.dicom_factory) for the 2023b default of Orthanc
1.12.11, and a replay of real Orthanc 1.10.1's answers to POST /instances/{id}/anonymize recorded by
scripts/record-anonymize-answers into tests/data/orthanc-anonymize-answers.json: ours anonymizes the same
sample with the same body and must give the same ``summarize`` picture.

Differences from the recording that are expected, and why (``_expected`` applies them):

- DicomVersion: 1.10.1 defaults to 2021b, 1.12.11 to 2023b; a recorded body without DicomVersion is replayed
  with "2021b".
- DeidentificationMethod (0012,0063): the version in "Orthanc {version} - PS 3.15-..." is normalised. When the
  body departs from the profile (Replace, Remove, Keep, KeepPrivateTags), 1.10.1 drops its replacement (the
  file keeps whatever it had, usually nothing) while 1.12.7+ writes "Orthanc {version}" (NEWS of 1.12.7, bug
  240); the replay expects the latter.
- The generated PatientID (a random UUID) and new UIDs compare by identity pattern (``<new:N>``: the Nth new
  value of the file), PatientName "AnonymizedN" (N from Orthanc's global sequence) as ``<anonymized>``.
- Group lengths (gggg,0000, retired): DCMTK keeps those of the source and recomputes them; pydicom never
  writes them. Dropped from Orthanc's picture.
- {"Keep": ["PatientID"], "Force": true}: 1.10.1 refuses it ("When modifying a patient, her PatientID is
  required to be modified", a check of DicomModification::Apply then); since 1.11.3 "Force" allows it (the
  check moved to ParseModifyRequest, without Force only) and the PatientID is kept (KEEP_PATIENT_FORCED).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from archive.errors import ArchiveError, BadFileFormat, BadParameterType, BadRequest, ParameterOutOfRange
from archive.levels import Level
from archive.modification import (
    ORTHANC_VERSION,
    anonymization_parse,
    instance_modify,
    modification_from_state,
    modification_parse,
    modification_state,
)
from tests.dicom_factory import make_dataset, make_dicom

ANSWERS = Path(__file__).resolve().parent.parent / "data" / "orthanc-anonymize-answers.json"

# -- the normalised picture of an anonymized file (also used by scripts/record-anonymize-answers) -------------

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ANONYMIZED = re.compile(r"^Anonymized\d+$")
_ORTHANC = re.compile(r"^Orthanc \d+\.\d+\.\d+")
_BINARY_VRS = {"OB", "OW", "UN", "OF", "OD", "OL", "OV", "OB or OW", "US or OW"}


def _strings(ds: Dataset, into: set[str]) -> set[str]:
    """Every string value of ``ds`` (recursively), each value of a multi-valued one too."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _strings(item, into)
        elif elem.VR not in _BINARY_VRS and elem.value is not None:
            values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
            into.update(str(v).strip() for v in values)
    return into


def summarize(original: bytes, result: bytes) -> dict:
    """What an anonymized ``result`` of ``original`` holds, comparable across implementations: tag -> value
    (sequences as lists of items, binary values and long ones as hashes); values that are not in the original
    and look generated (UIDs, UUIDs) become ``<new:N>`` in order of first appearance, "AnonymizedN" becomes
    ``<anonymized>``, the Orthanc version in DeidentificationMethod ``{version}``."""
    before = _strings(pydicom.dcmread(io.BytesIO(original), force=True), set())
    ds = pydicom.dcmread(io.BytesIO(result), force=True)
    numbers: dict[str, int] = {}

    def text(value: str, vr: str) -> str:
        value = value.strip()
        if value not in before and value and (vr == "UI" or _UUID.match(value)):
            return f"<new:{numbers.setdefault(value, len(numbers) + 1)}>"
        if _ANONYMIZED.match(value):
            return "<anonymized>"
        return _ORTHANC.sub("Orthanc {version}", value)

    def element(elem: pydicom.DataElement) -> Any:
        if elem.VR == "SQ":
            return [dataset(item) for item in elem.value or ()]
        if elem.VR in _BINARY_VRS or isinstance(elem.value, bytes):
            raw = elem.value or b""
            return f"bytes:{len(raw)}:{hashlib.sha256(raw).hexdigest()[:16]}"
        value = elem.value
        if value is None:
            out: Any = ""
        elif isinstance(value, (list, pydicom.multival.MultiValue)):
            out = [text(str(v), elem.VR) for v in value]
        elif isinstance(value, (int, float)) and not isinstance(value, (pydicom.valuerep.DSfloat,
                                                                        pydicom.valuerep.IS)):
            out = value
        else:
            out = text(str(value), elem.VR)
        encoded = json.dumps(out)
        return out if len(encoded) <= 96 else f"sha:{hashlib.sha256(encoded.encode()).hexdigest()[:16]}"

    def dataset(item: Dataset) -> dict:
        return {f"{int(e.tag) >> 16:04x},{int(e.tag) & 0xFFFF:04x}": element(e) for e in item}

    meta = getattr(ds, "file_meta", Dataset())
    return {"transfer_syntax": str(meta.get("TransferSyntaxUID", "")),
            "meta_matches_sop": meta.get("MediaStorageSOPInstanceUID") == ds.get("SOPInstanceUID"),
            "tags": dataset(ds)}


# -- synthetic instances, 2023b ---------------------------------------------------------------------------------

def _anonymize(data: bytes, body: dict | None = None, mod=None, **kwargs) -> Dataset:
    mod = mod or anonymization_parse(body or {}, level=Level.INSTANCE, **kwargs)
    return pydicom.dcmread(io.BytesIO(instance_modify(data, mod)))


def _ref_item(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = uid
    return item


def test_default_profile_is_2023b_and_says_so() -> None:
    ds = _anonymize(make_dicom(DateOfLastCalibration="20200101"))
    assert ds.DeidentificationMethod == f"Orthanc {ORTHANC_VERSION} - PS 3.15-2023b Table E.1-1 Basic Profile"
    assert ds.PatientIdentityRemoved == "YES"
    assert "DateOfLastCalibration" not in ds  # X in 2023b, absent from 2021b


def test_version_2021b_keeps_what_2023b_removes() -> None:
    ds = _anonymize(make_dicom(DateOfLastCalibration="20200101"), {"DicomVersion": "2021b"})
    assert ds.DateOfLastCalibration == "20200101"
    assert ds.DeidentificationMethod.endswith("PS 3.15-2021b Table E.1-1 Basic Profile")


def test_clear_remove_and_keep_values() -> None:
    ds = _anonymize(make_dicom(InstitutionName="Hospital", StudyDate="20240102"))
    assert ds.StudyDate == "" and ds.AccessionNumber == "" and "InstitutionName" not in ds
    assert "StudyDescription" not in ds and ds.Modality == "CT" and ds.Rows == 8


def test_patient_name_is_the_one_given_and_patient_id_a_shared_uuid() -> None:
    mod = anonymization_parse({}, level=Level.STUDY, patient_name=lambda: "Anonymized7")
    a, b = _anonymize(make_dicom(), mod=mod), _anonymize(make_dicom(), mod=mod)
    assert a.PatientName == b.PatientName == "Anonymized7"
    assert a.PatientID == b.PatientID and re.match(r"^[0-9a-f-]{36}$", a.PatientID)
    other = _anonymize(make_dicom(PatientID="P2"), mod=mod)
    assert other.PatientID != a.PatientID


def test_patient_name_sequence_not_used_when_the_body_sets_the_name() -> None:
    calls: list[int] = []
    mod = anonymization_parse({"Replace": {"PatientName": "Me"}}, level=Level.STUDY,
                              patient_name=lambda: calls.append(1) or "Anonymized1")
    assert _anonymize(make_dicom(), mod=mod).PatientName == "Me" and calls == []


def test_without_a_patient_name_it_is_mapped_like_an_identifier() -> None:
    ds = _anonymize(make_dicom())
    assert ds.PatientName != "Doe^John" and re.match(r"^[0-9a-f-]{36}$", str(ds.PatientName))


def test_new_uids_consistent_within_one_modification() -> None:
    mod = anonymization_parse({}, level=Level.STUDY)
    a = _anonymize(make_dicom(SeriesInstanceUID="1.2.3.4.1.1"), mod=mod)
    b = _anonymize(make_dicom(SeriesInstanceUID="1.2.3.4.1.1"), mod=mod)
    c = _anonymize(make_dicom(SeriesInstanceUID="1.2.3.4.1.2"), mod=mod)
    assert a.StudyInstanceUID == b.StudyInstanceUID == c.StudyInstanceUID != "1.2.3.4.1"
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != c.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID


def test_references_in_sequences_follow_the_instances() -> None:
    mod = anonymization_parse({}, level=Level.SERIES)
    target = make_dataset(SOPInstanceUID="1.2.3.9", FrameOfReferenceUID="1.2.3.50")
    referring = make_dataset(SOPInstanceUID="1.2.3.10", FrameOfReferenceUID="1.2.3.50",
                             ReferencedImageSequence=Sequence([_ref_item("1.2.3.9"), _ref_item("1.2.3.77")]),
                             SourceImageSequence=Sequence([_ref_item("1.2.3.9")]))
    datas = []
    for ds in (target, referring):
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        datas.append(out.getvalue())
    t, r = _anonymize(datas[0], mod=mod), _anonymize(datas[1], mod=mod)
    refs = [item.ReferencedSOPInstanceUID for item in r.ReferencedImageSequence]
    assert refs[0] == t.SOPInstanceUID and refs[1] not in ("1.2.3.77", refs[0])
    assert r.SourceImageSequence[0].ReferencedSOPInstanceUID == t.SOPInstanceUID
    assert r.FrameOfReferenceUID == t.FrameOfReferenceUID != "1.2.3.50"
    assert r.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_rtstruct_study_reference_maps_as_a_study() -> None:
    mod = anonymization_parse({}, level=Level.STUDY)
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_item.ReferencedSOPInstanceUID = "1.2.3.4.1"  # the study of make_dataset
    frame = Dataset()
    frame.FrameOfReferenceUID = "1.2.3.50"
    frame.RTReferencedStudySequence = Sequence([study_item])
    ds = _anonymize(make_dicom(ReferencedFrameOfReferenceSequence=Sequence([frame])), mod=mod)
    inner = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert inner.ReferencedSOPInstanceUID == ds.StudyInstanceUID


def test_sequences_lose_private_removed_and_cleared_attributes() -> None:
    item = Dataset()
    item.add_new(0x00090010, "LO", "ACME")
    item.add_new(0x00091001, "LO", "secret")
    item.InstitutionName = "Hospital"   # X
    item.StudyDate = "20240101"         # Z: emptied inside sequences too
    item.PatientID = "P1"               # mapped like the top-level one
    ds = _anonymize(make_dicom(ReferencedStudySequence=None, RequestedProcedureCodeSequence=Sequence([item])))
    inner = ds.RequestedProcedureCodeSequence[0]
    assert 0x00091001 not in inner and 0x00090010 not in inner and "InstitutionName" not in inner
    assert inner.StudyDate == "" and inner.PatientID == ds.PatientID


def test_private_tags_removed_or_kept() -> None:
    data = make_dicom()
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "secret")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert 0x00091001 not in _anonymize(out.getvalue())
    kept = _anonymize(out.getvalue(), {"KeepPrivateTags": True})
    assert kept[0x00091001].value == "secret"
    assert kept.DeidentificationMethod == f"Orthanc {ORTHANC_VERSION}"
    one = _anonymize(out.getvalue(), {"Keep": ["0009,1001"]})
    assert 0x00091001 in one and 0x00090010 not in one  # Orthanc keeps the element, not its creator


def test_keep_keeps_and_marks_the_method() -> None:
    ds = _anonymize(make_dicom(), {"Keep": ["StudyDescription", "SeriesDescription"]})
    assert ds.StudyDescription == "Chest" and ds.SeriesDescription == "Axial"
    assert ds.DeidentificationMethod == f"Orthanc {ORTHANC_VERSION}"


def test_replace_and_remove() -> None:
    ds = _anonymize(make_dicom(), {"Replace": {"PatientName": "X", "0010,1001": "World"}, "Remove": ["Modality"]})
    assert ds.PatientName == "X" and ds.OtherPatientNames == "World" and "Modality" not in ds
    assert ds.DeidentificationMethod == f"Orthanc {ORTHANC_VERSION}"


@pytest.mark.parametrize("body, message", [
    ({"Replace": {"PatientID": "X"}}, 'Marking tag "PatientID" as to be replaced requires the "Force" option'),
    ({"Keep": ["SOPInstanceUID"]}, 'Marking tag "SOPInstanceUID" as to be kept requires the "Force" option'),
    ({"Remove": ["StudyInstanceUID"]}, 'Marking tag "StudyInstanceUID" as to be removed requires the "Force"'),
])
def test_identifiers_need_force(body: dict, message: str) -> None:
    with pytest.raises(BadRequest) as error:
        anonymization_parse(body, level=Level.STUDY)
    assert error.value.details.startswith(message)


def test_forced_replacement_of_identifiers_is_followed_by_references() -> None:
    mod = anonymization_parse({"Replace": {"PatientID": "NEW", "StudyInstanceUID": "9.9.9"}, "Force": True},
                              level=Level.STUDY)
    item = Dataset()
    item.StudyInstanceUID = "1.2.3.4.1"
    ds = _anonymize(make_dicom(ReferencedStudySequence=None, StudiesContainingOtherReferencedInstancesSequence=
                               Sequence([item])), mod=mod)
    assert ds.PatientID == "NEW" and ds.StudyInstanceUID == "9.9.9"
    assert ds.StudiesContainingOtherReferencedInstancesSequence[0].StudyInstanceUID == "9.9.9"


def test_removing_an_identifier_even_with_force_is_refused_on_apply() -> None:
    mod = anonymization_parse({"Remove": ["SOPInstanceUID"], "Force": True}, level=Level.INSTANCE)
    with pytest.raises(BadRequest, match="forbidden to remove one of the main Dicom identifiers"):
        instance_modify(make_dicom(), mod)


@pytest.mark.parametrize("body, error, details", [
    ({"DicomVersion": "2099"}, ParameterOutOfRange, "Unknown specific version of the DICOM standard: 2099"),
    ({"DicomVersion": 2021}, BadFileFormat, None),
    ({"Force": 1}, BadFileFormat, 'Member "Force" should be a Boolean value'),
    ({"KeepPrivateTags": "yes"}, BadFileFormat, 'Member "KeepPrivateTags" should be a Boolean value'),
    ({"Remove": "Modality"}, BadRequest, None),
    ({"Replace": ["x"]}, BadRequest, None),
    ({"PrivateCreator": 3}, BadFileFormat, "String value expected in field: PrivateCreator"),
    ([], BadFileFormat, None),
])
def test_bad_bodies(body: Any, error: type[ArchiveError], details: str | None) -> None:
    with pytest.raises(error) as raised:
        anonymization_parse(body, level=Level.INSTANCE)
    assert raised.value.details == details


@pytest.mark.parametrize("version", ["2008", "2017c", "2021b", "2023b"])
def test_every_version_is_accepted(version: str) -> None:
    ds = _anonymize(make_dicom(), {"DicomVersion": version})
    assert ds.DeidentificationMethod.startswith(f"Orthanc {ORTHANC_VERSION} - PS 3.15-{version} Table E.1-1")


def test_bad_replacement_values_fail_on_apply() -> None:
    with pytest.raises(BadParameterType, match="0010,0010"):
        instance_modify(make_dicom(), anonymization_parse({"Replace": {"PatientName": 5}}, level=Level.INSTANCE))
    with pytest.raises(BadFileFormat, match=r'tag \(0028,0010\) has out-of-range value: "abc"'):
        instance_modify(make_dicom(), anonymization_parse({"Replace": {"Rows": "abc"}}, level=Level.INSTANCE))


def test_paths_into_sequences() -> None:
    seq = Sequence([_ref_item("1.2.3.9"), _ref_item("1.2.3.8")])
    ds = _anonymize(make_dicom(ReferencedImageSequence=seq),
                    {"Keep": ["ReferencedImageSequence[1].ReferencedSOPInstanceUID"],
                     "Replace": {"ReferencedImageSequence[*].ReferencedSOPClassUID": "1.2.3"}})
    assert ds.ReferencedImageSequence[1].ReferencedSOPInstanceUID == "1.2.3.8"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID != "1.2.3.9"
    assert [i.ReferencedSOPClassUID for i in ds.ReferencedImageSequence] == ["1.2.3", "1.2.3"]


def test_pixels_and_transfer_syntax_untouched() -> None:
    data = make_dicom()
    before, after = pydicom.dcmread(io.BytesIO(data)), _anonymize(data)
    assert after.PixelData == before.PixelData
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID


def test_state_round_trip_keeps_generated_identifiers() -> None:
    body = {"Keep": ["SeriesDescription"], "Replace": {"ReferencedImageSequence[0].PatientName": "x"}}
    mod = anonymization_parse(body, level=Level.STUDY, patient_name="Anonymized3")
    first = _anonymize(make_dicom(), mod=mod)
    state = json.loads(json.dumps(modification_state(mod)))
    again = _anonymize(make_dicom(), mod=modification_from_state(state))
    assert (again.PatientID, again.StudyInstanceUID, again.SeriesInstanceUID, again.PatientName) == \
        (first.PatientID, first.StudyInstanceUID, first.SeriesInstanceUID, first.PatientName)
    assert modification_state(modification_from_state(state)) == state


def test_seeded_modifications_agree_without_state() -> None:
    a = anonymization_parse({}, level=Level.STUDY)
    b = anonymization_parse({}, level=Level.STUDY)
    a.uid_seed = b.uid_seed = "job-1"
    x, y = _anonymize(make_dicom(), mod=a), _anonymize(make_dicom(), mod=b)
    assert (x.PatientID, x.StudyInstanceUID) == (y.PatientID, y.StudyInstanceUID)


def test_modify_still_keeps_the_patient() -> None:
    mod = modification_parse({"Replace": {"InstitutionName": "X"}}, level=Level.STUDY)
    ds = pydicom.dcmread(io.BytesIO(instance_modify(make_dicom(), mod)))
    assert ds.PatientID == "P1" and ds.PatientName == "Doe^John" and ds.StudyInstanceUID != "1.2.3.4.1"
    assert "DeidentificationMethod" not in ds


def test_version_is_the_one_system_reports() -> None:
    from explorer.api.system import VERSION

    assert VERSION == ORTHANC_VERSION


# -- replay of real Orthanc 1.10.1 ----------------------------------------------------------------------------

def _answers() -> dict:
    from tests.samples import samples_dir

    samples_dir()  # skips (or fails under REQUIRE_SAMPLES=1) without the samples
    if not ANSWERS.is_file():
        pytest.skip(f"{ANSWERS.name} not recorded (scripts/record-anonymize-answers)")
    return json.loads(ANSWERS.read_text())


def _replay_cases() -> list:
    if not ANSWERS.is_file():
        return []
    recorded = json.loads(ANSWERS.read_text())
    return [pytest.param(sample, key, id=f"{sample}|{key}")
            for sample, entry in sorted(recorded["samples"].items()) for key in sorted(entry.get("answers", {}))]


_PROFILE_FIELDS = ("Replace", "Remove", "Keep", "KeepPrivateTags")
KEEP_PATIENT_FORCED = "error-keep-patient-id-forced"


def _without_group_lengths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_group_lengths(v) for k, v in value.items() if not k.endswith(",0000")}
    if isinstance(value, list):
        return [_without_group_lengths(v) for v in value]
    return value


def _expected(recorded: dict, body: dict) -> dict:
    """Orthanc 1.10.1's picture, moved to what 1.12.11 answers (see the module docstring)."""
    expected = _without_group_lengths(recorded)
    departs = any(body.get(name) for name in _PROFILE_FIELDS)
    replaced = any(_tag_key(name) == 0x00120063 for name in body.get("Replace", {}))
    if departs and not replaced and "tags" in expected:
        expected["tags"]["0012,0063"] = "Orthanc {version}"
    return expected


def _tag_key(name: str) -> int | None:
    from archive.dicom.tags import parse_tag

    try:
        return int(parse_tag(name))
    except ValueError:
        return None


def _ours(original: bytes, body: Any) -> dict:
    replay = dict(body) if isinstance(body, dict) else body
    if isinstance(replay, dict):
        replay.setdefault("DicomVersion", "2021b")  # 1.10.1's default
    mod = anonymization_parse(replay, level=Level.INSTANCE, patient_name="Anonymized1")
    return summarize(original, instance_modify(original, mod))


@pytest.mark.parametrize("sample, key", _replay_cases())
def test_same_answer_as_orthanc(sample: str, key: str) -> None:
    recorded = _answers()
    from tests.samples import sample_path

    original = sample_path(sample).read_bytes()
    body = recorded["bodies"][key]
    answer = recorded["samples"][sample]["answers"][key]
    if key == KEEP_PATIENT_FORCED:  # refused by 1.10.1, allowed since 1.11.3 (module docstring)
        assert answer["error"]["Details"].startswith("When modifying a patient, her PatientID is required")
        source = pydicom.dcmread(io.BytesIO(original), force=True)
        assert _ours(original, body)["tags"].get("0010,0020") == source.get("PatientID")
        return
    if "error" in answer:
        with pytest.raises(ArchiveError) as raised:
            _ours(original, body)
        assert (raised.value.http_status, raised.value.orthanc_error.code) == \
            (answer["status"], answer["error"]["OrthancStatus"])
        return
    assert _ours(original, body) == _expected(answer, body)
