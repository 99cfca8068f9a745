"""The checks Orthanc 1.11.3+ makes before a modification job starts (archive/modification_checks.py): a 400
at once, before any job, and nothing modified."""

from __future__ import annotations

import pytest
from django.test import Client

from archive.ingest import Origin, instance_store
from archive.models import Resource
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
KEEP_ALL = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.JOBS_RUN_INLINE = True


def _study(patient_id: str, study_uid: str, **tags):
    return instance_store(data=make_dicom(PatientID=patient_id, StudyInstanceUID=study_uid,
                                          SeriesInstanceUID=f"{study_uid}.1", SOPInstanceUID=f"{study_uid}.1.1",
                                          **tags), origin=Origin()).ids


def _modify(path: str, body: dict):
    return Client().post(path, body, content_type="application/json")


def _refused(response, details: str) -> None:
    assert response.status_code == 400, response.content
    assert response.json()["OrthancError"] == "Bad request"
    assert response.json()["Details"] == details


def test_keeping_the_uids_in_place_needs_keep_source_and_overwrite(orthanc_config) -> None:
    ids = _study("P1", "1.2.1")
    before = Resource.objects.count()
    body = {"Replace": {"StudyDescription": "X"}, "Keep": KEEP_ALL, "Force": True, "KeepSource": False}
    _refused(_modify(f"/studies/{ids.study}/modify", body),
             "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must set KeepSource to "
             "true to avoid deleting the modified files at the end of the process")
    _refused(_modify(f"/patients/{ids.patient}/modify", {**body, "KeepSource": True}),
             "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must have the "
             "'OverwriteInstances' Orthanc configuration set to true in order to replace the modified resources")
    assert Resource.objects.count() == before
    orthanc_config(OverwriteInstances=True)
    answer = _modify(f"/studies/{ids.study}/modify", {**body, "KeepSource": True})
    assert answer.status_code == 200 and answer.json()["ID"] == ids.study     # modified in place
    assert Client().get(f"/studies/{ids.study}").json()["MainDicomTags"]["StudyDescription"] == "X"


def test_keeping_the_uids_at_series_level_or_with_a_new_patient_id_is_not_checked() -> None:
    ids = _study("P1", "1.2.1")
    body = {"Replace": {"SeriesDescription": "X"}, "Keep": KEEP_ALL, "Force": True, "KeepSource": False}
    assert _modify(f"/series/{ids.series}/modify", body).status_code == 200
    body = {"Replace": {"PatientID": "P9"}, "Keep": KEEP_ALL, "Force": True, "KeepSource": False}
    assert _modify(f"/studies/{_study('P2', '1.2.2').study}/modify", body).status_code == 200


def test_a_study_joins_a_patient_with_other_studies_only_with_all_its_tags() -> None:
    _study("P1", "1.2.1", PatientName="DOE^JOHN", PatientSex="M", PatientBirthDate="19700101")
    moved = _study("P2", "1.2.2", PatientName="DOE^J", PatientSex="M", PatientBirthDate="19700101")
    only_id = {"Replace": {"PatientID": "P1"}, "Force": True}
    _refused(_modify(f"/studies/{moved.study}/modify", only_id),
             "Trying to change patient tags in a study.  The Patient already exists and has other studies.  All the "
             "'Replace' tags should match the existing patient main dicom tags and you should specify all Patient "
             "MainDicomTags in your query.  Try using /patients/../modify instead to modify the patient. Failing "
             "tag: 0010,0010")
    wrong_name = {"Replace": {"PatientID": "P1", "PatientName": "DOE^J", "PatientSex": "M",
                              "PatientBirthDate": "19700101"}, "Force": True}
    assert _modify(f"/studies/{moved.study}/modify", wrong_name).json()["Details"].endswith("Failing tag: 0010,0010")
    unknown_tag = {"Replace": {"PatientID": "P1", "PatientName": "DOE^JOHN", "PatientSex": "M",
                               "PatientBirthDate": "19700101", "OtherPatientIDs": "X"}, "Force": True}
    _refused(_modify(f"/studies/{moved.study}/modify", unknown_tag),
             "Trying to change patient tags in a study.  The Patient already exists and has other studies.  You are "
             "trying to replace a tag that is not defined yet in this patient. Try using /patients/../modify instead "
             "to modify the patient. Failing tag: 0010,1000")
    matching = {"Replace": {"PatientID": "P1", "PatientName": "DOE^JOHN", "PatientSex": "M",
                            "PatientBirthDate": "19700101"}, "Force": True}
    answer = _modify(f"/studies/{moved.study}/modify", matching)
    assert answer.status_code == 200
    assert Client().get(f"/studies/{answer.json()['ID']}").json()["PatientMainDicomTags"]["PatientID"] == "P1"


