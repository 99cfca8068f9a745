from __future__ import annotations

import pytest

from archive.changes import change_last_index
from archive.models import ExportedResource
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


def upload(client, **tags) -> dict:
    response = client.generic("POST", "/instances", make_dicom(**tags), content_type="application/dicom")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def base() -> int:
    """The sequence number before the test (0 on SQLite; PostgreSQL sequences survive rolled back tests)."""
    return change_last_index()


@pytest.fixture
def seqs(base):
    """Sequence numbers of a page, counted from the start of the test."""
    return lambda body: [c["Seq"] - base for c in body["Changes"]]


@pytest.fixture
def three_patients(client, base) -> list[dict]:
    """Three instances of three patients: changes 1-12, four per instance."""
    return [upload(client, PatientID=f"P{i}", StudyInstanceUID=f"1.{i}", SeriesInstanceUID=f"1.{i}.1")
            for i in range(3)]


def test_empty_change_log_as_orthanc(client, base):
    response = client.get("/changes")
    assert response.status_code == 200
    assert response.json() == {"Changes": [], "Done": True, "Last": base}


def test_an_upload_logs_instance_then_new_ancestors(client, base):
    ids = upload(client, PatientID="P")
    body = client.get("/changes").json()
    assert [(c["ChangeType"], c["ResourceType"], c["ID"]) for c in body["Changes"]] == [
        ("NewInstance", "Instance", ids["ID"]), ("NewSeries", "Series", ids["ParentSeries"]),
        ("NewStudy", "Study", ids["ParentStudy"]), ("NewPatient", "Patient", ids["ParentPatient"])]
    assert body["Changes"][0]["Path"] == f"/instances/{ids['ID']}"
    assert (body["Done"], body["First"], body["Last"]) == (True, base + 1, base + 4)


def test_since_and_limit_page_as_the_recorded_orthanc(client, three_patients, base, seqs):
    # Real Orthanc 1.10.1, GET /changes?since=3&limit=2: Seq 4 and 5, Done false, Last 5 (1.12.5 adds First).
    body = client.get(f"/changes?since={base + 3}&limit=2").json()
    assert seqs(body) == [4, 5]
    assert (body["Done"], body["Last"], body["First"]) == (False, base + 5, base + 4)


def test_default_limit_is_100(client, three_patients):
    assert len(client.get("/changes").json()["Changes"]) == 12


def test_malformed_arguments_fall_back_to_the_defaults(client, three_patients, seqs):
    # Orthanc reads since/limit/to with lexical_cast and silently uses all the defaults on a failure.
    body = client.get("/changes?since=5&limit=abc").json()
    assert seqs(body) == list(range(1, 13)) and body["Done"] is True


def test_limit_zero_is_an_empty_unfinished_page(client, three_patients, base):
    assert client.get("/changes?limit=0").json() == {"Changes": [], "Done": False, "Last": base + 12}


def test_since_beyond_the_end(client, three_patients, base):
    assert client.get(f"/changes?since={base + 50}").json() == {"Changes": [], "Done": True, "Last": base + 12}


def test_last_alone(client, three_patients, base, seqs):
    body = client.get("/changes?last&limit=3").json()
    assert seqs(body) == [12]
    assert (body["Done"], body["Last"]) == (True, base + 12)


def test_type_filter(client, three_patients):
    body = client.get("/changes?type=NewStudy;NewPatient").json()
    assert [c["ChangeType"] for c in body["Changes"]] == ["NewStudy", "NewPatient"] * 3


def test_to_walks_backwards(client, three_patients, base, seqs):
    # Orthanc Explorer 2's "most recent studies": /changes?to=<last>&limit=N&type=NewStudy;StableStudy
    body = client.get(f"/changes?to={base + 12}&limit=2&type=NewStudy").json()
    assert seqs(body) == [7, 11] and body["Done"] is False
    body = client.get(f"/changes?to={body['First'] - 1}&limit=2&type=NewStudy").json()
    assert seqs(body) == [3] and body["Done"] is True


def test_unknown_change_type_is_a_bad_request(client):
    response = client.get("/changes?type=NewStudy;Nonsense")
    assert response.status_code == 400
    body = response.json()
    assert body["OrthancStatus"] == 3 and body["Details"] == "Invalid value for a change: Nonsense"


