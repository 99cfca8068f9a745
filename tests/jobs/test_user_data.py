"""UserData (Orthanc 1.12.9): any JSON value given to a job-creating route travels with the job and is shown
by GET /jobs/{id} beside its Content; a job created without it has no such field."""

from __future__ import annotations

import pytest
from django.test import Client

from archive.ingest import Origin, instance_store
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    settings.JOBS_RUN_INLINE = True


def _study(k: int = 1):
    ids = None
    for i in range(2):
        ids = instance_store(data=make_dicom(PatientID=f"UD{k}", StudyInstanceUID=f"1.2.3.8.{k}",
                                             SeriesInstanceUID=f"1.2.3.8.{k}.{i}", SOPInstanceUID=f"1.2.3.8.{k}.{i}.1"),
                             origin=Origin()).ids
    return ids


def _job(client: Client, uri: str, body: dict) -> dict:
    answer = client.post(uri, {**body, "Asynchronous": True}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    return client.get(answer.json()["Path"]).json()


@pytest.mark.parametrize("user_data", [{"b": [1, 2], "a": "x"}, "text", 42, [1, {"k": None}]])
def test_user_data_of_every_kind_of_job(user_data) -> None:
    client = Client()
    ids = _study()
    series = client.get(f"/studies/{ids.study}").json()["Series"]
    jobs = [
        _job(client, f"/studies/{ids.study}/modify", {"Replace": {"StudyDescription": "X"}, "UserData": user_data}),
        _job(client, f"/studies/{ids.study}/anonymize", {"UserData": user_data}),
        _job(client, f"/studies/{ids.study}/archive", {"UserData": user_data}),
        _job(client, f"/studies/{ids.study}/media", {"UserData": user_data}),
        _job(client, "/tools/create-archive", {"Resources": [ids.study], "UserData": user_data}),
        _job(client, f"/studies/{ids.study}/split", {"Series": [series[0]], "UserData": user_data}),
        _job(client, "/tools/bulk-modify", {"Resources": [ids.study], "Level": "Study",
                                            "Replace": {"StudyDescription": "Y"}, "UserData": user_data}),
    ]
    for job in jobs:
        assert job["State"] == "Success", job
        assert job["UserData"] == user_data and "UserData" not in job["Content"], job["Type"]
    listed = {j["ID"]: j for j in client.get("/jobs?expand").json()}
    assert all(listed[j["ID"]]["UserData"] == user_data for j in jobs)


def test_a_job_without_user_data_has_no_such_field() -> None:
    client = Client()
    ids = _study(2)
    job = _job(client, f"/studies/{ids.study}/archive", {})
    assert job["State"] == "Success" and "UserData" not in job
