"""Merge, split, bulk modification and bulk content as Orthanc 1.10.1 answers them (checked live on the same
synthetic files: two studies of patients P1 and P2)."""

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


@pytest.fixture
def archive() -> dict:
    """Study A (P1): series 1 and 2 of two instances each; study B (P2): one series of two instances."""
    ids = {}
    for s in (1, 2):
        for k in (1, 2):
            ids[f"A{s}{k}"] = instance_store(data=make_dicom(
                SOPInstanceUID=f"1.2.3.4.1.{s}.{k}", SeriesInstanceUID=f"1.2.3.4.1.{s}", SeriesNumber=str(s),
                InstanceNumber=str(k)), origin=Origin()).ids
    for k in (1, 2):
        ids[f"B1{k}"] = instance_store(data=make_dicom(
            SOPInstanceUID=f"1.2.3.5.1.1.{k}", SeriesInstanceUID="1.2.3.5.1.1", StudyInstanceUID="1.2.3.5.1",
            PatientID="P2", PatientName="Roe^Jane", StudyDescription="Head", AccessionNumber=None,
            InstanceNumber=str(k)), origin=Origin()).ids
    return ids


def post(path: str, body: dict):
    return Client().post(path, body, content_type="application/json")


def tags(instance_id: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(Client().get(f"/instances/{instance_id}/file").content))


def test_split_series_into_a_new_study(archive) -> None:
    a = archive["A21"]
    answer = post(f"/studies/{a.study}/split", {"Series": [a.series], "KeepSource": True,
                                                 "Replace": {"StudyDescription": "SPLIT", "PatientName": "Z"},
                                                 "Remove": ["AccessionNumber"]}).json()
    assert sorted(answer) == ["Description", "FailedInstancesCount", "InstancesCount", "TargetStudy",
                              "TargetStudyUID"]
    assert answer["InstancesCount"] == 2 and answer["Description"] == "REST API"
    study = Client().get(f"/studies/{answer['TargetStudy']}").json()
    assert study["MainDicomTags"]["StudyInstanceUID"] == answer["TargetStudyUID"]
    assert study["MainDicomTags"]["StudyDescription"] == "SPLIT" and "AccessionNumber" not in study["MainDicomTags"]
    assert study["ParentPatient"] == a.patient  # PatientID kept
    assert len(study["Series"]) == 1
    instances = Client().get(f"/studies/{answer['TargetStudy']}/instances").json()
    uids = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
    assert len(uids) == 2 and not uids & {"1.2.3.4.1.2.1", "1.2.3.4.1.2.2"}  # new SOP instance UIDs
    assert Client().get(f"/series/{a.series}").status_code == 200  # KeepSource
    # no ModifiedFrom, as in Orthanc
    assert "ModifiedFrom" not in Client().get(f"/studies/{answer['TargetStudy']}/metadata").json()


def test_split_instances_moves_them_by_default(archive) -> None:
    a = archive["A22"]
    job_id = post(f"/studies/{a.study}/split", {"Instances": [a.instance], "Asynchronous": True}).json()["ID"]
    job = Client().get(f"/jobs/{job_id}").json()
    assert job["Type"] == "SplitStudy" and job["State"] == "Success" and job["Content"]["InstancesCount"] == 1
    assert Client().get(f"/instances/{a.instance}").status_code == 404  # KeepSource defaults to false
    assert Client().get(f"/instances/{archive['A21'].instance}").status_code == 200


@pytest.mark.parametrize(("body", "status", "details"), [
    ({}, 400, 'Both the "Series" and the "Instances" fields are missing'),
    ({"Series": []}, 400, 'Both the "Series" and the "Instances" fields are missing'),
    ({"Series": "x"}, 400, "List of strings expected in field: Series"),
    ({"Series": ["SER"], "Remove": ["SeriesNumber"]}, 400,
     "Cannot modify the following tag while splitting a study (not in the patient/study modules): "
     "SeriesNumber (0020,0011)"),
    ({"Series": ["SER"], "Replace": {"SeriesDescription": "x"}}, 400,
     "Cannot modify the following tag while splitting a study (not in the patient/study modules): "
     "SeriesDescription (0008,103e)"),
    ({"Series": ["SER"], "KeepSource": "yes"}, 400, "Boolean value expected in field: KeepSource"),
    ({"Series": ["OTHER"]}, 404, "This series does not belong to the study to be split: OTHER"),
])
def test_split_errors(archive, body, status, details) -> None:
    a, b = archive["A11"], archive["B11"]
    if body.get("Series") and isinstance(body["Series"], list):
        body = {**body, "Series": [{"SER": a.series, "OTHER": b.series}[s] for s in body["Series"]]}
        details = details.replace("OTHER", b.series)
    response = post(f"/studies/{a.study}/split", body)
    assert response.status_code == status
    assert response.json()["Details"] == details
    assert len(Client().get("/studies").json()) == 2


