"""Orthanc's Python clients from PyPI, driving a real server process over HTTP."""

from __future__ import annotations

import pytest
from orthanc_api_client import OrthancApiClient
from pyorthanc import Orthanc, Patient

from tests.dicom_factory import make_dicom
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("clients"),
                     AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"}) as s:
        yield s


def test_pyorthanc_upload_list_tags_labels_metadata_delete(server):
    client = Orthanc(server.url, username="alice", password="secret")
    answer = client.post_instances(make_dicom(PatientID="PYO", PatientName="Py^Orthanc",
                                              StudyInstanceUID="7.1", SOPInstanceUID="7.1.1.1"))
    instance_id = answer["ID"]
    assert answer["ParentPatient"] in client.get_patients()
    patient = Patient(answer["ParentPatient"], client)
    assert patient.patient_id == "PYO"
    assert patient.name == "Py^Orthanc"
    tags = client.get_instances_id_simplified_tags(instance_id)
    assert tags["PatientID"] == "PYO"
    client.put_studies_id_labels_label(answer["ParentStudy"], "urgent")
    assert client.get_studies_id_labels(answer["ParentStudy"]) == ["urgent"]
    client.put_instances_id_metadata_name(instance_id, "1024", data=b"hello")
    assert client.get_instances_id_metadata_name(instance_id, "1024") == "hello"
    client.delete_patients_id(answer["ParentPatient"])
    assert answer["ParentPatient"] not in client.get_patients()


def test_orthanc_api_client_upload_list_tags_labels_metadata_delete(server):
    client = OrthancApiClient(server.url, user="alice", pwd="secret")
    assert client.is_alive()
    ids = client.upload(make_dicom(PatientID="OAC", StudyInstanceUID="8.1", SOPInstanceUID="8.1.1.1"))
    instance_id = ids[0]
    assert instance_id in client.instances.get_all_ids()
    study_id = client.instances.get_parent_study_id(instance_id)
    assert client.studies.get_json(study_id)["PatientMainDicomTags"]["PatientID"] == "OAC"
    client.studies.add_label(study_id, "reviewed")
    assert client.studies.get_labels(study_id) == ["reviewed"]
    client.instances.set_string_metadata(instance_id, "1025", "value")
    assert client.instances.get_string_metadata(instance_id, "1025") == "value"
    client.studies.delete(study_id)
    assert not client.studies.exists(study_id)


def test_wrong_password_is_401_with_challenge(server):
    import requests

    response = requests.get(server.url + "/patients", auth=("alice", "wrong"), timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
