from __future__ import annotations

import gzip
import io
import zipfile
import zlib

import pytest

from archive.models import Resource
from archive.storage import dicom_storage
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


def post_dicom(client, data: bytes, ctype: str = "application/dicom"):
    return client.generic("POST", "/instances", data, content_type=ctype)


def test_upload_answers_like_orthanc(client):
    response = post_dicom(client, make_dicom(PatientID="5Yp0E"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ID", "ParentPatient", "ParentStudy", "ParentSeries", "Path", "Status"}
    assert body["Status"] == "Success"
    assert body["Path"] == f"/instances/{body['ID']}"


def test_upload_without_sop_instance_uid_is_inexistent_tag(client):
    response = post_dicom(client, make_dicom(SOPInstanceUID=None))
    assert response.status_code == 404
    assert response.json()["OrthancStatus"] == 21


def test_upload_twice_says_already_stored(client):
    data = make_dicom()
    post_dicom(client, data)
    assert post_dicom(client, data).json()["Status"] == "AlreadyStored"


def test_non_dicom_body_gets_orthanc_error_body(client):
    response = post_dicom(client, b"not a dicom file")
    assert response.status_code == 400
    assert response.json() == {
        "Details": "Cannot parse an invalid DICOM file (size: 16 bytes)", "HttpError": "Bad Request",
        "HttpStatus": 400, "Message": "Bad file format", "Method": "POST", "OrthancError": "Bad file format",
        "OrthancStatus": 15, "Uri": "/instances"}


def test_gzip_encoded_upload_is_inflated(client):
    """Content-Encoding: gzip, as Orthanc's peers send with Compress (Orthanc 1.10.1 compared): gzip in any
    case is inflated, other encodings are taken as they come, a body that does not inflate is a 500."""
    data = make_dicom(PatientID="GZ-1")
    for encoding in ("gzip", "GZIP"):
        response = client.generic("POST", "/instances", gzip.compress(data), content_type="application/dicom",
                                  HTTP_CONTENT_ENCODING=encoding)
        assert response.status_code == 200, response.content
    assert Resource.objects.filter(public_id=response.json()["ID"]).exists()
    response = client.generic("POST", "/instances", zlib.compress(data), HTTP_CONTENT_ENCODING="deflate")
    assert response.status_code == 400 and response.json()["OrthancStatus"] == 15    # not inflated: not DICOM
    response = client.generic("POST", "/instances", b"not gzip", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 500 and response.json()["OrthancStatus"] == -1
    assert response.json()["Details"].startswith("Cannot decompress the gzip body")
    response = client.generic("POST", "/instances", gzip.compress(data)[:-20], HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 500


def test_multipart_upload_of_several_files(client):
    files = {"a": io.BytesIO(make_dicom(SOPInstanceUID="1.1")), "b": io.BytesIO(make_dicom(SOPInstanceUID="1.2"))}
    for name, f in files.items():
        f.name = name + ".dcm"
    response = client.post("/instances", files)
    assert response.status_code == 200
    assert [a["Status"] for a in response.json()] == ["Success", "Success"]


def test_zip_upload_answers_per_dicom_entry_and_skips_others(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("one.dcm", make_dicom(SOPInstanceUID="2.1"))
        z.writestr("dir/two.dcm", make_dicom(SOPInstanceUID="2.2"))
        z.writestr("readme.txt", "hello")
    response = post_dicom(client, buffer.getvalue(), "application/zip")
    assert response.status_code == 200
    assert [a["Status"] for a in response.json()] == ["Success", "Success"]


def test_zip_with_path_traversal_names_stores_nothing_outside(client, storage_dir, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("../../evil.dcm", make_dicom(SOPInstanceUID="3.1"))
    response = post_dicom(client, buffer.getvalue(), "application/zip")
    assert response.status_code == 200
    assert not (tmp_path / "evil.dcm").exists() and not (storage_dir.parent / "evil.dcm").exists()
    # the entry is stored by content (under its UUID), never by its name
    assert len(dicom_storage().all_uuids()) == 1


def _zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _blank_image(uid: str) -> bytes:
    """A 1024x1024 16-bit image of zeros (2 MB): deflates ~1000 times, as blank slices and segmentations do."""
    return make_dicom(SOPInstanceUID=uid, Rows=1024, Columns=1024, PixelData=bytes(2 * 1024 * 1024))


def test_zip_entry_over_maximum_file_size_in_archive_is_refused_and_nothing_stored(client, orthanc_config):
    # MaximumFileSizeInArchiveMB (Orthanc 1.12.11): the largest file once inflated, against ZIP bombs
    orthanc_config(MaximumFileSizeInArchiveMB=1)
    body = _zipped({"small.dcm": make_dicom(SOPInstanceUID="4.1"), "bomb.dcm": bytes(50 * 1024 * 1024)})
    assert len(body) < 100_000
    response = post_dicom(client, body, "application/zip")
    assert response.status_code == 400
    assert response.json()["OrthancStatus"] == 15
    assert "MaximumFileSizeInArchiveMB" in response.json()["Details"]
    assert Resource.objects.count() == 0
    response = client.generic("POST", "/instances", gzip.compress(_blank_image("4.2")),
                              content_type="application/dicom", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 500 and "MaximumFileSizeInArchiveMB" in response.json()["Details"]
    assert Resource.objects.count() == 0


def test_zip_of_images_that_deflate_a_thousandfold_is_stored(client, orthanc_config):
    # Not a bomb: a compression ratio says nothing; the inflated size is what MaximumFileSizeInArchiveMB bounds
    body = _zipped({"a.dcm": _blank_image("4.3"), "b.dcm": _blank_image("4.4")})
    assert len(body) * 500 < 4 * 1024 * 1024
    response = post_dicom(client, body, "application/zip")
    assert response.status_code == 200
    assert [a["Status"] for a in response.json()] == ["Success", "Success"]
    response = client.generic("POST", "/instances", gzip.compress(_blank_image("4.5")),
                              content_type="application/dicom", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200 and response.json()["Status"] == "Success"
    orthanc_config(MaximumFileSizeInArchiveMB=0)       # 0: no limit
    response = post_dicom(client, _zipped({"c.dcm": _blank_image("4.6")}), "application/zip")
    assert [a["Status"] for a in response.json()] == ["Success"]


def test_truncated_upload_stores_nothing(client, storage_dir):
    response = post_dicom(client, make_dicom()[:-30])
    assert response.status_code == 400
    assert Resource.objects.count() == 0
    assert dicom_storage().all_uuids() == set()


def test_unknown_route_and_resource_and_method(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").json()["OrthancStatus"] == 17
    assert client.get("/instances/nope/tags").status_code == 404
    response = client.put("/instances")
    assert response.status_code == 405
    assert response["Allow"] == "GET,POST"   # as Orthanc 1.10.1 sends it


def test_body_over_maximum_request_body_size_is_refused_with_413(client, orthanc_config):
    # MaximumRequestBodySizeMB (Orthanc 1.12.11; 0: none). Through a real server in test_request_body.py.
    orthanc_config(MaximumRequestBodySizeMB=1)
    big = _blank_image("4.7")
    assert len(big) > 1024 * 1024
    response = post_dicom(client, big)
    assert response.status_code == 413
    assert (response.json()["HttpError"], response.json()["OrthancStatus"]) == ("Request Entity Too Large", 8)
    response = client.put("/tools/default-encoding", big, content_type="text/plain")
    assert response.status_code == 413
    assert Resource.objects.count() == 0
    assert post_dicom(client, make_dicom(SOPInstanceUID="4.8")).status_code == 200
    orthanc_config(MaximumRequestBodySizeMB=0)
    assert post_dicom(client, big).json()["Status"] == "Success"
