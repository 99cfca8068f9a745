"""The whole sample corpus sent over DICOM to a real Orthanc, by us and by a real Orthanc: the same instances
arrive, with the same Orthanc IDs and in the same transfer syntaxes. Sending the corpus this way found files
that went decompressed, under a new SOP Instance UID, or not at all (archive/network/transcoding.py)."""

from __future__ import annotations

import json

import pytest
import requests
from django.test import Client

from bench.servers import free_port, orthanc_server
from jobs import kinds
from jobs.kinds import dicom as dicom_jobs
from tests.samples import samples_dir

pytestmark = pytest.mark.django_db(transaction=True)


def _received(url: str) -> dict[str, str]:
    """Orthanc ID -> transfer syntax of every instance a real Orthanc holds."""
    return {i: requests.get(f"{url}/instances/{i}/metadata/TransferSyntax", timeout=10).text
            for i in requests.get(f"{url}/instances", timeout=10).json()}


def test_the_sample_corpus_arrives_as_orthanc_sends_it(settings, orthanc_config, monkeypatch) -> None:
    files = sorted(samples_dir().rglob("*.dcm"))
    settings.JOBS_RUN_INLINE = True
    monkeypatch.setitem(kinds.KINDS, dicom_jobs.STORE, dicom_jobs.modality_store_job)
    ours = Client()
    port_theirs, port_ours = free_port(), free_port()
    with orthanc_server(dicom_port=port_theirs) as theirs_dest, orthanc_server(dicom_port=port_ours) as ours_dest, \
            orthanc_server(extra={"DicomModalities": {"dest": ["ORTHANC", "127.0.0.1", port_theirs]}}) as source:
        ids = []
        for path in files:
            data = path.read_bytes()
            answer = ours.post("/instances", data=data, content_type="application/dicom")
            if answer.status_code != 200:
                continue   # what we refuse (real Orthanc 1.10.1 even crashes on one of them) is not sent
            ids.append(answer.json()["ID"])
            assert requests.post(f"{source.url}/instances", data=data, timeout=30).status_code == 200, path.name
        assert len(ids) > 200
        body = {"Resources": sorted(set(ids)), "Permissive": True}
        assert requests.post(f"{source.url}/modalities/dest/store", json=body, timeout=300).status_code == 200
        orthanc_config(DicomAet="OURS", DicomModalities={"dest": ["ORTHANC", "127.0.0.1", port_ours]})
        answer = ours.post("/modalities/dest/store", data=json.dumps(body), content_type="application/json")
        assert answer.status_code == 200
        expected, received = _received(theirs_dest.url), _received(ours_dest.url)
        stored = {i: ours.get(f"/instances/{i}/metadata/TransferSyntax").content.decode() for i in received}
    assert len(expected) > 200
    assert {i: received.get(i) for i in expected} == expected
    # More arrive from us: files with explicit VR UN elements, which real Orthanc's SCP refuses from Orthanc's
    # SCU and takes re-encoded from us; they arrive in their own syntax too.
    assert {i: received[i] for i in received} == {i: stored[i] for i in received}
