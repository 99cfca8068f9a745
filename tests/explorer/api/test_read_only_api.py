"""ReadOnly (Orthanc 1.12.5): the routes that write are not registered, every other write is refused with
Orthanc's ReadOnly error, and every read still answers. The archive is filled first, then ReadOnly is set."""

from __future__ import annotations

import pytest

from archive.ingest import Origin, instance_store
from archive.models import Attachment, Change, Label, Metadata, Resource
from tests.dicom_factory import make_dicom

# transaction=True: a refused write inside the test's own transaction would mark it for rollback (Django's ORM
# does so on any error), unlike the autocommit requests of a running server
pytestmark = pytest.mark.django_db(transaction=True)
REST = Origin.rest(remote_ip="127.0.0.1")


@pytest.fixture
def ids(client, orthanc_config):
    ids = instance_store(data=make_dicom(), origin=REST).ids
    assert client.put(f"/instances/{ids.instance}/attachments/1025", b"user data").status_code == 200
    assert client.put(f"/studies/{ids.study}/labels/kept").status_code == 200
    orthanc_config(ReadOnly=True)
    return ids


def _index_rows() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Resource, Metadata, Attachment, Label, Change))


def _files(storage_dir) -> set[str]:
    return {str(p.relative_to(storage_dir)) for p in storage_dir.rglob("*") if p.is_file()}


def test_system_says_read_only(client, ids):
    assert client.get("/system").json()["ReadOnly"] is True


def test_system_says_not_read_only_by_default(client):
    assert client.get("/system").json()["ReadOnly"] is False


def _absent_with_others(client, method: str, uri: str, body: bytes = b"") -> str:
    """A method Orthanc does not register under ReadOnly on a route that has others: 405 and its Allow."""
    response = getattr(client, method)(uri, body, content_type="application/octet-stream")
    assert response.status_code == 405, (method, uri, response.content)
    return response["Allow"]


def test_the_routes_that_write_are_not_registered(client, ids, storage_dir):
    rows, files = _index_rows(), _files(storage_dir)
    att = f"/instances/{ids.instance}/attachments/1025"
    # a route that keeps other methods answers 405, with only those in Allow
    assert _absent_with_others(client, "post", "/instances", make_dicom(sop_uid="1.2.3.4.5.6.7")) == "GET"
    for uri in (f"/instances/{ids.instance}", f"/series/{ids.series}", f"/studies/{ids.study}",
                f"/patients/{ids.patient}"):
        assert _absent_with_others(client, "delete", uri) == "GET"
    assert _absent_with_others(client, "put", f"/patients/{ids.patient}/protected", b"1") == "GET"
    assert _absent_with_others(client, "put", att, b"other") == "GET"
    assert _absent_with_others(client, "delete", att) == "GET"
    assert _absent_with_others(client, "put", f"/studies/{ids.study}/labels/new") == "GET"
    assert _absent_with_others(client, "delete", f"/studies/{ids.study}/labels/kept") == "GET"
    # a route left with no method at all is unknown: 404 with Orthanc's body
    for uri in (f"/patients/{ids.patient}/reconstruct", f"/studies/{ids.study}/reconstruct",
                f"/series/{ids.series}/reconstruct", f"/instances/{ids.instance}/reconstruct",
                "/tools/reconstruct", f"{att}/compress", f"{att}/uncompress", "/tools/bulk-delete",
                "/tools/invalidate-tags"):
        response = client.post(uri, b"{}", content_type="application/json")
        assert response.status_code == 404, uri
        assert response.json()["Message"] == "Unknown resource"
    assert (_index_rows(), _files(storage_dir)) == (rows, files)


def test_tools_lists_only_what_is_registered(client, ids):
    tools = client.get("/tools").json()
    assert {"find", "lookup", "labels"} <= set(tools)
    assert not {"bulk-delete", "invalidate-tags", "reconstruct"} & set(tools)


def test_the_other_writes_are_refused_with_orthancs_read_only_error(client, ids, storage_dir):
    rows, files = _index_rows(), _files(storage_dir)
    response = client.put(f"/instances/{ids.instance}/metadata/1024", b"note", content_type="text/plain")
    assert response.status_code == 403
    body = response.json()
    assert (body["OrthancStatus"], body["Message"]) == (22, "Cannot modify a read-only data structure")
    assert "ReadOnly" in body["Details"]
    assert client.delete("/changes").status_code == 403
    assert (_index_rows(), _files(storage_dir)) == (rows, files)


def test_every_read_still_answers(client, ids):
    for uri in ("/patients", "/studies?expand", "/series?expand", "/instances?expand", f"/studies/{ids.study}",
                f"/instances/{ids.instance}/tags", f"/instances/{ids.instance}/simplified-tags",
                f"/instances/{ids.instance}/file", f"/instances/{ids.instance}/preview",
                f"/instances/{ids.instance}/metadata?expand", f"/instances/{ids.instance}/attachments/1025/data",
                f"/studies/{ids.study}/labels/kept", f"/studies/{ids.study}/statistics", "/statistics", "/changes",
                "/tools/labels", f"/patients/{ids.patient}/protected", f"/studies/{ids.study}/archive"):
        assert client.get(uri).status_code == 200, uri
    response = client.post("/tools/find", {"Level": "Study", "Query": {}}, content_type="application/json")
    assert response.status_code == 200 and response.json() == [ids.study]
    response = client.post(f"/instances/{ids.instance}/attachments/1025/verify-md5")
    assert response.status_code == 200
    # modifying one instance answers the modified file without storing it: allowed, as in Orthanc
    response = client.post(f"/instances/{ids.instance}/modify", {"Replace": {"PatientName": "X"}, "Force": True},
                           content_type="application/json")
    assert response.status_code == 200 and response.content[128:132] == b"DICM"


def test_invalidate_tags_without_read_only(client, storage_dir):
    ids = instance_store(data=make_dicom(), origin=REST).ids
    assert {"bulk-delete", "invalidate-tags", "reconstruct"} <= set(client.get("/tools").json())
    response = client.post("/tools/invalidate-tags")
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Type"].startswith("text/plain")
    # the DICOM file and the instance stay: only DICOM-as-JSON summaries go (this server makes none)
    assert client.get(f"/instances/{ids.instance}/file").status_code == 200
