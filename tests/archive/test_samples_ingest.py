"""Every file of the sample corpus is accepted or refused exactly as real Orthanc does (recorded in
tests/data/orthanc-ingest-statuses.json by scripts/record-ingest-statuses), with the same identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive.errors import ArchiveError
from archive.ingest import Origin, StoreStatus, instance_store
from archive.models import Resource
from tests.samples import samples_dir

pytestmark = pytest.mark.django_db
EXPECTED = json.loads((Path(__file__).parent.parent / "data" / "orthanc-ingest-statuses.json").read_text())["files"]
CRASH_ORTHANC = ["2026-05-06-Deeply-Nested-Sequence.dcm", "2026-05-26-oob-monochrome-46341.dcm",
                 "2026-05-26-oob-monochrome-65535.dcm"]
REST = Origin.rest(remote_ip="127.0.0.1")


def _store(path: Path) -> tuple[int, str | None]:
    try:
        result = instance_store(data=path.read_bytes(), origin=REST)
    except ArchiveError as error:
        return error.http_status, None
    assert result.status in (StoreStatus.SUCCESS, StoreStatus.ALREADY_STORED)
    return 200, result.ids.instance


def test_every_sample_is_accepted_or_refused_as_orthanc_does():
    root = samples_dir()
    differences = []
    for rel, expected in sorted(EXPECTED.items()):
        status, instance_id = _store(root / rel)
        if status != expected["status"] or (expected.get("id") and instance_id != expected["id"]):
            differences.append((rel, expected, status, instance_id))
    assert differences == []


@pytest.mark.parametrize("name", CRASH_ORTHANC)
def test_samples_that_crash_orthanc_are_handled(name):
    status, instance_id = _store(samples_dir() / name)
    assert status in (200, 400)
    if status == 200:
        assert Resource.objects.filter(public_id=instance_id).exists()