def test_split_of_an_unknown_study() -> None:
    # Orthanc looks the study up before it reads the fields (a real Orthanc 1.10.1 audit)
    for body in ({"Series": ["x"]}, {}, {"Series": "x"}):
        response = post("/studies/nope/split", body)
        assert response.status_code == 404 and response.json()["Details"] == "Cannot split unknown study nope"
    response = post("/studies/nope/merge", {})
    assert response.status_code == 404 and response.json()["Details"] == "Cannot merge into an unknown study: nope"


@pytest.mark.parametrize("route", ["split", "merge"])
@pytest.mark.parametrize("body", [b"", b"{bad", b"[]"])
def test_split_and_merge_bodies_that_are_no_json_object(archive, route, body) -> None:
    response = Client().post(f"/studies/{archive['A11'].study}/{route}", body, content_type="application/json")
    assert (response.status_code, response.json()["OrthancStatus"]) == (400, 15)


@pytest.mark.parametrize("body", [b"", b"notjson{", b"[]", b'"x"'])
@pytest.mark.parametrize("route", ["studies/{study}/modify", "studies/{study}/anonymize",
                                   "instances/{instance}/modify", "instances/{instance}/anonymize",
                                   "tools/bulk-modify", "tools/bulk-anonymize"])
def test_modification_bodies_that_are_no_json_object(archive, route, body) -> None:
    """Orthanc's ParseModifyRequest: BadFileFormat, no details; an empty body is no {} (it modified the study)."""
    a = archive["A11"]
    response = Client().post("/" + route.format(study=a.study, instance=a.instance), body,
                             content_type="application/json")
    assert response.status_code == 400
    assert response.json()["OrthancStatus"] == 15 and "Details" not in response.json()
    assert len(Client().get("/studies").json()) == 2   # nothing made


def test_bulk_delete_body_that_is_no_json_object(archive) -> None:
    for body in (b"", b"{bad", b"[]"):
        response = Client().post("/tools/bulk-delete", body, content_type="application/json")
        assert (response.status_code, response.json()["OrthancStatus"]) == (400, 8)
    assert len(Client().get("/studies").json()) == 2


def test_merge_copies_the_target_patient_and_study_modules(archive) -> None:
    a, b = archive["A11"], archive["B11"]
    answer = post(f"/studies/{a.study}/merge", {"Resources": [b.series], "KeepSource": True}).json()
    assert answer == {"Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": 2,
                      "TargetStudy": a.study}
    series = Client().get(f"/studies/{a.study}/series").json()
    assert len(series) == 3
    merged = [s for s in series if s["MainDicomTags"]["SeriesInstanceUID"] not in ("1.2.3.4.1.1", "1.2.3.4.1.2")]
    ds = tags(merged[0]["Instances"][0])
    assert (ds.PatientID, str(ds.PatientName), ds.StudyDescription, ds.AccessionNumber) == ("P1", "Doe^John",
                                                                                           "Chest", "A1")
    assert ds.StudyInstanceUID == "1.2.3.4.1" and not ds.SOPInstanceUID.startswith("1.2.3.5")
    assert Client().get(f"/studies/{b.study}").status_code == 200  # KeepSource


def test_merge_without_keep_source_empties_the_source(archive) -> None:
    a, b = archive["A11"], archive["B11"]
    job_id = post(f"/studies/{a.study}/merge", {"Resources": [b.study], "Asynchronous": True}).json()["ID"]
    job = Client().get(f"/jobs/{job_id}").json()
    assert job["Type"] == "MergeStudy" and job["Content"]["TargetStudy"] == a.study
    assert Client().get(f"/studies/{b.study}").status_code == 404
    assert Client().get(f"/patients/{b.patient}").status_code == 404
    assert len(Client().get(f"/studies/{a.study}/instances").json()) == 6


@pytest.mark.parametrize(("resource", "details"), [
    ("nope", "Cannot find this resource: nope"),
    ("STUDY_A", "Cannot merge a study into the same study: STUDY_A"),
    ("SERIES_A", "Cannot merge series SERIES_A into its parent study STUDY_A"),
    ("PATIENT_A", "This resource is neither a study, nor a series, nor an instance: PATIENT_A is a Patient"),
])
def test_merge_errors(archive, resource, details) -> None:
    a = archive["A11"]
    names = {"STUDY_A": a.study, "SERIES_A": a.series, "PATIENT_A": a.patient}
    for name, value in names.items():
        resource, details = resource.replace(name, value), details.replace(name, value)
    response = post(f"/studies/{a.study}/merge", {"Resources": [resource]})
    assert response.status_code == 404 and response.json()["Details"] == details
    assert post(f"/studies/{a.study}/merge", {}).json()["Details"] == "List of strings expected in field: Resources"
    assert post("/studies/nope/merge", {"Resources": [a.series]}).json()["Details"] == (
        "Cannot merge into an unknown study: nope")


