"""A caller that may not store (DicomAlwaysAllowStore false, the modality's AllowStore false, or an unknown AET):
the association is aborted on the C-STORE's command set, as Orthanc 1.10.1 does (A-ABORT before any dataset
byte is sent), nothing is stored, and the SCP serves the next caller."""

from __future__ import annotations

import socket
import subprocess

import pytest
import requests
from pydicom.uid import generate_uid

from tests.dicom_factory import make_dicom
from tests.live import live_server
from tests.network_pdus import associate_request, pdu_read, store_request

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store-refused")
    options = {
        "DicomAet": "ORTHANC", "DicomAlwaysAllowStore": False,
        "DicomModalities": {
            "nostore": {"AET": "NOSTORE", "Host": "127.0.0.1", "Port": 1, "AllowStore": False},
            "store": {"AET": "STORE", "Host": "127.0.0.1", "Port": 1},
        },
    }
    with live_server(tmp, **options) as srv:
        srv.dicom_port = srv.config["DicomPort"]
        yield srv


@pytest.mark.parametrize("aet", ["NOSTORE", "UNKNOWN"])
def test_refused_on_the_command_set(server, aet):
    with socket.create_connection(("127.0.0.1", server.dicom_port), timeout=10) as sock:
        sock.sendall(associate_request(aet, [(CT, [EXPLICIT])]))
        assert pdu_read(sock)[0] == 0x02             # A-ASSOCIATE-AC (DicomAlwaysAllowEcho: anyone connects)
        sock.sendall(store_request(CT, generate_uid()))
        kind, body = pdu_read(sock)                  # before any dataset fragment was sent
        assert (kind, body) == (0x07, b"\0\0\0\0")   # A-ABORT, source 0 reason 0, as Orthanc's
    log = (server.tmp / "server.log").read_text(errors="replace")
    assert f"Rejected Store request from remote DICOM modality with AET '{aet}'" in log


def test_storescu_refused_then_allowed(server, tmp_path):
    path = tmp_path / "ct.dcm"
    path.write_bytes(make_dicom(SOPInstanceUID=generate_uid(), PatientID="REFUSED"))
    target = ["-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), str(path)]
    refused = subprocess.run(["storescu", "-aet", "NOSTORE", *target], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "Peer aborted Association" in refused.stderr
    assert requests.get(server.url + "/instances", timeout=10).json() == []
    allowed = subprocess.run(["storescu", "-aet", "STORE", *target], capture_output=True, text=True, timeout=30)
    assert allowed.returncode == 0, allowed.stderr
    assert len(requests.get(server.url + "/instances", timeout=10).json()) == 1
