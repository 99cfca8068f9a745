"""Every image sample through every pixel route, compared with the answers real Orthanc 1.10.1 (with its GDCM
plugin) recorded on the same files (tests/data/orthanc-pixel-answers.json, scripts/record-pixel-answers):
status, Content-Type, and the pixels (PNG/PAM decoded) or the bytes (raw, numpy, matlab).

Where we answer differently on purpose, DIFFERENCES says so and why; anything else is a failure."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from archive import pixels
from archive.ingest import Origin, instance_store
from tests.samples import sample_path

pytestmark = pytest.mark.django_db
ANSWERS = json.loads((Path(__file__).resolve().parents[2] / "data" / "orthanc-pixel-answers.json").read_text())
SAMPLES = sorted(name for name, s in ANSWERS["samples"].items() if "frames" in s)

JPEG_2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
LOSSY_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
RLE = "1.2.840.10008.1.2.5"


def known_difference(dicom: dict, route: str) -> str | None:
    """Why our answer to ``route`` on a file with these tags differs from Orthanc 1.10.1's on purpose."""
    syntax, name = dicom["transfer_syntax"], route.split("?")[0]
    if name == "numpy" and syntax in JPEG_2000:
        return "Orthanc's /numpy decodes with DCMTK alone, which has no JPEG 2000 (500); every route of ours decodes it"
    if name == "numpy" and dicom["photometric"] == "YBR_FULL" and syntax not in (RLE, *LOSSY_JPEG):
        return "Orthanc's /numpy decodes with DCMTK alone, which refuses uncompressed YBR_FULL (500)"
    if name == "numpy" and syntax == RLE and dicom["planar_configuration"] == 1:
        return "Orthanc 1.10.1's /numpy reads planar RLE as interleaved (fixed in 1.11.3 and 1.12.1)"
    slope, intercept = dicom["rescale_slope"] or 1.0, dicom["rescale_intercept"] or 0.0
    if route in ("numpy", "numpy?rescale=1") and not (float(slope).is_integer() and float(intercept).is_integer()):
        return "Orthanc 1.10.1 truncates rescaled values to integers; 1.12 writes float32 slope * x + intercept"
    if syntax in JPEG_2000 and dicom["photometric"] == "YBR_ICT" and name in ("preview", "rendered", "matlab"):
        return "Orthanc's GDCM plugin refuses YBR_ICT JPEG 2000 (415); openjpeg decodes it"
    return None


def pixels_may_differ(dicom: dict, route: str) -> str | None:
    """Why the status and type must agree but the pixels may not, byte for byte."""
    if dicom["transfer_syntax"] in LOSSY_JPEG and route.split("?")[0] in ("preview", "rendered", "matlab", "numpy"):
        return ("lossy JPEG: libjpeg-turbo (Pillow, GDCM) and DCMTK's IJG decoder differ by 1 on a few pixels; "
                "test_lossy_jpeg_within_one_of_the_reference checks the tolerance")
    return None


