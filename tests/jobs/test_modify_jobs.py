"""Modification as Orthanc 1.10.1 does it (checked live): new UIDs below the modified level, Force for
identifiers, ModifiedFrom, the source kept unless KeepSource is false, all or nothing."""

from __future__ import annotations

import io

import pydicom
import pytest
from django.test import Client

from archive.ingest import Origin, instance_store
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.JOBS_RUN_INLINE = True


def _store(k: int, series: int = 1):
    return instance_store(data=make_dicom(SOPInstanceUID=f"1.2.3.{series}.{k}", SeriesInstanceUID=f"1.2.3.{series}",
                                          InstanceNumber=str(k)), origin=Origin()).ids


def test_instance_modify_answers_a_file_with_a_new_sop_instance_uid() -> None:
    ids = _store(1)
    response = Client().post(f"/instances/{ids.instance}/modify", {"Replace": {"PatientName": "HELLO"}},
                             content_type="application/json")
    assert response["Content-Type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.PatientName == "HELLO" and ds.SOPInstanceUID != "1.2.3.1.1"
    assert ds.SeriesInstanceUID == "1.2.3.1" and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_a_private_value_of_odd_length_is_padded_to_an_even_one() -> None:
    """Orthanc writes "x" of an unknown private tag as UN "x\\0" (DCMTK pads it); pydicom wrote one byte."""
    ids = _store(1)
    for body, expected in (({"Replace": {"0009,1001": "x"}}, b"x\x00"),
                           ({"Replace": {"0011,1001": "abc"}, "PrivateCreator": "Mine"}, b"abc\x00"),
                           ({"Replace": {"0009,1001": "ab"}}, b"ab")):
        response = Client().post(f"/instances/{ids.instance}/modify", body, content_type="application/json")
        tag = next(iter(body["Replace"]))
        raw = response.content
        element = pydicom.dcmread(io.BytesIO(raw))[int(tag.replace(",", ""), 16)]
        assert element.value == expected, body


def test_a_file_meta_element_in_replace_is_left_to_the_writer() -> None:
    """Orthanc 1.10.1 answers 200; pydicom refused it in the dataset (500)."""
    ids = _store(1)
    response = Client().post(f"/instances/{ids.instance}/modify",
                             {"Replace": {"MediaStorageSOPInstanceUID": "1.2", "PatientName": "X"}},
                             content_type="application/json")
    assert response.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.PatientName == "X" and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert 0x00020003 not in ds


@pytest.mark.parametrize("tag", ["PatientID", "SOPInstanceUID", "StudyInstanceUID"])
def test_identifiers_need_force(tag: str) -> None:
    ids = _store(1)
    response = Client().post(f"/instances/{ids.instance}/modify", {"Replace": {tag: "1.2.3"}},
                             content_type="application/json")
    assert response.status_code == 400
    assert response.json()["Details"] == (f'Marking tag "{tag}" as to be replaced requires the "Force" option '
                                          "to be set to true")


def test_study_modify_makes_a_new_study_with_modified_from() -> None:
    for k in range(3):
        ids = _store(k)
    client = Client()
    answer = client.post(f"/studies/{ids.study}/modify", {"Replace": {"StudyDescription": "NEW"}},
                         content_type="application/json").json()
    assert answer["Type"] == "Study" and answer["InstancesCount"] == 3 and answer["IsAnonymization"] is False
    assert answer["PatientID"] == ids.patient and answer["ID"] != ids.study
    new_study = client.get(f"/studies/{answer['ID']}").json()
    assert new_study["MainDicomTags"]["StudyDescription"] == "NEW"
    assert new_study["MainDicomTags"]["StudyInstanceUID"] != "1.2.3.4.1"
    assert len(new_study["Series"]) == 1  # one new SeriesInstanceUID for the three instances
    assert client.get(f"/studies/{answer['ID']}/metadata/ModifiedFrom").content.decode() == ids.study
    assert client.get(f"/studies/{ids.study}").status_code == 200  # KeepSource defaults to true
    assert len(client.get("/studies").json()) == 2


def test_keep_source_false_deletes_the_original_and_asynchronous_is_a_job() -> None:
    ids = _store(1)
    client = Client()
    job_id = client.post(f"/series/{ids.series}/modify", {"Replace": {"SeriesDescription": "X"},
                                                          "KeepSource": False, "Asynchronous": True},
                         content_type="application/json").json()["ID"]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["Type"] == "ResourceModification" and job["State"] == "Success"
    assert client.get(f"/series/{ids.series}").status_code == 404
    assert client.get(job["Content"]["Path"]).json()["MainDicomTags"]["SeriesDescription"] == "X"


def test_a_failing_modification_leaves_the_archive_as_it_was() -> None:
    for k in range(2):
        ids = _store(k)
    before = sorted(Client().get("/instances").json())
    # A value the DICOM writer refuses for its VR (US out of range) fails on the first instance.
    response = Client().post(f"/studies/{ids.study}/modify", {"Replace": {"Rows": "70000"}},
                             content_type="application/json")
    assert response.status_code >= 400
    assert sorted(Client().get("/instances").json()) == before


def test_bulk_delete_skips_unknown_ids() -> None:
    a, b = _store(1, series=1), _store(1, series=2)
    client = Client()
    response = client.post("/tools/bulk-delete", {"Resources": [a.series, "nope", b.instance]},
                           content_type="application/json")
    assert response.status_code == 200 and response.content == b""
    assert client.get("/instances").json() == []
    bad = client.post("/tools/bulk-delete", {}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["Details"] == "List of strings expected in field: Resources"


def test_modified_resources_say_where_they_come_from() -> None:
    ids = _store(1)
    client = Client()
    answer = client.post(f"/studies/{ids.study}/modify", {"Replace": {"StudyDescription": "NEW"}},
                         content_type="application/json").json()
    assert client.get(f"/studies/{answer['ID']}").json()["ModifiedFrom"] == ids.study
    new_series = client.get(f"/studies/{answer['ID']}/series").json()[0]
    assert new_series["ModifiedFrom"] == ids.series
    assert "ModifiedFrom" not in client.get(f"/studies/{ids.study}").json()


def test_asynchronous_patient_modify_without_patient_id_is_a_job_that_fails() -> None:
    """Orthanc checks it in DicomModification::Apply, inside the job: pyorthanc's modify_as_job got its job
    (which fails) from Orthanc and an HTTP error from us. Synchronous: 400 on both."""
    ids = _store(1)
    client = Client()
    body = {"Replace": {"PatientName": "JOB"}}
    assert client.post(f"/patients/{ids.patient}/modify", body, content_type="application/json").status_code == 400
    submitted = client.post(f"/patients/{ids.patient}/modify", {**body, "Asynchronous": True},
                            content_type="application/json")
    assert submitted.status_code == 200
    job = client.get(f"/jobs/{submitted.json()['ID']}").json()
    assert (job["State"], job["ErrorCode"]) == ("Failure", 8)
    assert job["ErrorDetails"].startswith("When modifying a patient, her PatientID is required")
    assert client.get(f"/patients/{ids.patient}").json()["MainDicomTags"]["PatientName"] != "JOB"


def test_a_nul_in_a_job_body_is_kept_on_every_backend() -> None:
    """PostgreSQL's jsonb refuses NUL: a Replace value or UserData holding one answered 500 there; Orthanc
    runs the job. The job keeps the strings as they were sent."""
    ids = _store(1)
    client = Client()
    answer = client.post(f"/studies/{ids.study}/modify", {
        "Replace": {"StudyDescription": "a\u0000b"}, "Asynchronous": True, "UserData": {"k\u0000": "\ufffe\\0x"}},
        content_type="application/json")
    assert answer.status_code == 200, answer.content
    job = client.get(f"/jobs/{answer.json()['ID']}").json()
    assert job["State"] == "Success" and job["UserData"] == {"k\u0000": "\ufffe\\0x"}
    study = client.get(job["Content"]["Path"]).json()
    assert study["MainDicomTags"]["StudyDescription"] == "a"   # the file holds "a\0b"; DCMTK reads "a"
