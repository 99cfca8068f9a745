"""Labels (Orthanc 1.12.0), /tools/labels and /patients/{id}/protected as Orthanc answers them."""

from __future__ import annotations

import pytest

from archive.ingest import Origin, instance_store
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")
LEVELS = [("patients", "patient"), ("studies", "study"), ("series", "series"), ("instances", "instance")]


@pytest.fixture
def ids():
    return instance_store(data=make_dicom(), origin=REST).ids


@pytest.mark.parametrize(("plural", "attr"), LEVELS)
def test_add_list_test_remove_at_every_level(client, ids, plural, attr):
    base = f"/{plural}/{getattr(ids, attr)}/labels"
    assert client.get(base).json() == []
    response = client.put(f"{base}/b")
    assert response.status_code == 200 and response.content == b""
    client.put(f"{base}/a")
    assert client.get(base).json() == ["a", "b"]
    assert client.get(f"{base}/a").status_code == 200
    assert client.delete(f"{base}/a").status_code == 200
    assert client.get(base).json() == ["b"]


def test_labels_show_in_the_resource(client, ids):
    client.put(f"/studies/{ids.study}/labels/reviewed")
    assert client.get(f"/studies/{ids.study}").json()["Labels"] == ["reviewed"]


def test_absent_label_is_a_bare_404(client, ids):
    response = client.get(f"/studies/{ids.study}/labels/missing")
    assert response.status_code == 404 and response.content == b""


def test_invalid_label_is_400_with_orthancs_message(client, ids):
    response = client.put(f"/studies/{ids.study}/labels/not.valid")
    assert response.status_code == 400
    body = response.json()
    assert (body["OrthancStatus"], body["Message"]) == (3, "Parameter out of range")
    assert body["Details"].endswith("with maximum 64 characters, but got: not.valid")


def test_label_on_unknown_or_wrong_level_resource(client, ids):
    assert client.put("/studies/nope/labels/a").json()["OrthancStatus"] == 17
    assert client.get(f"/patients/{ids.study}/labels").status_code == 404


def test_tools_labels(client, ids):
    assert client.get("/tools/labels").json() == []
    client.put(f"/instances/{ids.instance}/labels/z")
    client.put(f"/patients/{ids.patient}/labels/a")
    client.put(f"/studies/{ids.study}/labels/a")
    assert client.get("/tools/labels").json() == ["a", "z"]


def test_removing_an_absent_label_is_fine(client, ids):
    assert client.delete(f"/series/{ids.series}/labels/never").status_code == 200


# Protection

def test_protection_round_trip(client, ids):
    url = f"/patients/{ids.patient}/protected"
    response = client.get(url)
    assert (response.content, response["Content-Type"]) == (b"0", "text/plain")
    for body, expected in ((b"1", b"1"), (b"false", b"0"), (b" true\n", b"1"), (b"0", b"0")):
        answer = client.put(url, body, content_type="text/plain")
        assert answer.status_code == 200 and answer.content == b""
        assert client.get(url).content == expected


@pytest.mark.parametrize("body", [b"TRUE", b"yes", b"", b"2"])
def test_protection_refuses_other_bodies(client, ids, body):
    response = client.put(f"/patients/{ids.patient}/protected", body, content_type="text/plain")
    assert response.status_code == 400
    assert response.json()["Details"] == "Boolean value expected"
    assert response.json()["OrthancStatus"] == 15


def test_protection_of_a_non_patient_is_parameter_out_of_range(client, ids):
    for public_id in (ids.study, "nope"):
        response = client.get(f"/patients/{public_id}/protected")
        assert response.status_code == 400
        assert response.json()["OrthancStatus"] == 3 and "Details" not in response.json()
        assert client.put(f"/patients/{public_id}/protected", b"1", content_type="text/plain").status_code == 400