def _pixels_sha(body: bytes) -> str:
    if body.startswith(b"P7"):
        header, _, data = body.partition(b"ENDHDR\n")
        fields = dict(line.split(b" ", 1) for line in header.split(b"\n")[1:] if b" " in line)
        dtype = ">u2" if int(fields[b"MAXVAL"]) > 255 else "u1"
        array = np.frombuffer(data, dtype=dtype).reshape(int(fields[b"HEIGHT"]), int(fields[b"WIDTH"]), -1)
        if array.shape[2] == 1:
            array = array[:, :, 0]
    else:
        array = np.asarray(Image.open(io.BytesIO(body)))
    return hashlib.sha256(np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"))).tobytes()).hexdigest()


def _compare(client: Client, url: str, recorded: dict, *, exact: bool = True) -> str | None:
    """None when our answer is Orthanc's, else what differs (``exact``: the pixels and bytes too)."""
    response = client.get(url)
    if response.status_code != recorded["status"]:
        return f"status {response.status_code}, Orthanc {recorded['status']}"
    body = response.getvalue()  # numpy answers are streamed
    if recorded["status"] != 200:
        error = recorded.get("error")
        if error is None:
            return None if body == b"" else f"a body ({len(body)} bytes) where Orthanc sends none"
        ours = json.loads(body)
        return None if ours["OrthancError"] == error["OrthancError"] else f"error {ours['OrthancError']!r}"
    if response["Content-Type"] != recorded["content_type"]:
        return f"Content-Type {response['Content-Type']}, Orthanc {recorded['content_type']}"
    if not exact:
        return None
    if "pixels" in recorded:
        ours = _pixels_sha(body)
        return None if ours == recorded["pixels"]["sha256"] else "different pixels"
    if "gunzipped_sha256" in recorded:
        ours = hashlib.sha256(gzip.decompress(body)).hexdigest()
        return None if ours == recorded["gunzipped_sha256"] else "different bytes (gunzipped)"
    return None if hashlib.sha256(body).hexdigest() == recorded["sha256"] else "different bytes"


@pytest.mark.parametrize("name", SAMPLES)
def test_pixel_routes_answer_as_orthanc(name: str) -> None:
    recorded = ANSWERS["samples"][name]
    pixels.caches_clear()
    ids = instance_store(data=sample_path(name).read_bytes(), origin=Origin()).ids
    assert ids.instance == recorded["instance"]
    client = Client()
    checks = [(f"/instances/{ids.instance}/frames/{frame}/{route}", route, answer)
              for frame, routes in recorded["frames"].items() for route, answer in routes.items()]
    for route, answer in recorded["instance_routes"].items():
        if isinstance(answer, str):  # "=frames/0/preview": the same answer as that frame route
            frame, _, same = answer[len("=frames/"):].partition("/")
            answer = recorded["frames"][frame][same]
        checks.append((f"/instances/{ids.instance}/{route}", route, answer))
    beyond = recorded.get("out_of_range")
    if beyond:
        checks.append((f"/instances/{ids.instance}/frames/{beyond['frame']}/preview", "preview", beyond["preview"]))
    mismatches = []
    for url, route, answer in checks:
        if known_difference(recorded["dicom"], route):
            continue
        problem = _compare(client, url, answer, exact=not pixels_may_differ(recorded["dicom"], route))
        if problem:
            mismatches.append(f"{url.split('/', 3)[3]}: {problem}")
    if mismatches:
        pytest.fail(f"{name}: {len(mismatches)} answer(s) differ from Orthanc's:\n" + "\n".join(mismatches))


REFERENCE_CHECKS = [(reference, check["sample"], check["frame"], route)
                    for reference, checks in ANSWERS["references"].items() for check in checks
                    for route, verdict in check.items() if verdict == "equal"]


def _reference_pixels(path: Path) -> np.ndarray:
    if path.suffix == ".raw":
        raise AssertionError("raw references are not compared")
    return np.asarray(Image.open(path))


@pytest.mark.parametrize(("reference", "sample", "frame", "route"), REFERENCE_CHECKS)
def test_reference_images_of_the_samples(reference: str, sample: str, frame: int, route: str) -> None:
    """The images shipped beside the samples (that Orthanc reproduces exactly): ours equal them too, except
    lossy JPEG, where the decoders may differ by one level on a few pixels (libjpeg-turbo against DCMTK's IJG)."""
    pixels.caches_clear()
    ids = instance_store(data=sample_path(sample).read_bytes(), origin=Origin()).ids
    response = Client().get(f"/instances/{ids.instance}/frames/{frame}/{route}")
    assert response.status_code == 200
    if route == "numpy":
        ours = np.load(io.BytesIO(response.getvalue()))
        ours = ours.reshape(ours.shape[:2] + ((3,) if ours.shape[-1] == 3 else ()))
    else:
        ours = np.asarray(Image.open(io.BytesIO(response.content)))
    expected = _reference_pixels(sample_path(reference))
    if route == "image-int16":
        ours = ours.astype(np.uint16).view(np.int16).astype(np.int64)
        expected = expected.astype(np.uint16).view(np.int16).astype(np.int64) if expected.dtype != np.int16 else expected
    assert ours.shape == expected.shape
    difference = np.abs(ours.astype(np.int64) - expected.astype(np.int64))
    if ANSWERS["samples"][sample]["dicom"]["transfer_syntax"] in LOSSY_JPEG:
        assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size // 1000
    else:
        assert difference.max() == 0


@pytest.mark.parametrize("name", ["2026-05-26-oob-monochrome-46341.dcm", "2026-05-26-oob-monochrome-65535.dcm"])
def test_images_that_crash_orthanc_1_10_answer_415_in_bounded_memory(name: str) -> None:
    """Orthanc 1.10.1 crashes or takes 4 GB on these (impossible geometry over a tiny pixel data); 1.12.11
    refuses them. Ours refuses them from the header, without allocating the frame."""
    import tracemalloc

    pixels.caches_clear()
    ids = instance_store(data=sample_path(name).read_bytes(), origin=Origin()).ids
    client = Client()
    tracemalloc.start()
    try:
        for route in ("preview", "rendered", "image-uint16", "frames/0/raw"):
            response = client.get(f"/instances/{ids.instance}/{route}")
            assert response.status_code == (400 if "raw" in route else 415), route
        assert client.get(f"/instances/{ids.instance}/matlab").status_code == 400
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