def test_delete_changes(client, three_patients, base, seqs):
    response = client.delete("/changes")
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Type"] == "text/plain"
    assert client.get("/changes").json() == {"Changes": [], "Done": True, "Last": base + 12}
    upload(client, PatientID="P9")
    assert seqs(client.get("/changes").json()) == [13, 14, 15, 16]


def test_changes_take_get_and_delete_only(client):
    response = client.post("/changes")
    assert response.status_code == 405
    assert {"GET", "DELETE"} <= {m.strip() for m in response["Allow"].split(",")}


def test_empty_exports_as_recorded(client):
    # Real Orthanc 1.10.1, GET /exports on a fresh server.
    assert client.get("/exports").json() == {"Done": True, "Exports": [], "Last": 0}


def test_exports_page_and_clear(client):
    s = [ExportedResource.objects.create(level=1, public_id=f"s{i}", remote_modality="PACS", patient_id="P",
                                         study_instance_uid=f"1.{i}", date="20260101T000000").seq
         for i in range(3)]
    body = client.get(f"/exports?since={s[0]}&limit=1").json()
    assert body["Exports"] == [{"Date": "20260101T000000", "ID": "s1", "Path": "/studies/s1", "PatientID": "P",
                                "RemoteModality": "PACS", "ResourceType": "Study", "Seq": s[1],
                                "StudyInstanceUID": "1.1"}]
    assert (body["Done"], body["Last"]) == (False, s[1])
    assert client.get("/exports?last").json()["Exports"][0]["ID"] == "s2"
    response = client.delete("/exports")
    assert response.status_code == 200 and response.content == b""
    assert client.get("/exports").json()["Exports"] == []


def test_a_deleted_resource_leaves_the_change_log_as_in_orthanc(client, base, seqs):
    """Orthanc's Changes rows reference their resource ON DELETE CASCADE (seen with Orthanc 1.10.1: DELETE, and
    an instance overwritten, leave only the changes of what remains)."""
    kept = upload(client, PatientID="P", StudyInstanceUID="1.1", SeriesInstanceUID="1.1.1", SOPInstanceUID="1.1.1.1")
    gone = upload(client, PatientID="P", StudyInstanceUID="1.1", SeriesInstanceUID="1.1.1", SOPInstanceUID="1.1.1.2")
    other = upload(client, PatientID="Q", StudyInstanceUID="2.1", SeriesInstanceUID="2.1.1")
    client.put(f"/instances/{gone['ID']}/metadata/1024", "x", content_type="text/plain")
    assert client.delete(f"/instances/{gone['ID']}").status_code == 200
    body = client.get("/changes").json()
    assert [(c["ChangeType"], c["ID"]) for c in body["Changes"]] == [
        ("NewInstance", kept["ID"]), ("NewSeries", kept["ParentSeries"]), ("NewStudy", kept["ParentStudy"]),
        ("NewPatient", kept["ParentPatient"]), ("NewInstance", other["ID"]), ("NewSeries", other["ParentSeries"]),
        ("NewStudy", other["ParentStudy"]), ("NewPatient", other["ParentPatient"])]
    assert seqs(body) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert client.delete(f"/patients/{other['ParentPatient']}").status_code == 200   # the ancestors too
    assert [c["ID"] for c in client.get("/changes").json()["Changes"]] == [
        kept["ID"], kept["ParentSeries"], kept["ParentStudy"], kept["ParentPatient"]]
    assert client.delete(f"/instances/{kept['ID']}").status_code == 200      # its emptied ancestors go too
    assert client.get("/changes").json()["Changes"] == []


def test_an_overwritten_instance_leaves_its_old_changes_behind_as_in_orthanc(client, orthanc_config, seqs):
    """Seen with Orthanc 1.10.1 (OverwriteInstances true, the same instance sent three times): 4 changes, those
    of the last copy; the earlier copies' went with them."""
    orthanc_config(OverwriteInstances=True)
    for _ in range(3):
        ids = upload(client, PatientID="P", SOPInstanceUID="1.2.3.4.5")
    body = client.get("/changes").json()
    assert [(c["ChangeType"], c["ID"]) for c in body["Changes"]] == [
        ("NewInstance", ids["ID"]), ("NewSeries", ids["ParentSeries"]), ("NewStudy", ids["ParentStudy"]),
        ("NewPatient", ids["ParentPatient"])]
    assert seqs(body) == [9, 10, 11, 12]