def test_bulk_modify_lists_every_resource_touched(archive) -> None:
    a = archive["A11"]
    answer = post("/tools/bulk-modify", {"Resources": [a.instance], "Replace": {"InstanceNumber": "42"}}).json()
    assert answer["IsAnonymization"] is False and answer["InstancesCount"] == 1
    kinds = [(r["Type"], r["ID"]) for r in answer["Resources"]]
    # instance level: a new SOPInstanceUID only, the same series, study and patient
    assert [k for k, _ in kinds] == ["Instance", "Series", "Study", "Patient"]
    assert kinds[1:] == [("Series", a.series), ("Study", a.study), ("Patient", a.patient)]
    assert all(r["Path"] == f"/{ {'Instance': 'instances', 'Series': 'series', 'Study': 'studies', 'Patient': 'patients'}[r['Type']]}/{r['ID']}"
               for r in answer["Resources"])
    assert tags(kinds[0][1]).InstanceNumber == 42
    assert Client().get(f"/instances/{kinds[0][1]}/metadata/ModifiedFrom").content.decode() == a.instance


def test_bulk_modify_at_series_level_expands_studies(archive) -> None:
    a, b = archive["A11"], archive["B11"]
    # "series" in any case, as Orthanc's StringToResourceType ("Studies", "study" too; it was refused)
    answer = post("/tools/bulk-modify", {"Resources": [a.series, b.study], "Level": "SERIES",
                                         "Replace": {"SeriesDescription": "BULK"}}).json()
    types = [r["Type"] for r in answer["Resources"]]
    assert types.count("Instance") == 4 and types.count("Series") == 2 and types.count("Study") == 2
    ids = [r["ID"] for r in answer["Resources"] if r["Type"] == "Instance"]
    assert ids == sorted(ids)  # each level sorted, as Orthanc's std::set
    studies = {r["ID"] for r in answer["Resources"] if r["Type"] == "Study"}
    assert studies == {a.study, b.study}  # series level: the studies stay


def test_bulk_modify_errors(archive) -> None:
    response = post("/tools/bulk-modify", {"Resources": ["nope"], "Replace": {"SeriesDescription": "x"}})
    assert response.status_code == 404 and "Details" not in response.json()
    response = post("/tools/bulk-modify", {"Replace": {"SeriesDescription": "x"}})
    assert response.status_code == 400
    assert response.json()["Details"] == "List of strings expected in field: Resources"


def test_bulk_content(archive) -> None:
    a = archive["A11"]
    answer = post("/tools/bulk-content", {"Resources": [a.study, a.instance, "nope"]}).json()
    assert [r["Type"] for r in answer] == ["Study", "Instance"]
    assert answer[0]["Metadata"]["LastUpdate"] == answer[0]["LastUpdate"]
    assert answer[1]["Metadata"]["IndexInSeries"] == "1"
    assert "FileSize" in answer[1] and answer[1]["MainDicomTags"]["SOPInstanceUID"] == "1.2.3.4.1.1.1"
    series = post("/tools/bulk-content", {"Resources": [a.study], "Level": "Series", "Metadata": False,
                                          "Short": True}).json()
    assert len(series) == 2 and all("Metadata" not in s for s in series)
    assert all("0020,000e" in s["MainDicomTags"] for s in series)
    patient = post("/tools/bulk-content", {"Resources": [a.instance], "Level": "Patient"}).json()
    assert [p["ID"] for p in patient] == [a.patient]
    assert post("/tools/bulk-content", {"Resources": ["nope"]}).json() == []


def test_reconstruct_rewrites_main_tags_from_the_files(archive, settings) -> None:
    from archive.models import Resource

    a = archive["A11"]
    study = Resource.objects.get(public_id=a.study)
    study.main_tags = {**study.main_tags, "StudyDescription": "STALE"}
    study.save()
    assert post("/tools/find", {"Level": "Study", "Query": {"StudyDescription": "Chest"}}).json() == [a.study]
    answer = post(f"/studies/{a.study}/reconstruct", {})
    assert (answer.status_code, answer.content, answer["Content-Type"]) == (200, b"", "text/plain")   # as Orthanc
    assert Client().get(f"/studies/{a.study}").json()["MainDicomTags"]["StudyDescription"] == "Chest"
    assert post("/tools/reconstruct", {"ReconstructFiles": True}).status_code == 200
    assert Client().get(f"/instances/{a.instance}/file").status_code == 200
    assert post(f"/series/{a.series}/reconstruct", {"LimitToThisLevelMainDicomTags": True}).status_code == 200
    assert post("/studies/nope/reconstruct", {}).status_code == 404
    # Orthanc reads the options of a JSON object and ignores any other body
    for body in (b"{bad", b"[]", b""):
        assert Client().post(f"/studies/{a.study}/reconstruct", body, content_type="application/json"
                             ).status_code == 200


