"""DICOM TLS with real peers: DCMTK's echoscu/storescu against our SCP, our SCU against our own TLS SCP and
against real Orthanc 1.10.1 with DICOM TLS, and Orthanc's SCU against ours. Certificates are self-signed, one
per party, each trusting the others' (as the Orthanc Book sets it up)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import requests

from archive.errors import ArchiveError
from archive.network.scp import ScpSettings, server_build
from archive.network.tls import TlsSettings
from bench.network import wait_dicom
from bench.servers import orthanc_server
from tests.dicom_factory import make_dicom
from tests.live import ROOT, free_port, live_server
from tests.tls_certs import self_signed

# DCMTK's tools (an activated venv puts pynetdicom's apps of the same names first on the PATH)
ECHOSCU = "/usr/bin/echoscu" if shutil.which("/usr/bin/echoscu") else shutil.which("echoscu")
STORESCU = "/usr/bin/storescu" if shutil.which("/usr/bin/storescu") else shutil.which("storescu")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    made = {name: self_signed(folder, name) for name in ("ours", "peer", "orthanc", "stranger")}

    def trusting(*names: str):
        path = folder / ("trust-" + "-".join(names) + ".crt")
        path.write_bytes(b"".join(made[n][0].read_bytes() for n in names))
        return path

    return made, trusting


def _tls_options(certs, me: str, *trusted: str) -> dict:
    made, trusting = certs
    return {"DicomTlsCertificate": str(made[me][0]), "DicomTlsPrivateKey": str(made[me][1]),
            "DicomTlsTrustedCertificates": str(trusting(*trusted))}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certs):
    """Ours with DICOM TLS on its SCP, trusting 'peer' and 'orthanc'."""
    options = {"DicomAet": "OURS", "DicomTlsEnabled": True, **_tls_options(certs, "ours", "peer", "orthanc")}
    with live_server(tmp_path_factory.mktemp("tls"), **options) as srv:
        srv.dicom_port = srv.config["DicomPort"]
        wait_dicom(srv.dicom_port)
        yield srv


def _dcmtk(tool: str, port: int, *tls: str, files: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *tls, "-aet", "PEER", "-aec", "OURS", "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, timeout=60)


def _count(server) -> int:
    return len(requests.get(f"{server.url}/instances", timeout=10).json())


def test_dcmtk_echo_and_store_over_tls(tls_server, certs, tmp_path):
    made, _ = certs
    crt, key = made["peer"]
    tls = ("+tls", str(key), str(crt), "+cf", str(made["ours"][0]))
    echo = _dcmtk(ECHOSCU, tls_server.dicom_port, *tls)
    assert echo.returncode == 0, echo.stderr
    before = _count(tls_server)
    path = tmp_path / "a.dcm"
    path.write_bytes(make_dicom(PatientID="TLS1"))
    store = _dcmtk(STORESCU, tls_server.dicom_port, *tls, files=(path,))
    assert store.returncode == 0, store.stderr
    assert _count(tls_server) == before + 1


def test_plain_tcp_and_untrusted_or_anonymous_clients_are_refused(tls_server, certs):
    made, _ = certs
    ours_crt = str(made["ours"][0])
    plain = _dcmtk(ECHOSCU, tls_server.dicom_port)
    assert plain.returncode != 0
    stranger = _dcmtk(ECHOSCU, tls_server.dicom_port, "+tls", str(made["stranger"][1]), str(made["stranger"][0]),
                      "+cf", ours_crt)
    assert stranger.returncode != 0
    # DicomTlsRemoteCertificateRequired (default true): a client without a certificate is refused
    anonymous = _dcmtk(ECHOSCU, tls_server.dicom_port, "+tla", "+cf", ours_crt)
    assert anonymous.returncode != 0
    # ... and the SCP goes on serving the trusted ones
    ok = _dcmtk(ECHOSCU, tls_server.dicom_port, "+tls", str(made["peer"][1]), str(made["peer"][0]), "+cf", ours_crt)
    assert ok.returncode == 0, ok.stderr


def test_a_client_that_never_finishes_its_handshake_does_not_block_the_others(tls_server, certs):
    made, _ = certs
    silent = socket.create_connection(("127.0.0.1", tls_server.dicom_port))   # connects, says nothing
    try:
        ok = _dcmtk(ECHOSCU, tls_server.dicom_port, "+tls", str(made["peer"][1]), str(made["peer"][0]),
                    "+cf", str(made["ours"][0]))
        assert ok.returncode == 0, ok.stderr
    finally:
        silent.close()


def test_our_scu_uses_tls_towards_modalities_with_use_dicom_tls(tls_server, certs, tmp_path_factory):
    """Another server of ours (SCU identity 'peer', not serving TLS itself) echoes and stores to the TLS SCP."""
    options = {"DicomAet": "PEER", **_tls_options(certs, "peer", "ours")}
    with live_server(tmp_path_factory.mktemp("scu"), **options) as scu:
        target = {"AET": "OURS", "Host": "127.0.0.1", "Port": tls_server.dicom_port}
        assert requests.put(f"{scu.url}/modalities/tls", json={**target, "UseDicomTls": True}, timeout=10).ok
        assert requests.put(f"{scu.url}/modalities/plain", json=target, timeout=10).ok
        assert requests.post(f"{scu.url}/modalities/tls/echo", json={}, timeout=60).status_code == 200
        assert requests.post(f"{scu.url}/modalities/plain/echo", json={}, timeout=60).status_code != 200
        uploaded = requests.post(f"{scu.url}/instances", data=make_dicom(PatientID="TLS2"), timeout=10).json()
        before = _count(tls_server)
        sent = requests.post(f"{scu.url}/modalities/tls/store", json={"Resources": [uploaded["ID"]]}, timeout=60)
        assert sent.status_code == 200, sent.text
        assert sent.json()["FailedInstancesCount"] == 0
        assert _count(tls_server) == before + 1


def test_dicom_tls_with_real_orthanc_both_ways(tls_server, certs, tmp_path_factory):
    """Orthanc 1.10.1 with DICOM TLS: our SCU stores to it, its SCU stores to us."""
    orthanc_dicom = free_port()
    orthanc_options = {
        "DicomAet": "ORTHANC", "DicomTlsEnabled": True, **_tls_options(certs, "orthanc", "ours", "peer"),
        "DicomModalities": {"ours": {"AET": "OURS", "Host": "127.0.0.1", "Port": tls_server.dicom_port,
                                     "UseDicomTls": True}},
    }
    with orthanc_server(dicom_port=orthanc_dicom, extra=orthanc_options) as orthanc, \
            live_server(tmp_path_factory.mktemp("scu2"), DicomAet="PEER", **_tls_options(certs, "peer", "orthanc")) as scu:
        wait_dicom(orthanc_dicom)
        modality = {"AET": "ORTHANC", "Host": "127.0.0.1", "Port": orthanc_dicom, "UseDicomTls": True}
        assert requests.put(f"{scu.url}/modalities/orthanc", json=modality, timeout=10).ok
        assert requests.post(f"{scu.url}/modalities/orthanc/echo", json={}, timeout=60).status_code == 200
        uploaded = requests.post(f"{scu.url}/instances", data=make_dicom(PatientID="TLS3"), timeout=10).json()
        sent = requests.post(f"{scu.url}/modalities/orthanc/store", json={"Resources": [uploaded["ID"]]}, timeout=60)
        assert sent.status_code == 200, sent.text
        assert requests.get(f"{orthanc.url}/instances", timeout=10).json() == [uploaded["ID"]]

        # Orthanc's SCU (identity 'orthanc', trusted by our SCP) to our TLS SCP
        before = _count(tls_server)
        moved = requests.post(f"{orthanc.url}/modalities/ours/store", json={"Resources": [uploaded["ID"]]},
                              timeout=60)
        assert moved.status_code == 200, moved.text
        assert _count(tls_server) == before + 1

        # Orthanc asks our TLS SCP for a C-MOVE to itself: our sub-operations go out over TLS too
        study_uid = "1.2.826.0.1.3680043.8.498.4242"
        ours_only = requests.post(f"{tls_server.url}/instances", timeout=10,
                                  data=make_dicom(PatientID="TLS4", StudyInstanceUID=study_uid)).json()
        destination = {"AET": "ORTHANC", "Host": "127.0.0.1", "Port": orthanc_dicom, "UseDicomTls": True}
        assert requests.put(f"{tls_server.url}/modalities/orthanc", json=destination, timeout=10).ok
        retrieve = requests.post(f"{orthanc.url}/modalities/ours/move", timeout=60, json={
            "Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}], "TargetAet": "ORTHANC"})
        assert retrieve.status_code == 200, retrieve.text
        assert ours_only["ID"] in requests.get(f"{orthanc.url}/instances", timeout=10).json()


def test_tls_enabled_without_certificate_is_a_clear_configuration_error():
    with pytest.raises(ArchiveError, match="DicomTlsCertificate"):
        server_build(scp=ScpSettings(port=0, tls=TlsSettings(enabled=True)), host="127.0.0.1", port=0)


def test_tls_unreadable_key_is_a_clear_configuration_error(certs, tmp_path):
    made, trusting = certs
    tls = TlsSettings(enabled=True, certificate=str(made["ours"][0]), private_key=str(tmp_path / "missing.key"),
                      trusted=str(trusting("peer")))
    with pytest.raises(ArchiveError, match="missing.key"):
        server_build(scp=ScpSettings(port=0, tls=tls), host="127.0.0.1", port=0)


def test_serve_stops_with_an_error_naming_the_missing_tls_option(tmp_path):
    """As Orthanc refuses to start: the whole server stops, with an error status and the option's name."""
    config = {"HttpPort": free_port(), "DicomPort": free_port(), "StorageDirectory": str(tmp_path / "storage"),
              "IndexDirectory": str(tmp_path / "index"), "DicomTlsEnabled": True}
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'index.sqlite3'}", "DICOM_PROCESSES": "1",
           "HTTP_WORKERS": "1"}
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v0", "--config", str(tmp_path / "orthanc.json")],
                             cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    run = subprocess.run([sys.executable, "manage.py", "serve", "--config", str(tmp_path / "orthanc.json")],
                         cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert run.returncode != 0
    assert b'DICOM TLS needs the configuration option "DicomTlsCertificate"' in run.stderr
