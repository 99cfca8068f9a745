"""HttpCompressionEnabled: which answers are compressed and how, beside real Orthanc 1.10.1 with the option on."""

from __future__ import annotations

import gzip
import io
import json
import urllib.request
import zipfile
import zlib

import numpy as np
import pytest

from bench.servers import orthanc_server
from explorer.api.compression import encoding_chosen
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db

# Accept-Encoding headers and what real Orthanc 1.10.1 answered to each with HttpCompressionEnabled (curl)
ORTHANC_CHOICES = {
    "gzip": "gzip", "deflate": "deflate", "gzip, deflate": "gzip", "deflate, gzip": "gzip",
    "deflate;q=0, gzip": "gzip", "gzip;q=0": None, "deflate;q=0": None, "GZIP": None, "x-gzip": None,
    " gzip ": "gzip", "gzip,deflate": "gzip", "compress, gzip": "gzip", "identity": None, "*": None, "br": None,
    "": None,
}


def decoded(response) -> bytes:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    encoding = response.get("Content-Encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)    # the zlib format: raises on raw deflate or gzip
    assert encoding is None
    return body


@pytest.fixture
def compressing(orthanc_config):
    orthanc_config(HttpCompressionEnabled=True)


@pytest.fixture
def instance(client) -> dict:
    response = client.generic("POST", "/instances", make_dicom(PatientName="Doe^Jane"),
                              content_type="application/dicom")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("header,expected", sorted(ORTHANC_CHOICES.items()))
def test_the_encoding_is_chosen_as_orthanc_chooses_it(header, expected):
    assert encoding_chosen(header) == expected


def test_nothing_is_compressed_by_default(client, instance):
    response = client.get("/system", HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert not response.has_header("Vary")
    json.loads(response.content)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_json_answers_are_compressed(client, compressing, instance, encoding):
    plain = client.get("/patients?expand")
    response = client.get("/patients?expand", HTTP_ACCEPT_ENCODING=encoding)
    assert response["Content-Encoding"] == encoding
    assert int(response["Content-Length"]) == len(response.content) < len(plain.content)
    assert "Accept-Encoding" in response["Vary"]
    assert json.loads(decoded(response)) == plain.json()


def test_a_client_that_asks_for_nothing_gets_the_plain_answer(client, compressing, instance):
    response = client.get("/patients?expand")
    assert not response.has_header("Content-Encoding")
    assert "Accept-Encoding" in response["Vary"]        # a cache in between keeps the two apart
    assert response.json()[0]["MainDicomTags"]["PatientName"] == "Doe^Jane"


def test_the_dicom_file_and_a_posted_find_are_compressed(client, compressing, instance):
    plain = client.get(f"/instances/{instance['ID']}/file").content
    response = client.get(f"/instances/{instance['ID']}/file", HTTP_ACCEPT_ENCODING="gzip")
    assert (response["Content-Encoding"], response["Content-Type"]) == ("gzip", "application/dicom")
    assert decoded(response) == plain
    found = client.post("/tools/find", {"Level": "Study", "Query": {}}, content_type="application/json",
                        HTTP_ACCEPT_ENCODING="gzip")
    assert json.loads(decoded(found)) == [instance["ParentStudy"]]


def test_a_streamed_answer_is_compressed_in_chunks(client, compressing, instance):
    plain = client.get(f"/instances/{instance['ID']}/numpy")
    response = client.get(f"/instances/{instance['ID']}/numpy", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Encoding"] == "gzip" and not response.has_header("Content-Length")
    array = np.load(io.BytesIO(decoded(response)))
    assert array.size > 0
    assert np.array_equal(array, np.load(io.BytesIO(b"".join(plain.streaming_content))))


def test_archives_errors_and_head_are_not_compressed(client, compressing, instance):
    archive = client.get(f"/studies/{instance['ParentStudy']}/archive", HTTP_ACCEPT_ENCODING="gzip")
    assert archive.status_code == 200 and not archive.has_header("Content-Encoding")
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()) == 1
    missing = client.get("/instances/nope", HTTP_ACCEPT_ENCODING="gzip")
    assert missing.status_code == 404 and not missing.has_header("Content-Encoding")
    bad = client.post("/tools/find", {"Level": "Stud", "Query": {}}, content_type="application/json",
                      HTTP_ACCEPT_ENCODING="gzip")
    assert bad.status_code == 400 and not bad.has_header("Content-Encoding")


def test_an_attachment_keeps_its_etag(client, compressing, instance):
    """Clients send the ETag back in If-Match as the revision: compressed or not, it is the same one."""
    plain = client.get(f"/instances/{instance['ID']}/attachments/dicom/compressed-data")
    response = client.get(f"/instances/{instance['ID']}/attachments/dicom/compressed-data",
                          HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert response["ETag"] == plain["ETag"]
    assert decoded(response) == plain.content


def test_the_same_answers_are_compressed_as_by_real_orthanc(client, compressing):
    """The same upload to real Orthanc with the option on: for each route and Accept-Encoding, both compress
    with the same encoding or both leave it plain, and the answers decode to the same bodies where they
    are the same resource."""
    data = make_dicom(PatientName="Doe^Jane")
    instance = client.generic("POST", "/instances", data, content_type="application/dicom").json()
    with orthanc_server(extra={"HttpCompressionEnabled": True}) as url:
        request = urllib.request.Request(url + "/instances", data=data, method="POST")
        theirs = json.loads(urllib.request.urlopen(request).read())
        assert theirs["ID"] == instance["ID"]
        routes = [f"/instances/{instance['ID']}/file", f"/instances/{instance['ID']}/simplified-tags",
                  f"/studies/{instance['ParentStudy']}/archive", "/instances/nope", "/tools/now"]
        for route in routes:
            for header in ("gzip", "deflate", "gzip;q=0", "deflate, gzip", ""):
                request = urllib.request.Request(url + route, headers={"Accept-Encoding": header})
                try:
                    with urllib.request.urlopen(request) as answer:
                        their_encoding, their_body = answer.headers.get("Content-Encoding"), answer.read()
                except urllib.error.HTTPError as error:
                    their_encoding, their_body = error.headers.get("Content-Encoding"), error.read()
                ours = client.get(route, HTTP_ACCEPT_ENCODING=header)
                assert ours.get("Content-Encoding") == their_encoding, (route, header)
                if route.endswith(("/file", "simplified-tags")):
                    if their_encoding == "gzip":
                        their_body = gzip.decompress(their_body)
                    elif their_encoding == "deflate":
                        their_body = zlib.decompress(their_body)
                    mine = decoded(ours)
                    assert (json.loads(mine) == json.loads(their_body)) if route.endswith("tags") \
                        else mine == their_body
