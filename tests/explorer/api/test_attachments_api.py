"""/{level}/{id}/attachments routes, checked against what Orthanc 1.10.1 answered (and 1.12.11's source)."""

from __future__ import annotations

import hashlib

import pytest

from archive.ingest import Origin, instance_store
from archive.storage import compress
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")
DATA = make_dicom(SOPInstanceUID="1.2.3.4.1.1.1")


@pytest.fixture(autouse=True)
def user_types(orthanc_config):
    orthanc_config(UserContentType={"sample": 1024, "report": [1025, "application/pdf"]})


@pytest.fixture
def ids():
    return instance_store(data=DATA, origin=REST).ids


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def url(ids, rest: str = "", level: str = "instances", public_id: str | None = None) -> str:
    return f"/{level}/{public_id or ids.instance}/attachments" + (f"/{rest}" if rest else "")


def put(client, ids, data: bytes, name: str = "sample", **kwargs):
    return client.put(url(ids, name, **kwargs), data, content_type="application/octet-stream")


# Lists and facets of the dicom attachment

def test_list(client, ids):
    assert client.get(url(ids)).json() == ["dicom"]
    assert client.get(url(ids) + "?full").json() == {"dicom": 1}


def test_patient_has_no_attachments(client, ids):
    assert client.get(url(ids, level="patients", public_id=ids.patient)).json() == []


def test_list_at_the_wrong_level_is_unknown_resource(client, ids):
    response = client.get(url(ids, level="patients"))
    assert response.status_code == 404 and response.json()["OrthancStatus"] == 17


def test_operations(client, ids):
    response = client.get(url(ids, "dicom"))
    assert response.json() == ["compress", "compressed-data", "compressed-md5", "compressed-size", "data", "info",
                               "is-compressed", "md5", "size", "uncompress", "verify-md5"]
    assert response["ETag"] == f'"0-{md5(DATA)}"'


def test_info(client, ids):
    info = client.get(url(ids, "dicom/info")).json()
    assert set(info) == {"CompressedMD5", "CompressedSize", "ContentType", "UncompressedMD5", "UncompressedSize",
                         "Uuid"}
    assert (info["ContentType"], info["UncompressedSize"], info["UncompressedMD5"]) == (1, len(DATA), md5(DATA))


@pytest.mark.parametrize(("part", "expected"), [
    ("size", str(len(DATA))), ("compressed-size", str(len(DATA))), ("md5", md5(DATA)),
    ("compressed-md5", md5(DATA)), ("is-compressed", "0")])
def test_text_facets(client, ids, part, expected):
    response = client.get(url(ids, f"dicom/{part}"))
    assert response.content.decode() == expected
    assert response["Content-Type"] == "text/plain"
    assert response["ETag"] == f'"0-{md5(DATA)}"'


def test_numeric_name_works_as_the_name(client, ids):
    assert client.get(url(ids, "1/size")).content.decode() == str(len(DATA))


def test_facets_find_the_resource_whatever_the_level_as_orthanc(client, ids):
    assert client.get(url(ids, "dicom/size", level="patients")).status_code == 200


def test_data_is_the_file_as_file_route(client, ids):
    response = client.get(url(ids, "dicom/data"))
    assert response.content == DATA == client.get(f"/instances/{ids.instance}/file").content
    assert response["Content-Type"] == "application/dicom"
    uuid = client.get(url(ids, "dicom/info")).json()["Uuid"]
    assert response["Content-Disposition"] == f'filename="{uuid}.dcm"'


def test_the_file_route_names_the_download_as_orthanc(client, ids):
    """Orthanc 1.10.1 (seen live) names /file after its attachment; ?filename (1.12.7) names it otherwise,
    through the same header guard as the attachments."""
    uuid = client.get(url(ids, "dicom/info")).json()["Uuid"]
    assert client.get(f"/instances/{ids.instance}/file")["Content-Disposition"] == f'filename="{uuid}.dcm"'
    named = client.get(f"/instances/{ids.instance}/file?filename=a%0d%0aSet-Cookie:%20x%22.dcm")
    assert named["Content-Disposition"] == 'filename="aSet-Cookie: x.dcm"'


def test_data_filename_argument(client, ids):
    response = client.get(url(ids, "dicom/data") + "?filename=scan.dcm")
    assert response["Content-Disposition"] == 'filename="scan.dcm"'


def test_data_filename_cannot_inject_headers(client, ids):
    response = client.get(url(ids, "dicom/data") + "?filename=a%0d%0aSet-Cookie:%20x%22.dcm")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'filename="aSet-Cookie: x.dcm"'


def test_data_range(client, ids):
    response = client.get(url(ids, "dicom/data"), headers={"Range": "bytes=128-131"})
    assert response.status_code == 206
    assert response.content == DATA[128:132] == b"DICM"
    assert response["Content-Range"] == f"bytes 128-131/{len(DATA)}"


