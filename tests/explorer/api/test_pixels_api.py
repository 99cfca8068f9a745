"""The pixel routes over HTTP: Orthanc's arguments, content negotiation, error shapes, caching."""

from __future__ import annotations

import gzip
import io
from urllib.parse import urljoin

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from archive import pixels
from archive.ingest import Origin, instance_store
from explorer.api.pixels import accepted_image_type
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    pixels.caches_clear()
    yield
    pixels.caches_clear()


def store(**overrides) -> str:
    return instance_store(data=make_dicom(**overrides), origin=Origin()).ids.instance


def test_preview_is_a_png_of_the_stretched_frame() -> None:
    instance = store()
    response = Client().get(f"/instances/{instance}/preview")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (8, 8) and image.min() == 0 and image.max() == 255


def test_image_uint16_is_the_stored_values() -> None:
    instance = store()
    response = Client().get(f"/instances/{instance}/frames/0/image-uint16")
    assert np.asarray(Image.open(io.BytesIO(response.content))).tolist() == np.arange(64).reshape(8, 8).tolist()


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "image/png"), ("*/*", "image/png"), ("image/*", "image/png"), ("image/jpeg", "image/jpeg"),
    ("image/x-portable-arbitrarymap", "image/x-portable-arbitrarymap"), ("image/jpeg, image/png", "image/jpeg"),
    ("image/png;q=0.5, image/jpeg", "image/jpeg"), ("image/jpeg;q=0.1, */*", "image/jpeg"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", "image/png"),
    ("application/json", None), ("image/webp", None),
])
def test_content_negotiation(accept: str | None, expected: str | None) -> None:
    assert accepted_image_type(accept) == expected


