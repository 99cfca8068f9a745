"""Where the shared DICOM samples and the golden answers of real Orthanc live, for tests that use them.

``DICOM_SAMPLES`` points at the samples (default ``../shared/dicom-samples`` beside the project root); the
golden recording is ``reference/golden-orthanc-1.10.1.json`` next to that directory (``GOLDEN_ORTHANC``
overrides it). Tests skip when they are absent, unless ``REQUIRE_SAMPLES=1``, where they fail instead: CI
sets it so a missing checkout cannot pass as green.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def missing(what: str) -> None:
    if os.environ.get("REQUIRE_SAMPLES") == "1":
        pytest.fail(f"{what} (REQUIRE_SAMPLES=1)")
    pytest.skip(what)


def samples_dir() -> Path:
    """The samples directory; skips the test (fails under REQUIRE_SAMPLES=1) when it is absent."""
    path = Path(os.environ.get("DICOM_SAMPLES") or ROOT.parent / "shared" / "dicom-samples")
    if not path.is_absolute():
        path = ROOT / path
    if not path.is_dir():
        missing(f"DICOM samples not found at {path} (set DICOM_SAMPLES)")
    return path


def sample_path(rel: str) -> Path:
    """One sample file, by its path relative to the samples directory."""
    path = samples_dir() / rel
    if not path.is_file():
        missing(f"DICOM sample {rel} not found in {path.parent}")
    return path


def golden_path() -> Path:
    env = os.environ.get("GOLDEN_ORTHANC")
    if env:
        return Path(env)
    return samples_dir().parent / "reference" / "golden-orthanc-1.10.1.json"


@functools.cache
def _golden(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def golden() -> dict:
    """Real Orthanc's recorded answers: ``{"GET /instances/{id}/tags": {"status": 200, "json": ...}}``."""
    path = golden_path()
    if not path.is_file():
        missing(f"golden Orthanc answers not found at {path} (set GOLDEN_ORTHANC)")
    return _golden(path)


def orthanc_id(*parts: str) -> str:
    """Orthanc's identifier of a resource from its identifying tags (PatientID, then UIDs down to its level)."""
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


# The files tools/capture-golden.py uploaded to real Orthanc, in its order.
GOLDEN_FILES = (
    "Brainix/Flair/IM-0001-0001.dcm", "Brainix/Flair/IM-0001-0002.dcm", "Brainix/Epi/IM-0001-0001.dcm",
    "Knix/Loc/IM-0001-0001.dcm", "ColorTestMalaterre.dcm", "TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm",
    "TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm", "TransferSyntaxes/1.2.840.10008.1.2.5.dcm",
    "MarekLatin2.dcm", "PrivateTags.dcm", "Issue16.dcm", "DummyCT.dcm",
)