def test_data_range_past_the_end_is_416(client, ids):
    response = client.get(url(ids, "dicom/data"), headers={"Range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416
    assert response.json()["OrthancStatus"] == 41


def test_if_none_match_gives_304(client, ids):
    etag = client.get(url(ids, "dicom/info"))["ETag"]
    for part in ("", "/data", "/size", "/info"):
        response = client.get(url(ids, "dicom" + part), headers={"If-None-Match": etag})
        assert response.status_code == 304 and response.content == b""


def test_unknown_name_is_inexistent_item(client, ids):
    response = client.get(url(ids, "nope/data"))
    assert response.status_code == 404 and response.json()["OrthancStatus"] == 7


def test_absent_attachment_is_unknown_resource(client, ids):
    response = client.get(url(ids, "sample/data"))
    assert response.status_code == 404 and response.json()["OrthancStatus"] == 17


def test_verify_md5(client, ids):
    response = client.post(url(ids, "dicom/verify-md5"))
    assert response.status_code == 200 and response.json() == {}


def test_verify_md5_of_absent_attachment_is_a_bare_400(client, ids):
    response = client.post(url(ids, "1500/verify-md5"))
    assert response.status_code == 400 and response.content == b""


def test_verify_md5_on_unknown_resource(client, ids):
    assert client.post(url(ids, "sample/verify-md5", public_id="nope")).json()["OrthancStatus"] == 17


# User attachments

def test_put_then_read(client, ids):
    response = put(client, ids, b"abc")
    assert response.status_code == 200 and response.json() == {}
    assert response["ETag"] == f'"0-{md5(b"abc")}"'
    data = client.get(url(ids, "sample/data"))
    assert data.content == b"abc" and data["Content-Type"] == "application/octet-stream"
    assert client.get(url(ids) + "?full").json() == {"dicom": 1, "sample": 1024}
    assert put(client, ids, b"abcd")["ETag"] == f'"1-{md5(b"abcd")}"'


def test_user_mime_type(client, ids):
    put(client, ids, b"%PDF", name="report")
    response = client.get(url(ids, "report/data"))
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'filename="{client.get(url(ids, "report/info")).json()["Uuid"]}"'


def test_put_logs_updated_attachment(client, ids):
    put(client, ids, b"abc", level="studies", public_id=ids.study)
    change = client.get("/changes").json()["Changes"][-1]
    assert (change["ChangeType"], change["ID"], change["ResourceType"]) == ("UpdatedAttachment", ids.study, "Study")


@pytest.mark.parametrize("name", ["dicom", "1", "99999"])
def test_put_system_attachment_is_a_bare_403(client, ids, name):
    response = put(client, ids, b"abc", name=name)
    assert response.status_code == 403 and response.content == b""


def test_put_unknown_name_is_inexistent_item(client, ids):
    assert put(client, ids, b"abc", name="nope").json()["OrthancStatus"] == 7


def test_put_with_stale_if_match_is_409(client, ids):
    put(client, ids, b"abc")
    response = client.put(url(ids, "sample"), b"x", content_type="application/octet-stream",
                          headers={"If-Match": "0-00"})
    assert response.status_code == 409


def test_delete_user_attachment(client, ids):
    put(client, ids, b"abc")
    response = client.delete(url(ids, "sample"))
    assert response.status_code == 200 and response.content == b""
    assert client.get(url(ids)).json() == ["dicom"]


def test_delete_dicom_is_a_bare_403(client, ids):
    response = client.delete(url(ids, "dicom"))
    assert response.status_code == 403 and response.content == b""


def test_delete_absent_attachment_is_unknown_resource(client, ids):
    response = client.delete(url(ids, "1500"))
    assert response.status_code == 404 and response.json()["OrthancStatus"] == 17


def test_compress_and_uncompress(client, ids):
    assert client.post(url(ids, "dicom/compress")).json() == {}
    assert client.get(url(ids, "dicom/is-compressed")).content == b"1"
    assert client.get(url(ids, "dicom/compressed-data")).content == compress(DATA)
    assert client.get(url(ids, "dicom/data")).content == DATA
    assert client.get(f"/instances/{ids.instance}/file").content == DATA
    assert client.get(url(ids, "dicom"))["ETag"] == f'"1-{md5(DATA)}"'
    assert client.post(url(ids, "dicom/verify-md5")).status_code == 200
    assert client.post(url(ids, "dicom/uncompress")).json() == {}
    assert client.get(url(ids, "dicom/compressed-data")).content == DATA


def test_compressed_data_range(client, ids):
    client.post(url(ids, "dicom/compress"))
    packed = compress(DATA)
    response = client.get(url(ids, "dicom/compressed-data"), headers={"Range": "bytes=0-7"})
    assert response.status_code == 206 and response.content == packed[:8]
    assert response["Content-Range"] == f"bytes 0-7/{len(packed)}"


def test_compress_absent_attachment_is_unknown_resource(client, ids):
    response = client.post(url(ids, "sample/compress"))
    assert response.status_code == 404 and response.json()["OrthancStatus"] == 17


def test_attachment_lists_match_real_orthanc(client):
    """Every attachments list real Orthanc 1.10.1 answered for the golden files (tools/capture-golden.py)."""
    from tests.samples import GOLDEN_FILES, golden, sample_path

    recorded = {k: v for k, v in golden().items() if k.startswith("GET /") and k.endswith("/attachments")}
    for rel in GOLDEN_FILES:
        instance_store(data=sample_path(rel).read_bytes(), origin=REST)
    assert recorded
    for key, answer in recorded.items():
        response = client.get(key.removeprefix("GET "))
        assert (response.status_code, response.json()) == (answer["status"], answer["json"]), key


def test_without_stored_md5_the_md5_routes_answer_bare(client, ids, orthanc_config):
    orthanc_config(UserContentType={"sample": 1024}, StoreMD5ForAttachments=False)
    put(client, ids, b"abc")
    assert "md5" not in client.get(url(ids, "sample")).json()
    response = client.get(url(ids, "sample/md5"))
    assert (response.status_code, response.content) == (404, b"")
    response = client.post(url(ids, "sample/verify-md5"))
    assert (response.status_code, response.content) == (400, b"")