def test_no_acceptable_type_is_a_bare_404_and_jpeg_of_uint16_too() -> None:
    instance = store()
    client = Client()
    response = client.get(f"/instances/{instance}/preview", HTTP_ACCEPT="application/json")
    assert response.status_code == 404 and response.content == b""
    response = client.get(f"/instances/{instance}/image-uint16", HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 404 and response.content == b""
    response = client.get(f"/instances/{instance}/preview?quality=50", HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 200 and response.content.startswith(b"\xff\xd8")


@pytest.mark.parametrize(("query", "status"), [
    ("quality=0", 415), ("quality=abc", 415), ("width=abc", 404), ("width=-3", 404), ("window-center=x", 404),
    ("smooth=maybe", 415), ("smooth", 415), ("width=4&smooth=1", 200),
])
def test_bad_arguments_answer_as_orthanc(query: str, status: int) -> None:
    response = Client().get(f"/instances/{store()}/rendered?{query}")
    assert response.status_code == status
    if status != 200:
        assert response.content == b""


def test_undecodable_is_415_or_the_unsupported_picture() -> None:
    instance = store(PixelData=None)  # an image without its pixels
    client = Client()
    assert client.get(f"/instances/{instance}/preview").status_code == 415
    response = client.get(f"/instances/{instance}/preview?returnUnsupportedImage")
    assert response.status_code == 301 and response["Location"] == "../../app/images/unsupported.png"
    # the redirection leads to a picture (a client following it got our 404: orthanc-api-client raised)
    picture = client.get(urljoin(f"/instances/{instance}/preview", response["Location"]))
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")
    response = client.get(f"/instances/{instance}/matlab")
    assert response.status_code == 400 and response.json()["OrthancError"] == "Bad file format"


def test_unknown_instance_and_frames() -> None:
    client = Client()
    assert client.get("/instances/nope/preview").status_code == 404
    instance = store()
    response = client.get(f"/instances/{instance}/frames/1/preview")
    assert response.status_code == 404 and response.content == b""
    assert client.get(f"/instances/{instance}/frames/x/preview").status_code == 404
    assert client.get(f"/instances/{instance}/frames/0").json()[5] == "preview"


def test_answers_carry_an_etag_and_revalidate_with_304() -> None:
    instance = store()
    client = Client()
    first = client.get(f"/instances/{instance}/rendered?width=4")
    assert first["ETag"] and "max-age" in first["Cache-Control"]
    again = client.get(f"/instances/{instance}/rendered?width=4", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/instances/{instance}/rendered?width=2")
    assert other["ETag"] != first["ETag"]


def test_raw_and_raw_gz() -> None:
    instance = store()
    client = Client()
    raw = client.get(f"/instances/{instance}/frames/0/raw")
    assert raw["Content-Type"] == "application/octet-stream"
    assert raw.content == np.arange(64, dtype="<u2").tobytes()
    packed = client.get(f"/instances/{instance}/frames/0/raw.gz")
    assert packed["Content-Type"] == "application/gzip" and gzip.decompress(packed.content) == raw.content


def test_raw_frame_of_a_file_without_pixels() -> None:
    """The frame number is checked against NumberOfFrames (1 when absent) before the pixel data, as Orthanc
    1.10.1 answers DummyCT.dcm (frame 1: out of range) and Issue22-NoPixelData.dcm (24 frames: bad file)."""
    client = Client()
    one = store(PixelData=None)
    many = store(PixelData=None, NumberOfFrames="24", SOPInstanceUID="1.2.3.24")
    for instance, frame, status, details in ((one, 0, 15, "Cannot access a raw frame"), (one, 1, 3, None),
                                             (many, 1, 15, "Cannot access a raw frame"), (many, 24, 3, None)):
        answer = client.get(f"/instances/{instance}/frames/{frame}/raw")
        assert answer.status_code == 400 and answer.json()["OrthancStatus"] == status, (frame, answer.content)
        assert answer.json().get("Details") == details


def test_numpy_of_a_frame_that_is_no_number() -> None:
    first = store()
    for frame in ("abc", "-1"):
        answer = Client().get(f"/instances/{first}/frames/{frame}/numpy")
        assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 3, answer.content
        assert answer.json()["Details"] == 'Expected an unsigned integer for the "frame" argument'


def test_numpy_of_an_instance_and_a_series() -> None:
    first = store(SOPInstanceUID="1.2.3.100", InstanceNumber="2", ImagePositionPatient=[0, 0, 2])
    store(SOPInstanceUID="1.2.3.101", InstanceNumber="1", ImagePositionPatient=[0, 0, 1])
    client = Client()
    array = np.load(io.BytesIO(client.get(f"/instances/{first}/numpy?rescale=0").getvalue()))
    assert array.shape == (1, 8, 8, 1) and array.dtype == np.uint16
    series = client.get(f"/instances/{first}/series").json()["ID"]
    volume = np.load(io.BytesIO(client.get(f"/series/{series}/numpy").getvalue()))
    assert volume.shape == (2, 8, 8, 1) and volume.dtype == np.float32
    compressed = client.get(f"/series/{series}/numpy?compress")
    assert np.load(io.BytesIO(compressed.content))["arr_0"].shape == (2, 8, 8, 1)
    assert client.get(f"/series/{series}/numpy?compress=maybe").status_code == 400


def test_pdf_is_the_encapsulated_document() -> None:
    document = b"%PDF-1.4 tiny\n"
    instance = store(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", MIMETypeOfEncapsulatedDocument="application/pdf",
                     EncapsulatedDocument=document, PixelData=None)
    response = Client().get(f"/instances/{instance}/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content == document
    assert Client().get(f"/instances/{store()}/pdf").status_code == 404


def test_file_transcoded_on_request() -> None:
    instance = store()
    client = Client()
    response = client.get(f"/instances/{instance}/file?transcode=1.2.840.10008.1.2.5")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert ds.pixel_array.tolist() == np.arange(64).reshape(8, 8).tolist()
    assert client.get(f"/instances/{instance}/file?transcode=1.2.840.10008.1.2.4.90&lossy-quality=0").status_code == 400


def test_file_as_dicomweb_json() -> None:
    instance = store()
    response = Client().get(f"/instances/{instance}/file", HTTP_ACCEPT="application/dicom+json")
    assert response["Content-Type"] == "application/dicom+json"
    body = response.json()
    assert body["00100020"] == {"vr": "LO", "Value": ["P1"]}
    assert "InlineBinary" in body["7FE00010"]
    listed = Client().get(f"/instances/{instance}/file", HTTP_ACCEPT="application/dicom+json, */*")
    assert listed["Content-Type"] == "application/dicom"


def test_a_repeated_image_costs_one_query_and_series_numpy_a_constant_number() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    instance = store()
    client = Client()
    client.get(f"/instances/{instance}/rendered")
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/instances/{instance}/rendered").status_code == 200
    assert len(queries) == 1

    def series_numpy_queries(count: int) -> int:
        for k in range(count):
            store(SeriesInstanceUID=f"1.2.3.9.{count}", SOPInstanceUID=f"1.2.3.9.{count}.{k}",
                  ImagePositionPatient=[0, 0, k])
        series_id = client.get("/series").json()[-1]
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/series/{series_id}/numpy").status_code == 200
        return len(captured)

    assert series_numpy_queries(2) == series_numpy_queries(5)


def test_file_as_dicomweb_xml() -> None:
    from xml.etree import ElementTree

    instance = store(PatientName="Doe^John")
    response = Client().get(f"/instances/{instance}/file", HTTP_ACCEPT="application/dicom+xml")
    assert response["Content-Type"] == "application/dicom+xml"
    root = ElementTree.fromstring(response.content)
    ns = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    name = root.find("d:DicomAttribute[@keyword='PatientName']/d:PersonName/d:Alphabetic", ns)
    assert name.find("d:FamilyName", ns).text == "Doe" and name.find("d:GivenName", ns).text == "John"
    assert root.find("d:DicomAttribute[@tag='00100020']/d:Value", ns).text == "P1"
    assert root.find("d:DicomAttribute[@tag='7FE00010']/d:InlineBinary", ns) is not None
