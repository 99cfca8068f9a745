"""ReadOnly (Orthanc 1.12.5) end to end: ``manage.py serve`` on an archive filled by an earlier run, started
again with ReadOnly. Real associations from pynetdicom; the database and the files must not change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, Verification

from bench.network import wait_dicom
from tests.dicom_factory import make_dataset, make_dicom
from tests.live import ROOT, _start, live_server

EXPLICIT = "1.2.840.10008.1.2.1"


def _association(port: int, *contexts):
    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for context in contexts:
        ae.add_requested_context(*context)
    assoc = ae.associate("127.0.0.1", port, ae_title="ORTHANC")
    assert assoc.is_established
    return assoc


def _c_store(port: int, ds: Dataset) -> int:
    assoc = _association(port, (CTImageStorage, EXPLICIT))
    try:
        return assoc.send_c_store(ds).Status
    finally:
        assoc.release()


def _stop(server) -> None:
    os.killpg(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=20)


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_read_only_server_serves_the_archive_and_changes_nothing(tmp_path):
    study_uid = generate_uid()
    # Nothing becomes stable before the read-only restart (StableAge 3600 s; with 1 s a slow machine let the
    # writable server mark the study stable first), then 1 s: the read-only server would mark it if it wrote
    with live_server(tmp_path, DicomAet="ORTHANC", StableAge=3600, DicomAlwaysAllowFind=True) as server:
        wait_dicom(server.config["DicomPort"])
        assert _c_store(server.config["DicomPort"], make_dataset(StudyInstanceUID=study_uid)) == 0
        assert requests.post(server.url + "/instances", data=make_dicom(PatientID="REST")).status_code == 200
        _stop(server)

        config = {**server.config, "ReadOnly": True, "StableAge": 1}
        storage = tmp_path / "storage"
        files = _files(storage)
        read_only = _start(tmp_path, config, server.database_url)
        try:
            wait_dicom(config["DicomPort"])
            before = requests.get(read_only.url + "/statistics").json()
            changes = requests.get(read_only.url + "/changes?limit=1000").json()
            assert requests.get(read_only.url + "/system").json()["ReadOnly"] is True
            # C-STORE: Out of resources, nothing stored; C-ECHO and C-FIND as usual
            assert _c_store(config["DicomPort"], make_dataset(PatientID="NEW")) == 0xA700
            assoc = _association(config["DicomPort"], (Verification,), (StudyRootQueryRetrieveInformationModelFind,))
            try:
                assert assoc.send_c_echo().Status == 0
                query = Dataset()
                query.QueryRetrieveLevel = "STUDY"
                query.StudyInstanceUID = study_uid
                answers = [ds for status, ds in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
                           if status and status.Status == 0xFF00]
                assert [str(a.StudyInstanceUID) for a in answers] == [study_uid]
            finally:
                assoc.release()
            # REST: uploads are not registered, the rest reads
            response = requests.post(read_only.url + "/instances", data=make_dicom(PatientID="NEW2"))
            assert (response.status_code, response.headers["Allow"]) == (405, "GET")
            study = requests.post(read_only.url + "/tools/lookup", data=study_uid).json()[0]["ID"]
            assert requests.delete(f"{read_only.url}/studies/{study}").status_code == 405
            assert requests.get(f"{read_only.url}/studies/{study}/archive").status_code == 200
            # the housekeeper marks nothing stable, though StableAge (1 s) passes: no change, no write
            assert "StableStudy" not in {c["ChangeType"] for c in changes["Changes"]}
            time.sleep(3)
            assert requests.get(read_only.url + "/statistics").json() == before
            assert requests.get(read_only.url + "/changes?limit=1000").json() == changes
            assert _files(storage) == files
        finally:
            _stop(read_only)


def test_read_only_on_a_database_that_needs_migrations_stops_with_a_message(tmp_path):
    config = {"Name": "ro", "HttpPort": 0, "DicomServerEnabled": False, "ReadOnly": True,
              "StorageDirectory": str(tmp_path / "storage"), "IndexDirectory": str(tmp_path / "index")}
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    run = subprocess.run([sys.executable, "manage.py", "serve", "--config", str(tmp_path / "orthanc.json")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "ReadOnly is true but the database is not ready" in run.stderr
    assert not (tmp_path / "storage").exists() or not _files(tmp_path / "storage")