def test_instance_anonymize_answers_a_file_named_by_the_anonymization_counter(archive) -> None:
    a = archive["A11"]
    first = pydicom.dcmread(io.BytesIO(post(f"/instances/{a.instance}/anonymize", {}).content))
    second = pydicom.dcmread(io.BytesIO(post(f"/instances/{a.instance}/anonymize", {}).content))
    assert (str(first.PatientName), str(second.PatientName)) == ("Anonymized1", "Anonymized2")  # as Orthanc
    assert first.PatientID != "P1" and first.PatientIdentityRemoved == "YES"
    assert first.StudyInstanceUID != "1.2.3.4.1" and "StudyDescription" not in first
    named = pydicom.dcmread(io.BytesIO(post(f"/instances/{a.instance}/anonymize",
                                            {"Replace": {"PatientName": "Me"}}).content))
    assert str(named.PatientName) == "Me"
    third = pydicom.dcmread(io.BytesIO(post(f"/instances/{a.instance}/anonymize", {}).content))
    assert str(third.PatientName) == "Anonymized3"  # a name given in the body does not use a number
    assert len(Client().get("/instances").json()) == 6  # nothing stored


def test_study_anonymize_is_a_job_with_anonymized_from(archive) -> None:
    a = archive["A11"]
    answer = post(f"/studies/{a.study}/anonymize", {"Keep": ["StudyDescription"]}).json()
    assert answer["IsAnonymization"] is True and answer["Type"] == "Study" and answer["InstancesCount"] == 4
    study = Client().get(f"/studies/{answer['ID']}").json()
    assert study["MainDicomTags"]["StudyDescription"] == "Chest"
    assert study["PatientMainDicomTags"]["PatientName"] == "Anonymized1"
    assert study["ParentPatient"] == answer["PatientID"] != a.patient
    assert len(study["Series"]) == 2
    client = Client()
    assert client.get(f"/studies/{answer['ID']}/metadata/AnonymizedFrom").content.decode() == a.study
    assert client.get(f"/patients/{answer['PatientID']}/metadata/AnonymizedFrom").content.decode() == a.patient
    instance = client.get(f"/studies/{answer['ID']}/instances").json()[0]["ID"]
    assert client.get(f"/instances/{instance}/metadata/AnonymizedFrom").status_code == 200
    assert client.get(f"/studies/{a.study}").status_code == 200  # the source stays


def test_bulk_anonymize_and_its_errors(archive) -> None:
    a, b = archive["A11"], archive["B11"]
    answer = post("/tools/bulk-anonymize", {"Resources": [a.series, b.instance]}).json()
    types = [r["Type"] for r in answer["Resources"]]
    assert answer["IsAnonymization"] is True and types.count("Instance") == 3 and types.count("Patient") == 2
    assert post("/tools/bulk-anonymize", {"Resources": ["nope"]}).status_code == 404
    bad = post(f"/studies/{a.study}/anonymize", {"DicomVersion": "1999"})
    assert bad.status_code == 400
    assert bad.json()["Details"] == "Unknown specific version of the DICOM standard: 1999"
    forced = post(f"/studies/{a.study}/anonymize", {"Replace": {"StudyInstanceUID": "1.2"}})
    assert forced.status_code == 400 and "Force" in forced.json()["Details"]


def test_modify_with_transcode_and_keep_labels(archive) -> None:
    a = archive["A11"]
    client = Client()
    assert client.put(f"/studies/{a.study}/labels/urgent").status_code == 200
    assert client.put(f"/series/{a.series}/labels/axial").status_code == 200
    answer = post(f"/studies/{a.study}/modify", {"Replace": {"StudyDescription": "T"}, "KeepLabels": True,
                                                 "Transcode": "1.2.840.10008.1.2.4.70"}).json()
    assert answer["Transcode"] == "1.2.840.10008.1.2.4.70"
    assert client.get(f"/studies/{answer['ID']}/labels").json() == ["urgent"]
    new_series = client.get(f"/studies/{answer['ID']}/series").json()
    assert sorted(label for s in new_series for label in s["Labels"]) == ["axial"]
    instance = client.get(f"/studies/{answer['ID']}/instances").json()[0]["ID"]
    assert client.get(f"/instances/{instance}/metadata/TransferSyntax").content.decode() == "1.2.840.10008.1.2.4.70"
    without = post(f"/studies/{a.study}/modify", {"Replace": {"StudyDescription": "U"}}).json()
    assert client.get(f"/studies/{without['ID']}/labels").json() == []  # KeepLabels defaults to false
    bad = post(f"/studies/{a.study}/modify", {"Transcode": "1.2.3"})
    assert bad.status_code == 400
