"""/tools/create-dicom as Orthanc 1.10.1 answers it (checked live): generated identifiers and dates, PNG and
JPEG content, PDF, a parent study, Orthanc's errors for a bad data URI and an unknown tag."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image

pytestmark = pytest.mark.django_db


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _post(body: dict):
    return Client().post("/tools/create-dicom", body, content_type="application/json")


def test_tags_only() -> None:
    answer = _post({"Tags": {"PatientName": "Jodogne^Sebastien", "PatientID": "S"}}).json()
    assert answer["Status"] == "Success" and answer["Path"] == f"/instances/{answer['ID']}"
    tags = Client().get(f"/instances/{answer['ID']}/simplified-tags").json()
    assert tags["PatientName"] == "Jodogne^Sebastien" and tags["PatientID"] == "S"
    for name in ("StudyDate", "SeriesTime", "ContentDate", "InstanceCreationTime", "StudyInstanceUID"):
        assert tags[name]
    assert tags["SpecificCharacterSet"] == "ISO_IR 100"


def test_png_content_becomes_the_pixels() -> None:
    grey = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    answer = _post({"Tags": {"PatientName": "X"}, "Content": _uri("image/png", _png(grey))}).json()
    image = Client().get(f"/instances/{answer['ID']}/image-uint8")
    assert np.asarray(Image.open(io.BytesIO(image.content))).tolist() == grey.tolist()
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    answer = _post({"Tags": {}, "Content": [_uri("image/png", _png(rgb))] * 2}).json()
    assert Client().get(f"/instances/{answer['ID']}/frames").json() == [0, 1]
    preview = Client().get(f"/instances/{answer['ID']}/frames/1/preview")
    assert np.asarray(Image.open(io.BytesIO(preview.content)))[0, 0].tolist() == [255, 0, 0]


def test_jpeg_is_embedded_as_it_is_and_pdf_as_a_document() -> None:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(out, format="JPEG")
    answer = _post({"Tags": {}, "Content": _uri("image/jpeg", out.getvalue())}).json()
    raw = Client().get(f"/instances/{answer['ID']}/frames/0/raw")
    jpeg = out.getvalue()
    assert raw["Content-Type"] == "image/jpeg" and raw.content[:len(jpeg)] == jpeg  # + an even-length pad
    pdf = b"%PDF-1.4 tiny document\n"
    answer = _post({"Tags": {}, "Content": _uri("application/pdf", pdf)}).json()
    assert Client().get(f"/instances/{answer['ID']}/pdf").content == pdf


def test_parent_study() -> None:
    first = _post({"Tags": {"PatientName": "P", "PatientID": "P1", "StudyDescription": "S"}}).json()
    second = _post({"Tags": {"SeriesDescription": "other"}, "Parent": first["ParentStudy"]}).json()
    assert second["ParentStudy"] == first["ParentStudy"] and second["ParentSeries"] != first["ParentSeries"]


def test_errors() -> None:
    bad_uri = _post({"Tags": {}, "Content": "data:image/png;base64,xxxx"})
    assert bad_uri.status_code == 400 and bad_uri.json()["OrthancError"] == "Bad file format"
    unknown = _post({"Tags": {"Foo": "X"}})
    assert unknown.status_code == 500 and unknown.json()["OrthancError"] == "Unknown DICOM tag"