def test_patient_tags_of_the_patients_only_study_or_of_a_new_patient_may_change() -> None:
    only = _study("P1", "1.2.1", PatientName="A")
    assert _modify(f"/studies/{only.study}/modify", {"Replace": {"PatientName": "B"}}).status_code == 200
    # now P1 has two studies (the modified copy was made beside the source): its tags are shared
    _refused(_modify(f"/studies/{only.study}/modify", {"Replace": {"PatientName": "C"}}),
             "Trying to change patient tags in a study.  The Patient already exists and has other studies.  All the "
             "'Replace' tags should match the existing patient main dicom tags and you should specify all Patient "
             "MainDicomTags in your query.  Try using /patients/../modify instead to modify the patient. Failing "
             "tag: 0010,0010")
    to_new = {"Replace": {"PatientID": "NEW", "PatientName": "C"}, "Force": True}
    assert _modify(f"/studies/{only.study}/modify", to_new).status_code == 200
    # study tags and patient-level modifications are not concerned
    assert _modify(f"/studies/{only.study}/modify", {"Replace": {"StudyDescription": "D"}}).status_code == 200
    assert _modify(f"/patients/{only.patient}/modify",
                   {"Replace": {"PatientID": "P7", "PatientName": "E"}, "Force": True}).status_code == 200


def test_bulk_modify_checks_each_study() -> None:
    _study("P1", "1.2.1", PatientName="A")
    second = _study("P1", "1.2.2", PatientName="A")
    body = {"Level": "Study", "Resources": [second.study], "Replace": {"PatientName": "Z"}}
    assert _modify("/tools/bulk-modify", body).json()["Details"].endswith("Failing tag: 0010,0010")


def test_anonymization_is_not_concerned() -> None:
    _study("P1", "1.2.1", PatientName="A")
    second = _study("P1", "1.2.2", PatientName="A")
    assert _modify(f"/studies/{second.study}/anonymize", {}).status_code == 200


def test_without_the_patient_level_patient_tags_are_not_checked(orthanc_config) -> None:
    orthanc_config(PatientLevelEnabled=False)
    _study("P1", "1.2.1", PatientName="A")
    second = _study("P1", "1.2.2", PatientName="A")
    assert _modify(f"/studies/{second.study}/modify", {"Replace": {"PatientName": "Z"}}).status_code == 200


def test_an_anonymization_keeping_the_uids_needs_keep_source_and_overwrite(orthanc_config) -> None:
    """Orthanc's anonymization runs the same pre-job checks at the patient level: the first one applies."""
    ids = _study("P1", "1.2.1")
    before = Resource.objects.count()
    body = {"Keep": KEEP_ALL, "Force": True, "KeepSource": False}
    _refused(_modify(f"/studies/{ids.study}/anonymize", body),
             "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must set KeepSource to "
             "true to avoid deleting the modified files at the end of the process")
    _refused(_modify("/tools/bulk-anonymize", {**body, "KeepSource": True, "Resources": [ids.study]}),
             "When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must have the "
             "'OverwriteInstances' Orthanc configuration set to true in order to replace the modified resources")
    assert Resource.objects.count() == before
    orthanc_config(OverwriteInstances=True)
    answer = _modify(f"/studies/{ids.study}/anonymize", {**body, "KeepSource": True})
    assert answer.status_code == 200, answer.content


def test_an_anonymization_of_a_study_may_replace_patient_tags() -> None:
    """The study-level patient tag check does not apply: the anonymized study goes to a new patient."""
    _study("P1", "1.2.1", PatientName="DOE^JOHN")
    other = _study("P1", "1.2.2", PatientName="DOE^JOHN")
    answer = _modify(f"/studies/{other.study}/anonymize", {"Replace": {"PatientName": "SOMEONE"}})
    assert answer.status_code == 200, answer.content
    assert Client().get(f"/studies/{answer.json()['ID']}").json()["PatientMainDicomTags"]["PatientName"] == "SOMEONE"
