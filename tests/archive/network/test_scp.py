"""The DICOM server end to end: ``manage.py serve`` on loopback, real associations from pynetdicom and DCMTK.

One server for the module (starting one takes seconds); each test stores what it needs with its own UIDs.
The modality "SCU" is this test process: its storage SCP receives C-MOVE sub-operations and storage
commitment reports.
"""

from __future__ import annotations

import io
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid

import pydicom
import pynetdicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from bench.servers import orthanc_server
from tests.dicom_factory import make_dataset, make_dicom
from tests.live import free_port, live_server
from tests.network_pdus import RELEASE_REQUEST, associate_request, echo_request, pdu_read
from tests.samples import sample_path

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK is not installed")

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


class Modality:
    """This process as a modality: a storage SCP (C-MOVE destination) and storage commitment SCU."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Dataset] = []
        self.raw: list[bytes] = []
        self.reports: list[tuple[int, Dataset]] = []
        self.pdu_lengths: list[int] = []   # the maximum PDU length each requestor advertised
        self.calling: list[str] = []       # the calling AET of each report's association
        self.originators: list[tuple[str, int]] = []   # Move Originator AET and Message ID of each C-STORE
        ae = AE(ae_title="SCU")
        ae.add_supported_context(CTImageStorage, [EXPLICIT, IMPLICIT])
        ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_N_EVENT_REPORT, self._report),
                    (evt.EVT_REQUESTED, self._requested)]
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)

    def _store(self, event):
        self.received.append(event.dataset)
        self.raw.append(event.request.DataSet.getvalue())
        self.originators.append((str(event.request.MoveOriginatorApplicationEntityTitle or "").strip(),
                                 event.request.MoveOriginatorMessageID))
        return 0x0000

    def _report(self, event):
        self.calling.append(event.assoc.requestor.ae_title)
        self.reports.append((event.request.EventTypeID, event.event_information))
        return 0x0000, None

    def _requested(self, event):
        self.pdu_lengths.append(event.assoc.requestor.maximum_length)


@pytest.fixture(scope="module")
def modality():
    m = Modality()
    yield m
    m.server.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory, modality):
    tmp = tmp_path_factory.mktemp("scp")
    options = {
        "DicomAet": "ORTHANC", "DicomCheckCalledAet": True, "DicomAlwaysAllowEcho": False,
        "JpegTransferSyntaxAccepted": False,
        "DicomModalities": {
            "scu": ["SCU", "127.0.0.1", modality.port],
            "noecho": {"AET": "NOECHO", "Host": "127.0.0.1", "Port": 1, "AllowEcho": False, "AllowFind": False,
                       "AllowMove": False, "AllowGet": False},
        },
    }
    with live_server(tmp, **options) as srv:
        srv.dicom_port = srv.config["DicomPort"]
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", srv.dicom_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield srv


def _associate(server, contexts, *, aet="SCU", called="ORTHANC", ext_neg=None):
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    return ae.associate("127.0.0.1", server.dicom_port, ae_title=called, ext_neg=ext_neg)


def _store(server, **overrides) -> tuple[int, Dataset]:
    ds = make_dataset(**overrides)
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return status.Status, ds


def _find(server, model, elements: tuple[tuple[int, str, object], ...] = (), **keys) -> tuple[list[Dataset], int]:
    """C-FIND with the keys (keyword=value) and ``elements`` (tag, VR, value: private tags)."""
    assoc = _associate(server, [model])
    assert assoc.is_established
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    for tag, vr, value in elements:
        identifier.add_new(tag, vr, value)
    answers, final = [], None
    try:
        for status, ds in assoc.send_c_find(identifier, model):
            if status.Status in (0xFF00, 0xFF01):
                answers.append(ds)
            else:
                final = status.Status
    finally:
        assoc.release()
    return answers, final


def _send_raw(assoc, request):
    """Send a hand-made C-STORE request and wait for its answer (the reactor paused, as send_c_store does)."""
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, assoc.accepted_contexts[0].context_id)
        _cx, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    return rsp


def _aborted(assoc) -> bool:
    deadline = time.time() + 5
    while assoc.is_established and time.time() < deadline:
        time.sleep(0.05)
    return assoc.is_aborted


def _instances(server) -> list[str]:
    return requests.get(server.url + "/instances", timeout=10).json()


# -- association and C-ECHO -----------------------------------------------------------------------------------

def test_echo_from_known_modality(server):
    assoc = _associate(server, [Verification])
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_echo_not_allowed_aborts_association(server):
    # Orthanc 1.10.1 (live): DicomAlwaysAllowEcho false and AllowEcho false -> the association is aborted.
    assoc = _associate(server, [Verification], aet="NOECHO")
    assert assoc.is_established
    status = assoc.send_c_echo()
    assert not status or "Status" not in status
    assert _aborted(assoc)


def test_wrong_called_aet_is_rejected(server):
    assoc = _associate(server, [Verification], called="NOTUS")
    assert assoc.is_rejected


def test_aets_compare_without_case_as_orthanc(server):
    """StrictAetComparison false (the default): the called AET "orthanc" is ours, and the caller "scu" is the
    modality SCU, allowed to echo where unknown callers are not (DicomAlwaysAllowEcho false here)."""
    run = subprocess.run(["echoscu", "-aet", "scu", "-aec", "orthanc", "127.0.0.1", str(server.dicom_port)],
                         capture_output=True, timeout=30)
    assert run.returncode == 0 and b"E:" not in run.stderr, run.stderr
    assoc = _associate(server, [Verification], aet="Scu ", called="Orthanc")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_strict_aet_comparison(settings):
    from archive.network.registry import aet_same

    settings.ORTHANC = {**settings.ORTHANC, "StrictAetComparison": False}
    assert aet_same("orthanc", "ORTHANC") and aet_same("ORTHANC ", "ORTHANC") and not aet_same("ORTHANC", "OTHER")
    settings.ORTHANC = {**settings.ORTHANC, "StrictAetComparison": True}
    assert not aet_same("orthanc", "ORTHANC") and aet_same("ORTHANC", "ORTHANC")


def test_dcmtk_echoscu(server):
    run = subprocess.run(["echoscu", "-aet", "SCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port)],
                         capture_output=True, timeout=30)
    assert run.returncode == 0 and b"E:" not in run.stderr


def test_modality_added_over_rest_is_known_to_the_next_association(server):
    # The modalities are read when the connection is accepted: one added just before must count.
    modality = {"AET": "JUSTADDED", "Host": "127.0.0.1", "Port": 1}
    assert requests.put(server.url + "/modalities/justadded", json=modality, timeout=10).ok
    try:
        assoc = _associate(server, [Verification], aet="JUSTADDED")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    finally:
        requests.delete(server.url + "/modalities/justadded", timeout=10)
    assoc = _associate(server, [Verification], aet="JUSTADDED")    # unknown again: its echo is refused
    assert assoc.is_established
    assoc.send_c_echo()
    assert _aborted(assoc)


def test_peer_waiting_before_its_request_is_checked_against_the_modalities_of_then(server):
    # A peer that connects, then waits, is checked against the modalities when its A-ASSOCIATE-RQ comes, not
    # against those read when its connection was accepted.
    with socket.create_connection(("127.0.0.1", server.dicom_port), timeout=20) as sock:
        time.sleep(0.3)     # accepted meanwhile
        modality = {"AET": "LATECOMER", "Host": "127.0.0.1", "Port": 1}
        assert requests.put(server.url + "/modalities/latecomer", json=modality, timeout=10).ok
        try:
            time.sleep(1.2)
            sock.sendall(associate_request("LATECOMER", [(Verification, [IMPLICIT])]))
            assert pdu_read(sock)[0] == 0x02      # A-ASSOCIATE-AC
            sock.sendall(echo_request())
            kind, body = pdu_read(sock)
            assert kind == 0x04                     # P-DATA-TF: the answer, not an A-ABORT
            assert body.endswith(struct.pack("<HHIH", 0x0000, 0x0900, 2, 0x0000))   # Status: success
            sock.sendall(RELEASE_REQUEST)
            assert pdu_read(sock)[0] == 0x06
        finally:
            requests.delete(server.url + "/modalities/latecomer", timeout=10)


def test_many_short_associations_in_a_row(server):
    # Each connection is handed to its association by the accept loop: a hundred echo associations in a
    # row, and one that closes before its request, leave the server serving.
    with socket.create_connection(("127.0.0.1", server.dicom_port), timeout=20):
        pass
    for _ in range(100):
        assoc = _associate(server, [Verification])
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        assert assoc.is_released


# -- C-STORE --------------------------------------------------------------------------------------------------

def test_store_is_indexed_with_dicom_origin(server):
    status, ds = _store(server, SOPInstanceUID=generate_uid())
    assert status == 0x0000
    found = requests.post(server.url + "/tools/lookup", data=ds.SOPInstanceUID, timeout=10).json()
    instance = found[0]["ID"]
    metadata = requests.get(f"{server.url}/instances/{instance}/metadata?expand", timeout=10).json()
    assert metadata["Origin"] == "DicomProtocol"
    assert metadata["RemoteAET"] == "SCU"
    assert metadata["CalledAET"] == "ORTHANC"
    header = requests.get(f"{server.url}/instances/{instance}/header?simplify", timeout=10).json()
    assert header["TransferSyntaxUID"] == EXPLICIT
    assert header["MediaStorageSOPInstanceUID"] == ds.SOPInstanceUID


def test_store_keeps_the_bytes_as_sent(server):
    ds = make_dataset(SOPInstanceUID=generate_uid(), StudyDescription="bytes")
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    instance = requests.post(server.url + "/tools/lookup", data=ds.SOPInstanceUID, timeout=10).json()[0]["ID"]
    stored = requests.get(f"{server.url}/instances/{instance}/file", timeout=10).content
    sent = io.BytesIO()
    ds.save_as(sent, enforce_file_format=True)
    # the dataset after the file meta group is byte for byte what was sent
    assert stored.endswith(sent.getvalue()[sent.getvalue().index(b"\x08\x00"):][-1000:])


def test_dcmtk_storescu(server, tmp_path):
    path = tmp_path / "a.dcm"
    path.write_bytes(make_dicom(SOPInstanceUID=generate_uid()))
    run = subprocess.run(["storescu", "-aet", "SCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port),
                          str(path)], capture_output=True, timeout=30, env={"TCP_NODELAY": "1"})
    assert run.returncode == 0 and b"E:" not in run.stderr


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
def test_stray_file_meta_elements_leading_the_dataset_are_dropped(server, syntax):
    """A writer left (0002,0003) and a group length (0000) at the head of its dataset: Orthanc's C-STORE drops
    them (DCMTK's removeInvalidGroups, seen with storescu against Orthanc 1.10.1); so does ours, the rest of
    the dataset kept byte for byte."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = make_dataset(SOPInstanceUID=generate_uid())
    clean = DicomBytesIO()
    clean.is_little_endian, clean.is_implicit_VR = True, syntax == IMPLICIT
    write_dataset(clean, ds)
    stray = Dataset()
    stray.add_new(0x00000000, "UL", 4)
    stray.add_new(0x00020003, "UI", ds.SOPInstanceUID)
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, syntax == IMPLICIT
    write_dataset(head, stray)
    assoc = _associate(server, [(CTImageStorage, syntax)])
    request = C_STORE()
    request.MessageID, request.AffectedSOPClassUID = 1, ds.SOPClassUID
    request.AffectedSOPInstanceUID, request.Priority = ds.SOPInstanceUID, 2
    request.DataSet = io.BytesIO(head.getvalue() + clean.getvalue())
    response = _send_raw(assoc, request)
    assoc.release()
    assert response.Status == 0x0000
    [found] = requests.post(server.url + "/tools/lookup", data=ds.SOPInstanceUID, timeout=10).json()
    stored = requests.get(f"{server.url}/instances/{found['ID']}/file", timeout=10).content
    assert stored.endswith(clean.getvalue())
    assert stored.count(ds.SOPInstanceUID.encode()) == 2      # the file meta's and the dataset's SOPInstanceUID
    assert "0002,0003" not in requests.get(f"{server.url}/instances/{found['ID']}/tags", timeout=10).json()


def test_store_refused_transfer_syntax(server):
    # JpegTransferSyntaxAccepted false: the JPEG baseline context is rejected, explicit VR is accepted
    assoc = _associate(server, [(CTImageStorage, JPEG_BASELINE), (CTImageStorage, EXPLICIT)])
    assert assoc.is_established
    accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
    assoc.release()
    assert accepted == {EXPLICIT}


@pytest.mark.parametrize(("proposed", "chosen"), [
    ((EXPLICIT, BIG_ENDIAN, IMPLICIT), EXPLICIT),     # DCMTK's dcmsend, storescu -xs/-xe...
    ((IMPLICIT, EXPLICIT), EXPLICIT),
    ((BIG_ENDIAN, IMPLICIT), IMPLICIT),
    ((IMPLICIT, BIG_ENDIAN, EXPLICIT), EXPLICIT),
])
def test_a_storage_context_takes_explicit_little_endian_first_as_orthanc(server, proposed, chosen):
    """Orthanc's storage contexts prefer explicit little endian, then implicit, then big endian (seen with
    dcmsend against Orthanc 1.10.1): with implicit first, private tags lost their VR."""
    assoc = _associate(server, [(CTImageStorage, list(proposed))])
    assert assoc.is_established
    [context] = assoc.accepted_contexts
    assoc.release()
    assert context.transfer_syntax[0] == chosen


@pytest.mark.skipif(shutil.which("dcmsend") is None, reason="DCMTK's dcmsend is not installed")
def test_dcmsend_keeps_the_private_tags_of_an_explicit_file(server):
    """dcmsend proposes [explicit LE, big endian, implicit] in one context: the file is stored in explicit
    little endian, its private tags with their VR (under implicit they became Null in /tags)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    run = subprocess.run(["dcmsend", "-aet", "SCU", "-aec", "ORTHANC", "127.0.0.1", str(server.dicom_port), path],
                         capture_output=True, timeout=30, env={"TCP_NODELAY": "1"})
    assert run.returncode == 0, run.stderr
    import pydicom

    uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    [found] = requests.post(server.url + "/tools/lookup", data=uid, timeout=10).json()
    metadata = requests.get(f"{server.url}/instances/{found['ID']}/metadata?expand", timeout=10).json()
    assert metadata["TransferSyntax"] == EXPLICIT
    tags = requests.get(f"{server.url}/instances/{found['ID']}/tags", timeout=10).json()
    assert tags["0009,0010"] == {"Name": "PrivateCreator", "Type": "String", "Value": "GEMS_IDEN_01"}
    assert tags["0019,1002"]["Value"] == "912"          # SL: under implicit VR, unknown to the dictionary


def test_accepted_transfer_syntaxes_changed_over_rest_apply_to_the_next_association(server):
    """The SCP keeps the contexts it built (building them is half an association's set-up), keyed by the
    accepted transfer syntaxes of the moment: a change over REST still reaches the next association."""
    url = server.url + "/tools/accepted-transfer-syntaxes"
    before = requests.get(url, timeout=10).json()
    assert JPEG_BASELINE not in before
    proposed = [(CTImageStorage, JPEG_BASELINE), (CTImageStorage, EXPLICIT)]
    assoc = _associate(server, proposed)           # the contexts of the current list are built and kept
    assoc.release()
    try:
        assert requests.put(url, json=[EXPLICIT, JPEG_BASELINE], timeout=10).status_code == 200
        time.sleep(2.5)                             # runtime settings reach the DICOM processes within 2 s
        assoc = _associate(server, proposed)
        accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
        assoc.release()
        assert accepted == {EXPLICIT, JPEG_BASELINE}
    finally:
        assert requests.put(url, json=before, timeout=10).status_code == 200
        time.sleep(2.5)
    assoc = _associate(server, proposed)
    accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
    assoc.release()
    assert accepted == {EXPLICIT}


def test_unknown_sop_class_is_refused_by_default(server):
    assoc = _associate(server, [("1.2.3.4.5.6.7", EXPLICIT), Verification])
    assert assoc.is_established
    assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [Verification]
    assoc.release()


@pytest.mark.parametrize("sop_class", ["1.2.840.10008.5.1.4.1.1.6",        # Ultrasound Image Storage (1993, retired)
                                       "1.2.840.10008.5.1.4.1.1.88.1",     # Text SR Storage - Trial
                                       "1.2.840.10008.5.1.4.1.1.501.1"])   # DICOS CT Image Storage
def test_storage_classes_dcmtk_knows_and_pynetdicom_does_not_are_stored(server, sop_class):
    """Real Orthanc accepts them (DCMTK's list); a retired ultrasound file of the sample corpus could not be sent
    to us."""
    ds = make_dataset(SOPClassUID=sop_class, SOPInstanceUID=generate_uid())
    assoc = _associate(server, [(sop_class, EXPLICIT)])
    assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [sop_class]
    try:
        assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    found = requests.post(server.url + "/tools/lookup", data=ds.SOPInstanceUID, timeout=10).json()
    assert [item["Type"] for item in found] == ["Instance"]


def test_dataset_not_matching_the_request(server):
    ds = make_dataset(SOPInstanceUID=generate_uid())
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = generate_uid()   # not the dataset's
    request.Priority = 2
    from pynetdicom.dsutils import encode

    request.DataSet = io.BytesIO(encode(ds, False, True))
    rsp = _send_raw(assoc, request)
    assoc.release()
    assert rsp.Status == 0xA900


def test_malformed_dataset_stores_nothing_and_server_goes_on(server):
    before = len(_instances(server))
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = uid = generate_uid()
    request.Priority = 2
    garbage = (struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", len(CTImageStorage)) + CTImageStorage.encode()
               + struct.pack("<HH2sH", 0x0008, 0x0018, b"UI", len(uid) + len(uid) % 2) + uid.encode()
               + b"\x00" * (len(uid) % 2) + struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", 200) + b"short")
    request.DataSet = io.BytesIO(garbage)
    rsp = _send_raw(assoc, request)
    assoc.release()
    assert rsp.Status in (0xC000, 0xA700)
    assert len(_instances(server)) == before
    assert _store(server, SOPInstanceUID=generate_uid())[0] == 0x0000


def test_abort_mid_transfer_stores_nothing(server):
    before = len(_instances(server))
    ds = make_dataset(SOPInstanceUID=generate_uid(), Rows=256, Columns=256,
                      PixelData=b"\x01\x02" * 256 * 256)
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    from pynetdicom.dsutils import encode

    request.DataSet = io.BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = message.encode_msg(assoc.accepted_contexts[0].context_id, 16384)
    for _ in range(4):   # the command and a few fragments of the dataset, then the abort
        assoc.dul.send_pdu(next(fragments))
    time.sleep(0.3)
    assoc.abort()
    time.sleep(0.5)
    assert len(_instances(server)) == before
    assert _store(server, SOPInstanceUID=generate_uid())[0] == 0x0000


def test_parallel_associations(server):
    results = []

    def send():
        results.append(_store(server, SOPInstanceUID=generate_uid())[0])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [0] * 6


# -- C-FIND ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study(server):
    """A study with two CT instances in one series and an MR series, its own patient."""
    study_uid = "1.2.826.0.1.3680043.10.7." + str(uuid.uuid4().int)[:20]
    patient = "FIND-" + study_uid[-8:]
    common = dict(PatientID=patient, PatientName="Find^Me", StudyInstanceUID=study_uid,
                  StudyDescription="Knee", AccessionNumber="ACC42")
    for n, (series, modality) in enumerate([("1", "CT"), ("1", "CT"), ("2", "MR")]):
        status, _ds = _store(server, SOPInstanceUID=generate_uid(), SeriesInstanceUID=f"{study_uid}.{series}",
                             Modality=modality, InstanceNumber=str(n + 1), **common)
        assert status == 0
    return study_uid, patient


def test_find_study_with_computed_tags(server, study):
    study_uid, patient = study
    answers, final = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                           StudyInstanceUID=study_uid, PatientName="", ModalitiesInStudy="",
                           NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="",
                           StudyDescription="", InstitutionName="")
    assert final == 0x0000
    [answer] = answers
    assert answer.ModalitiesInStudy == ["CT", "MR"]
    assert answer.NumberOfStudyRelatedSeries == 2
    assert answer.NumberOfStudyRelatedInstances == 3
    assert answer.StudyDescription == "Knee"
    assert answer.InstitutionName in ("", None)
    assert answer.QueryRetrieveLevel == "STUDY"
    assert answer.RetrieveAETitle == "ORTHANC"
    assert answer.SpecificCharacterSet == "ISO_IR 100"


def test_find_patient_root_each_level(server, study):
    study_uid, patient = study
    model = PatientRootQueryRetrieveInformationModelFind
    assert len(_find(server, model, QueryRetrieveLevel="PATIENT", PatientID=patient,
                     NumberOfPatientRelatedInstances="")[0]) == 1
    assert len(_find(server, model, QueryRetrieveLevel="STUDY", PatientID=patient, StudyInstanceUID="")[0]) == 1
    series, _ = _find(server, model, QueryRetrieveLevel="SERIES", PatientID=patient, StudyInstanceUID=study_uid,
                      SeriesInstanceUID="", Modality="MR", NumberOfSeriesRelatedInstances="")
    assert [s.NumberOfSeriesRelatedInstances for s in series] == [1]
    images, _ = _find(server, model, QueryRetrieveLevel="IMAGE", StudyInstanceUID=study_uid,
                      SeriesInstanceUID=f"{study_uid}.1", SOPInstanceUID="")
    assert len(images) == 2


def test_find_answers_the_study_s_copy_of_the_patient_tags_as_orthanc(server):
    """A study keeps a copy of the patient's main tags as its first instance had them; Orthanc answers that copy
    at the study, series and image levels, not the patient's tags, which came from another study's instance
    (the sample corpus, beside real Orthanc 1.10.1: studies without PatientName answered the name another
    study of the empty PatientID had)."""
    patient = f"COPY-{uuid.uuid4().hex[:8]}"
    first, second = generate_uid(), generate_uid()
    files = [make_dicom(PatientID=patient, PatientSex="F", PatientBirthDate="19800101", StudyInstanceUID=first,
                        SeriesInstanceUID=f"{first}.1"),
             make_dicom(PatientID=patient, PatientSex=None, PatientBirthDate=None, PatientName=None,
                        StudyInstanceUID=second, SeriesInstanceUID=f"{second}.1")]
    model = StudyRootQueryRetrieveInformationModelFind
    with orthanc_server(extra={"DicomAlwaysAllowFind": True}) as orthanc:
        for data in files:
            assert requests.post(server.url + "/instances", data=data, timeout=30).status_code == 200
            assert requests.post(orthanc.url + "/instances", data=data, timeout=30).status_code == 200
        for level, below in (("STUDY", {}), ("SERIES", {"SeriesInstanceUID": ""}), ("IMAGE", {"SOPInstanceUID": ""})):
            query = dict(QueryRetrieveLevel=level, StudyInstanceUID="", PatientID=patient, PatientName="",
                         PatientSex="", PatientBirthDate="", **below)
            answers = {}
            for name, srv in (("ours", server), ("orthanc", orthanc)):
                found, final = _find(srv, model, **query)
                assert final == 0x0000
                answers[name] = {str(a.StudyInstanceUID): tuple(str(a.get(k) or "") for k in
                                                                 ("PatientName", "PatientSex", "PatientBirthDate"))
                                 for a in found}
            assert answers["ours"] == answers["orthanc"], level
            assert answers["ours"] == {first: ("Doe^John", "F", "19800101"), second: ("", "", "")}, level
    # The requested tags of /tools/find read the same copy
    body = {"Level": "Study", "Query": {"PatientID": patient}, "Expand": True, "RequestedTags": ["PatientSex"]}
    studies = requests.post(server.url + "/tools/find", json=body, timeout=30).json()
    sexes = {s["MainDicomTags"]["StudyInstanceUID"]: s["RequestedTags"].get("PatientSex") for s in studies}
    assert sexes == {first: "F", second: None}


def test_find_reads_other_tags_and_sequences_from_the_oldest_instance_as_orthanc(server):
    """Tags that are not main tags are read from a file: Orthanc's C-FIND reads the first instance of the
    first series (1.10.1, seen on the sample corpus: a study of a CR and a PR answered the CR's PatientAge)."""
    study = generate_uid()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C1", "99X", "first"
    files = [make_dicom(StudyInstanceUID=study, SeriesInstanceUID=f"{study}.2", PatientID="OLDEST", PatientAge="030Y",
                        ProcedureCodeSequence=[code]),
             make_dicom(StudyInstanceUID=study, SeriesInstanceUID=f"{study}.1", PatientID="OLDEST", PatientAge="031Y"),
             make_dicom(StudyInstanceUID=study, SeriesInstanceUID=f"{study}.2", PatientID="OLDEST", PatientAge="032Y")]
    model = StudyRootQueryRetrieveInformationModelFind
    with orthanc_server(extra={"DicomAlwaysAllowFind": True}) as orthanc:
        for data in files:
            assert requests.post(server.url + "/instances", data=data, timeout=30).status_code == 200
            assert requests.post(orthanc.url + "/instances", data=data, timeout=30).status_code == 200
        answers = {}
        for name, srv in (("ours", server), ("orthanc", orthanc)):
            for level in ("STUDY", "SERIES"):
                found, final = _find(srv, model, QueryRetrieveLevel=level, StudyInstanceUID=study, SeriesInstanceUID="",
                                     PatientAge="", ProcedureCodeSequence=[])
                assert final == 0x0000
                answers[name, level] = sorted((str(a.SeriesInstanceUID or ""), str(a.PatientAge),
                                               [str(c.CodeMeaning) for c in a.get("ProcedureCodeSequence", [])])
                                              for a in found)
    assert answers["ours", "STUDY"] == answers["orthanc", "STUDY"] == [(f"{study}.2", "030Y", ["first"])]
    assert answers["ours", "SERIES"] == answers["orthanc", "SERIES"] == [(f"{study}.1", "031Y", []),
                                                                         (f"{study}.2", "030Y", ["first"])]


def test_find_value_ends_at_its_first_nul_as_dcmtk_reads_it(server, study):
    """Orthanc (DCMTK) reads a query value as a C string: it ends at a NUL; PostgreSQL refused it (0xC000)."""
    study_uid, patient = study
    model = StudyRootQueryRetrieveInformationModelFind
    answers, final = _find(server, model, QueryRetrieveLevel="STUDY", PatientID=patient,
                           StudyDescription="Knee\x00junk")
    assert (final, len(answers)) == (0x0000, 1)
    answers, final = _find(server, model, QueryRetrieveLevel="STUDY", PatientID=patient, StudyDescription="Kn\x00*")
    assert (final, len(answers)) == (0x0000, 0)


def test_find_ignores_file_meta_elements_as_orthanc_scu_sends_them(server, study):
    """Orthanc's own SCU puts MediaStorageSOPClassUID/MediaStorageSOPInstanceUID in an instance-level query;
    Orthanc 1.10.1 as SCP neither matches nor answers them (seen live): they matched nothing here, and a
    wildcard failed the request."""
    study_uid, _ = study
    model = StudyRootQueryRetrieveInformationModelFind
    for value in ("1.2.3.4", "*", ""):
        images, final = _find(server, model, ((0x00020002, "UI", "1.2.840.10008.5.1.4.1.1.2"),
                                              (0x00020003, "UI", value)),
                              QueryRetrieveLevel="IMAGE", StudyInstanceUID=study_uid,
                              SeriesInstanceUID=f"{study_uid}.1", SOPInstanceUID="")
        assert final == 0x0000 and len(images) == 2, value
        assert all(0x00020003 not in image and 0x00020002 not in image for image in images)


def test_find_answers_a_name_with_empty_trailing_groups_as_stored(server):
    """Orthanc answers "Wang^XiaoDong=^=" as stored; pydicom's PersonName dropped the last "="."""
    patient = "PN-" + uuid.uuid4().hex[:8]
    ds = make_dataset(PatientID=patient, SOPInstanceUID=generate_uid())
    ds.add_new(0x00100010, "PN", b"Wang^XiaoDong=^=")   # bytes: written as they are
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    # DCMTK's findscu prints the value as received (pydicom, reading the answer, drops the "=" too)
    run = subprocess.run(["findscu", "-v", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=STUDY",
                          "-k", f"PatientID={patient}", "-k", "PatientName",
                          "127.0.0.1", str(server.dicom_port)], capture_output=True, timeout=30)
    assert b"(0010,0010) PN [Wang^XiaoDong=^=]" in run.stderr, run.stderr.decode(errors="replace")
    # our SCU keeps the answer as received too (pynetdicom's logging of identifiers converted it)
    self_modality = {"AET": "ORTHANC", "Host": "127.0.0.1", "Port": server.dicom_port}
    assert requests.put(server.url + "/modalities/self", json=self_modality, timeout=10).ok
    try:
        query = requests.post(server.url + "/modalities/self/query", timeout=30,
                              json={"Level": "Study", "Query": {"PatientID": patient, "PatientName": ""}}).json()
        answers = requests.get(server.url + f"/queries/{query['ID']}/answers?expand&simplify", timeout=10).json()
        assert [a["PatientName"] for a in answers] == ["Wang^XiaoDong=^="]
    finally:
        requests.delete(server.url + "/modalities/self", timeout=10)


def test_default_encoding_changed_over_rest_applies_to_the_next_find(server, study):
    """Orthanc's single process answers in the new encoding at once; our DICOM processes read the change
    through the stamp (they cached the old value for 2 s before)."""
    model = StudyRootQueryRetrieveInformationModelFind
    for _ in range(4):   # the processes of the DICOM server have the current encoding cached
        assert _find(server, model, QueryRetrieveLevel="STUDY", StudyInstanceUID=study[0])[0][0] \
            .SpecificCharacterSet == "ISO_IR 100"
    assert requests.put(server.url + "/tools/default-encoding", data="Utf8", timeout=10).ok
    try:
        for _ in range(4):
            answers, _ = _find(server, model, QueryRetrieveLevel="STUDY", StudyInstanceUID=study[0])
            assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    finally:
        requests.put(server.url + "/tools/default-encoding", data="Latin1", timeout=10)


@pytest.fixture
def charset_patient(server):
    """A patient whose names need more than ASCII, stored in UTF-8; DefaultEncoding back to Latin1 after."""
    patient = "CS-" + uuid.uuid4().hex[:8]
    ds = make_dataset(PatientID=patient, SOPInstanceUID=generate_uid(), StudyDescription="Étude")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen=山田^太郎"
    assoc = _associate(server, [(CTImageStorage, EXPLICIT)])
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    yield patient
    requests.put(server.url + "/tools/default-encoding", data="Latin1", timeout=10)


def _raw_answers(server, monkeypatch, *elements, **keys) -> list[Dataset]:
    # pynetdicom converts each answer element when it logs the identifiers: the bytes as sent are wanted here
    monkeypatch.setattr(pynetdicom._config, "LOG_RESPONSE_IDENTIFIERS", False)
    answers, final = _find(server, StudyRootQueryRetrieveInformationModelFind, elements, **keys)
    assert final == 0x0000
    return answers


def test_find_query_without_character_set_is_read_in_the_default_encoding(server, charset_patient, monkeypatch):
    """Orthanc reads such a query in its DefaultEncoding (pydicom read Latin-1 whatever the encoding)."""
    query = ((0x00100010, "PN", "*\u00fcrg*".encode()),)    # UTF-8 bytes, no SpecificCharacterSet
    assert _raw_answers(server, monkeypatch, *query, QueryRetrieveLevel="STUDY", PatientID=charset_patient) == []
    assert requests.put(server.url + "/tools/default-encoding", data="Utf8", timeout=10).ok
    [answer] = _raw_answers(server, monkeypatch, *query, QueryRetrieveLevel="STUDY", PatientID=charset_patient)
    assert answer.get_item(0x00080005).value.strip() == b"ISO_IR 192"


@pytest.mark.parametrize(("encoding", "charset", "name", "description"), [
    ("Latin1", b"ISO_IR 100", b"M\xfcller^J\xfcrgen=^", b"\xc9tude"),   # what Latin-1 cannot hold is dropped
    ("Ascii", b"ISO_IR 6", b"Mller^Jrgen=^", b"tude"),
    # Orthanc (DCMTK): back to ASCII before each delimiter, JIS X 0212 for the accented letters
    ("JapaneseKanji", b"ISO 2022 IR 87",
     b"M\x1b$(D+d\x1b(Bller^J\x1b$(D+d\x1b(Brgen=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", b"\x1b$(D*1\x1b(Btude"),
    ("Japanese", b"ISO_IR 13", b"Mller^Jrgen=\x8eR\x93c^\x91\xbe\x98Y", b"tude"),   # Shift-JIS, as Orthanc
    ("Windows1251", None, b"Mller^Jrgen=^", b"tude"),    # no DICOM term: Orthanc declares none
])
def test_find_answers_in_the_default_encoding_as_orthanc_writes_them(server, charset_patient, monkeypatch,
                                                                     encoding, charset, name, description):
    """Values as a helper saw Orthanc 1.10.1 write them with each DefaultEncoding (pydicom failed the whole
    C-FIND with JapaneseKanji, wrote "?" for kanji with Japanese, Latin-1 bytes under ISO_IR 6)."""
    assert requests.put(server.url + "/tools/default-encoding", data=encoding, timeout=10).ok
    [answer] = _raw_answers(server, monkeypatch, QueryRetrieveLevel="STUDY", PatientID=charset_patient,
                            PatientName="", StudyDescription="")
    declared = answer.get_item(0x00080005)
    assert (declared.value.strip() if declared is not None else None) == charset
    assert answer.get_item(0x00100010).value.rstrip(b" ") == name          # padded to an even length
    assert answer.get_item(0x00081030).value.rstrip(b" ") == description


def test_find_modalities_in_study_constraint(server, study):
    study_uid, _ = study
    answers, _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                       StudyInstanceUID=study_uid, ModalitiesInStudy="MR")
    assert len(answers) == 1
    for pattern, count in (("M*", 1), ("?R", 1), ("X*", 0), ("m*", 0)):    # case-sensitive, as Orthanc's C-FIND
        answers, _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                           StudyInstanceUID=study_uid, ModalitiesInStudy=pattern)
        assert len(answers) == count, pattern


def test_find_case_rules(server, study):
    # Orthanc 1.10.1 (live): PN folds case, every other VR (identifiers included) does not
    study_uid, patient = study
    model = StudyRootQueryRetrieveInformationModelFind
    assert len(_find(server, model, QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid,
                     PatientName="find*")[0]) == 1
    assert _find(server, model, QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid,
                 StudyDescription="KNEE")[0] == []
    assert _find(server, model, QueryRetrieveLevel="STUDY", AccessionNumber="acc42")[0] == []


def test_find_without_level_fails(server, study):
    answers, final = _find(server, StudyRootQueryRetrieveInformationModelFind, StudyInstanceUID=study[0])
    assert answers == [] and final == 0xC000


def test_find_wildcard_on_uid_fails(server, study):
    _answers, final = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                            StudyInstanceUID="*")
    assert final == 0xC000


def test_find_not_allowed_aborts(server, study):
    assoc = _associate(server, [StudyRootQueryRetrieveInformationModelFind], aet="NOECHO")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    list(assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind))
    assert _aborted(assoc)


@pytest.mark.parametrize("model", [StudyRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelGet])
def test_move_and_get_not_allowed_abort_quietly(server, study, model):
    """Orthanc aborts the association of a caller that may not retrieve; the refusal is one warning in the
    log, not a handler failure (pynetdicom logged "The C-MOVE request handler must yield ..." and a
    traceback for each refused C-MOVE)."""
    log = server.tmp / "server.log"
    start = log.stat().st_size
    assoc = _associate(server, [model], aet="NOECHO")
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study[0]
    if model is StudyRootQueryRetrieveInformationModelMove:
        list(assoc.send_c_move(identifier, "SCU", model))
    else:
        list(assoc.send_c_get(identifier, model))
    assert _aborted(assoc)
    kind = "Move" if model is StudyRootQueryRetrieveInformationModelMove else "Get"
    deadline = time.time() + 5
    while f"Rejected {kind} request".encode() not in log.read_bytes()[start:] and time.time() < deadline:
        time.sleep(0.05)
    written = log.read_bytes()[start:].decode(errors="replace")
    assert f"Rejected {kind} request from remote DICOM modality with AET 'NOECHO'" in written
    assert "Traceback" not in written and "must yield" not in written


def test_dcmtk_findscu(server, study):
    run = subprocess.run(["findscu", "-v", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=STUDY",
                          "-k", f"StudyInstanceUID={study[0]}", "-k", "NumberOfStudyRelatedInstances",
                          "127.0.0.1", str(server.dicom_port)], capture_output=True, timeout=30)
    assert b"(0020,1208) IS [3 ]" in run.stderr and b"Final Find Response (Success)" in run.stderr


# -- C-MOVE and C-GET -----------------------------------------------------------------------------------------

def _move_answers(server, destination, **keys) -> list[tuple[Dataset, Dataset | None]]:
    assoc = _associate(server, [StudyRootQueryRetrieveInformationModelMove])
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    answers = list(assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove))
    assoc.release()
    return answers


def _move(server, destination, **keys):
    return _move_answers(server, destination, **keys)[-1][0]


def test_move_study_to_known_modality(server, study, modality):
    modality.received.clear()
    modality.raw.clear()
    modality.pdu_lengths.clear()
    modality.originators.clear()
    answers = _move_answers(server, "SCU", QueryRetrieveLevel="STUDY", StudyInstanceUID=study[0])
    final = answers[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 3
    # As Orthanc 1.10.1 answers movescu: a Pending after each sub-operation but the last, whose answer is the
    # final one (pynetdicom sent a Pending with 0 remaining first)
    assert [(a.Status, a.NumberOfRemainingSuboperations) for a, _ds in answers[:-1]] == [(0xFF00, 2), (0xFF00, 1)]
    assert len(modality.received) == 3
    # The C-STOREs name the C-MOVE's caller and its message as their originator, as Orthanc's (pynetdicom
    # named our own AET)
    assert modality.originators == [("SCU", 1)] * 3
    # The sub-operations' association advertises MaximumPduLength (16384 by default), as Orthanc's does,
    # not pynetdicom's own default (16382)
    assert modality.pdu_lengths == [16384]
    # Sent as stored: the dataset bytes of each file, not a re-encoding of them
    for ds, raw in zip(modality.received, modality.raw, strict=True):
        found = requests.post(server.url + "/tools/lookup", data=ds.SOPInstanceUID, timeout=10).json()
        stored = requests.get(server.url + f"/instances/{found[0]['ID']}/file", timeout=10).content
        assert stored.endswith(raw) and len(stored) - len(raw) < 400


def test_move_decodes_a_compressed_instance_for_a_destination_that_takes_none(server, modality):
    """The destination accepts CT in uncompressed syntaxes only: the JPEG 2000 instance goes decoded, still the
    same instance (TranscodeDicomProtocol and the modality's AllowTranscoding default to true, as in Orthanc)."""
    from archive.dicom.transcode import J2K_LOSSLESS, file_transcode

    study_uid, sop = "1.2.826.0.1.3680043.10.7.9901", "1.2.826.0.1.3680043.10.7.9901.1.1"
    pixels = bytes(range(16)) * 512
    data = file_transcode(make_dicom(StudyInstanceUID=study_uid, SeriesInstanceUID=f"{study_uid}.1", SOPInstanceUID=sop,
                                     Rows=64, Columns=64, PixelData=pixels), syntax=J2K_LOSSLESS)
    assert requests.post(server.url + "/instances", data=data, timeout=10).status_code == 200
    modality.received.clear()
    final = _move(server, "SCU", QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid)
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    [ds] = modality.received
    assert ds.SOPInstanceUID == sop and ds.PixelData == pixels


def test_move_of_a_stored_raw_dataset(server, modality):
    """A file stored without preamble nor file meta group (as Orthanc stores them too) goes in the syntax it
    was read in: the sub-operation failed, pynetdicom finding no transfer syntax to choose a context by."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    study_uid, sop = "1.2.826.0.1.3680043.10.7.9902", "1.2.826.0.1.3680043.10.7.9902.1.1"
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, True
    write_dataset(raw, make_dataset(StudyInstanceUID=study_uid, SeriesInstanceUID=f"{study_uid}.1", SOPInstanceUID=sop))
    assert requests.post(server.url + "/instances", data=raw.getvalue(), timeout=10).status_code == 200
    modality.received.clear()
    final = _move(server, "SCU", QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid)
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    assert [ds.SOPInstanceUID for ds in modality.received] == [sop]


def test_move_to_unknown_destination(server, study):
    """Orthanc 1.10.1 (seen live) fails it as any other C-MOVE failure, 0xC000 with zero counts."""
    final = _move(server, "NOWHERE", QueryRetrieveLevel="STUDY", StudyInstanceUID=study[0])
    assert final.Status == 0xC000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations,
            final.NumberOfWarningSuboperations) == (0, 0, 0)


def test_move_to_a_destination_that_is_down(server, study):
    """A configured destination that does not answer: Orthanc's 0xC000 with zero counts; pynetdicom's 0xA801
    made movescu say 'move destination unknown' of a known one."""
    final = _move(server, "NOECHO", QueryRetrieveLevel="STUDY", StudyInstanceUID=study[0])
    assert final.Status == 0xC000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations,
            final.NumberOfWarningSuboperations) == (0, 0, 0)


def test_move_lists_the_instances_that_failed(server, modality):
    """The destination takes CT only: the MR instance fails, and the final answer names it (the list was
    empty: a client could not retry what failed)."""
    study_uid = "1.2.826.0.1.3680043.10.7." + str(uuid.uuid4().int)[:20]
    mr = f"{study_uid}.2.1"
    for sop, sop_class in ((f"{study_uid}.1.1", CTImageStorage), (mr, "1.2.840.10008.5.1.4.1.1.4")):
        data = make_dicom(StudyInstanceUID=study_uid, SeriesInstanceUID=sop.rsplit(".", 1)[0], SOPInstanceUID=sop,
                          SOPClassUID=sop_class)
        assert requests.post(server.url + "/instances", data=data, timeout=10).status_code == 200
    final, identifier = _move_answers(server, "SCU", QueryRetrieveLevel="STUDY", StudyInstanceUID=study_uid)[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (1, 1)
    assert identifier.FailedSOPInstanceUIDList == mr


@pytest.mark.parametrize("keys", [dict(QueryRetrieveLevel="STUDY", StudyInstanceUID="9.9.9.9"),   # unknown
                                  dict(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3*"),    # wildcard UID
                                  # wildcards are never matched: they would send the whole archive
                                  dict(QueryRetrieveLevel="PATIENT", PatientID="*"),
                                  dict(QueryRetrieveLevel="PATIENT", PatientID="FIND-?*"),
                                  dict(QueryRetrieveLevel="STUDY", AccessionNumber="ACC*", StudyInstanceUID=""),
                                  dict(QueryRetrieveLevel="IMAGE", StudyInstanceUID="1.2.3")])    # no SOP UID
def test_move_that_fails_answers_as_orthanc(server, keys):
    """Orthanc's MoveScp answers any failure 0xC000 with the sub-operation counts at zero (real Orthanc 1.10.1,
    movescu), not pynetdicom's 0xC514 without counts."""
    final = _move(server, "SCU", **keys)
    assert final.Status == 0xC000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations,
            final.NumberOfWarningSuboperations) == (0, 0, 0)


def test_move_of_a_list_sends_what_it_finds(server, study, modality):
    """Each value of a list looked up exactly, an unknown one skipped, as Orthanc's C-MOVE (C-GET refuses it)."""
    modality.received.clear()
    final = _move(server, "SCU", QueryRetrieveLevel="SERIES", SeriesInstanceUID=[f"{study[0]}.2", "9.9.9.9"])
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    assert [ds.SeriesInstanceUID for ds in modality.received] == [f"{study[0]}.2"]


def test_move_study_by_accession_number(server, modality):
    """At study level a non-empty AccessionNumber is the key, as Orthanc's LookupIdentifiers (Ambra's SCU)."""
    study_uid = "1.2.826.0.1.3680043.10.7." + str(uuid.uuid4().int)[:20]
    accession = "ACC-" + study_uid[-10:]
    status, _ds = _store(server, SOPInstanceUID=generate_uid(), StudyInstanceUID=study_uid,
                         SeriesInstanceUID=f"{study_uid}.1", AccessionNumber=accession)
    assert status == 0
    modality.received.clear()
    final = _move(server, "SCU", QueryRetrieveLevel="STUDY", AccessionNumber=accession, StudyInstanceUID="")
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    assert [ds.StudyInstanceUID for ds in modality.received] == [study_uid]


def test_move_and_lookup_match_patient_ids_exactly(server, modality):
    """"1234", "_1234", "%1234", "A1234" and "a1234" are five patients. Orthanc 1.10.1 (movescu and
    /tools/lookup on the corpus, live) matched identifiers through its normalised DicomIdentifiers (case, "_",
    "%", outer blanks and non-ASCII ignored), so a C-MOVE of one sent the others' images too; 1.12.11 fixed
    that for /tools/lookup (its NEWS), through the lookup its C-MOVE and C-GET share: we keep exact matching,
    as DICOM's unique keys ask, everywhere."""
    base = str(uuid.uuid4().int)[:10]
    studies = {}
    for patient in (base, f"_{base}", f"%{base}", f"A{base}", f"a{base}"):
        study_uid = "1.2.826.0.1.3680043.10.7." + str(uuid.uuid4().int)[:20]
        status, _ds = _store(server, SOPInstanceUID=generate_uid(), StudyInstanceUID=study_uid,
                             SeriesInstanceUID=f"{study_uid}.1", PatientID=patient)
        assert status == 0
        studies[patient] = study_uid
    for patient, study_uid in studies.items():
        modality.received.clear()
        final = _move(server, "SCU", QueryRetrieveLevel="PATIENT", PatientID=patient)
        assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1, patient
        assert [ds.StudyInstanceUID for ds in modality.received] == [study_uid]
        found = requests.post(server.url + "/tools/lookup", data=patient, timeout=10).json()
        assert [f["Type"] for f in found] == ["Patient"], patient


def test_get_that_fails_answers_as_orthanc_and_the_association_releases(server):
    """0xC000, the counts at zero and no identifier, as Orthanc's GetScp: a failure answer with a
    FailedSOPInstanceUIDList (pynetdicom's) made DCMTK's getscu fail the release that follows."""
    run = subprocess.run(["getscu", "-d", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=STUDY",
                          "-k", "StudyInstanceUID=9.9.9", "127.0.0.1", str(server.dicom_port)],
                         capture_output=True, timeout=30)
    out = run.stdout + run.stderr
    assert b"DIMSE Status                  : 0xc000" in out, out[-2000:]
    assert b"Failed Suboperations          : 0" in out
    assert b"Release Failed" not in out and b"Releasing Association" in out


@pytest.mark.parametrize("name", ["1.2.840.10008.1.2.2.dcm", "1.2.840.10008.1.2.4.51.dcm"])
def test_getscu_gets_big_endian_and_12_bit_jpeg_in_little_endian_as_from_orthanc(server, tmp_path, name):
    """DCMTK's getscu accepts the uncompressed syntaxes, little endian first: real Orthanc 1.10.1 sends these
    files in explicit little endian; we sent nothing (pynetdicom does not convert big endian, and 12-bit JPEG
    was not decoded for a transcoding)."""
    data = sample_path(f"TransferSyntaxes/{name}").read_bytes()
    study = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
    received = {}
    with orthanc_server(extra={"DicomAlwaysAllowGet": True}) as orthanc:
        for label, srv in (("ours", server), ("orthanc", orthanc)):
            assert requests.post(srv.url + "/instances", data=data, timeout=30).status_code == 200
            folder = tmp_path / label
            folder.mkdir()
            run = subprocess.run(["getscu", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=STUDY",
                                  "-k", f"StudyInstanceUID={study}", "-od", str(folder), "127.0.0.1",
                                  str(srv.dicom_port)], capture_output=True, timeout=60)
            assert run.returncode == 0, run.stderr[-2000:]
            received[label] = [(str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID))
                               for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in folder.iterdir())]
    assert received["ours"] == received["orthanc"] == [(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID),
                                                        EXPLICIT)]


def _get(server, **keys) -> tuple[list, list[Dataset]]:
    """C-GET statuses and the instances received."""
    received = []
    ae = AE(ae_title="SCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [EXPLICIT])

    def on_store(event):
        received.append(event.dataset)
        return 0x0000

    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="ORTHANC",
                         ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    statuses = [s for s, _ds in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)]
    assoc.release()
    return statuses, received


def test_get_series(server, study):
    statuses, received = _get(server, QueryRetrieveLevel="SERIES", SeriesInstanceUID=f"{study[0]}.1")
    assert statuses[-1].Status == 0x0000
    assert len(received) == 2


def test_get_of_a_list_with_an_unknown_value_fails(server, study):
    """As Orthanc's GetRequestHandler ("Cannot locate resource"); C-MOVE sends what it finds (tested above)."""
    statuses, received = _get(server, QueryRetrieveLevel="SERIES", SeriesInstanceUID=[f"{study[0]}.1", "9.9.9.9"])
    assert statuses[-1].Status == 0xC000 and received == []
    statuses, received = _get(server, QueryRetrieveLevel="SERIES", SeriesInstanceUID=[f"{study[0]}.1", f"{study[0]}.2"])
    assert statuses[-1].Status == 0x0000 and len(received) == 3


# -- storage commitment ---------------------------------------------------------------------------------------

def test_storage_commitment_reports_on_a_new_association(server, study, modality):
    study_uid, _ = study
    images, _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="IMAGE",
                      StudyInstanceUID=study_uid, SeriesInstanceUID=f"{study_uid}.2", SOPInstanceUID="",
                      SOPClassUID="")
    known = images[0].SOPInstanceUID
    info = Dataset()
    info.TransactionUID = transaction = generate_uid()
    info.ReferencedSOPSequence = []
    for sop in (known, "1.2.3.404"):
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = sop
        info.ReferencedSOPSequence.append(item)
    modality.reports.clear()
    modality.pdu_lengths.clear()
    modality.calling.clear()
    assoc = _associate(server, [StorageCommitmentPushModel], called="Orthanc")
    status, _reply = assoc.send_n_action(info, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
    assoc.release()
    assert status.Status == 0x0000
    deadline = time.time() + 15
    while not modality.reports and time.time() < deadline:
        time.sleep(0.1)
    [(event_type, report)] = modality.reports
    assert event_type == 2   # some failures
    assert report.TransactionUID == transaction
    assert [i.ReferencedSOPInstanceUID for i in report.ReferencedSOPSequence] == [known]
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason) for i in report.FailedSOPSequence] == [("1.2.3.404", 0x0112)]
    assert modality.pdu_lengths == [16384]   # MaximumPduLength, on the report's association too
    # As Orthanc (compared with Orthanc 1.10.1): the report calls with the AET the request called, and it
    # carries no RetrieveAETitle
    assert modality.calling == ["Orthanc"] and "RetrieveAETitle" not in report
    # ... and the report is a job, as Orthanc's StorageCommitmentScpJob
    deadline = time.time() + 10
    while time.time() < deadline:
        jobs = [j for j in requests.get(server.url + "/jobs?expand", timeout=10).json()
                if j["Type"] == "StorageCommitmentScp" and j["Content"]["TransactionUid"] == transaction]
        if jobs and jobs[0]["State"] == "Success":
            break
        time.sleep(0.1)
    assert jobs[0]["State"] == "Success"
    assert jobs[0]["Content"] == {"CalledAet": "Orthanc", "Description": "", "RemoteAet": "SCU",
                                  "TransactionUid": transaction}


def test_a_report_of_a_transaction_we_did_not_ask_for_is_kept_as_orthanc_does(server):
    """Orthanc 1.10.1 answers such an N-EVENT-REPORT with success and shows the report, RemoteAET the
    reporter's (we answered 0x0110 and /storage-commitment/{uid} was 404)."""
    info = Dataset()
    info.TransactionUID = transaction = generate_uid()
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CTImageStorage, "1.2.3.4"
    info.ReferencedSOPSequence = [item]
    ae = AE(ae_title="SCU")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="ORTHANC",
                         ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
    status, _reply = assoc.send_n_event_report(info, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1")
    assoc.release()
    assert status.Status == 0x0000
    report = requests.get(f"{server.url}/storage-commitment/{transaction}", timeout=10).json()
    assert (report["Status"], report["RemoteAET"]) == ("Success", "SCU")
    assert report["Success"] == [{"SOPClassUID": CTImageStorage, "SOPInstanceUID": "1.2.3.4"}]


def test_a_storage_commitment_report_of_failures_only_has_an_empty_success_sequence():
    from archive.network.storage_commitment import commitment_report_dataset

    event_type, report = commitment_report_dataset("1.2.3", [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.404", 0x0112)])
    assert event_type == 2 and len(report.ReferencedSOPSequence) == 0 and len(report.FailedSOPSequence) == 1


def test_the_associations_of_all_processes_are_counted():
    """handle_store's sole_writer: only when the whole server (every process on the port) has one association."""
    import multiprocessing

    from archive.network.scp import DicomServer, _sole_association

    server = DicomServer.__new__(DicomServer)      # the counting alone, without a socket
    server.loads, server.slot, server.active = multiprocessing.Array("i", [1, 0, 0]), 0, 1

    class _Event:
        class assoc:
            _server = server

    assert server.associations_total() == 1 and _sole_association(_Event)
    server.loads[2] = 1      # another process serves an association too
    assert server.associations_total() == 2 and not _sole_association(_Event)
    server.loads = None      # a lone process (server_start in tests)
    assert server.associations_total() == 1 and _sole_association(_Event)


# -- C-FIND answers compared with real Orthanc (DCMTK findscu against Orthanc 1.10.1, 1.12.11's source) ----------

@pytest.fixture(scope="module")
def samples(server):
    """pydicom's CT_small (private GE tags), a Japanese name (ISO 2022 IR 87) and a raw dataset without
    preamble nor file meta, stored once."""
    from pydicom.data import get_charset_files, get_testdata_file
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    for path in (get_testdata_file("CT_small.dcm"), get_charset_files("chrH31.dcm")[0]):
        with open(path, "rb") as f:
            assert requests.post(server.url + "/instances", data=f.read(), timeout=10).status_code == 200
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, True
    write_dataset(raw, make_dataset(StudyInstanceUID="1.2.826.0.1.3680043.10.7.9903",
                                    SeriesInstanceUID="1.2.826.0.1.3680043.10.7.9903.1",
                                    SOPInstanceUID="1.2.826.0.1.3680043.10.7.9903.1.1"))
    assert requests.post(server.url + "/instances", data=raw.getvalue(), timeout=10).status_code == 200


CT_SMALL_SOP = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


def test_find_answers_private_tags_read_from_the_file(server, samples):
    """1.12.11 reads the tags the index lacks from the stored file (ResourceFinder), private ones included."""
    [answer], final = _find(server, StudyRootQueryRetrieveInformationModelFind,
                            ((0x00090010, "LO", ""), (0x00091001, "UN", b"")),
                            QueryRetrieveLevel="IMAGE", SOPInstanceUID=CT_SMALL_SOP)
    assert final == 0
    creator, value = answer[0x00090010].value, answer[0x00091001].value
    assert (creator if isinstance(creator, str) else creator.decode()).strip() == "GEMS_IDEN_01"
    assert (value if isinstance(value, str) else value.decode()).strip(" \x00") == "GE_GENESIS_FF"


def test_find_answers_tags_of_a_raw_dataset_from_its_file(server, samples):
    [answer], _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="IMAGE",
                        SOPInstanceUID="1.2.826.0.1.3680043.10.7.9903.1.1", SOPClassUID="", Rows="")
    assert answer.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and answer.Rows == make_dataset().Rows


def test_find_drops_the_characters_the_answer_charset_lacks(server, samples):
    """Orthanc converts UTF-8 to the answer's character set (ISO_IR 100) dropping what does not fit; pydicom
    alone would write a '?' for each."""
    [answer], _ = _find(server, PatientRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="PATIENT",
                        PatientID="H31EXAMPLE", PatientName="")
    assert str(answer.PatientName) == "Yamada^Tarou=^=^"


def test_find_instance_availability_and_retrieve_aet_as_orthanc(server, study, samples):
    study_uid, _ = study
    [at_study], _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                          StudyInstanceUID=study_uid, InstanceAvailability="", RetrieveAETitle="")
    assert at_study.InstanceAvailability in ("", None)   # computed for instances only (1.12.11)
    assert at_study.RetrieveAETitle in ("", None)        # asked for: answered empty, as Orthanc does
    [at_image], _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="IMAGE",
                          SOPInstanceUID=CT_SMALL_SOP, InstanceAvailability="")
    assert at_image.InstanceAvailability == "ONLINE" and at_image.RetrieveAETitle == "ORTHANC"


def test_find_sequence_key_with_an_item_is_answered(server, study):
    """A sequence with content is no constraint, but is answered (empty here: the resource has none)."""
    study_uid, _ = study
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    [answer], _ = _find(server, StudyRootQueryRetrieveInformationModelFind, QueryRetrieveLevel="STUDY",
                        StudyInstanceUID=study_uid, ReferencedStudySequence=[item])
    assert "ReferencedStudySequence" in answer and len(answer.ReferencedStudySequence) == 0


def test_findscu_gets_explicit_little_endian_as_from_orthanc(server, study):
    run = subprocess.run(["findscu", "-d", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=STUDY",
                          "-k", f"StudyInstanceUID={study[0]}", "127.0.0.1", str(server.dicom_port)],
                         capture_output=True, timeout=30)
    out = run.stdout + run.stderr
    assert b"Accepted Transfer Syntax: =LittleEndianExplicit" in out, out[-1500:]


def test_findscu_reads_private_tags_of_odd_length(server, samples):
    """DCMTK refuses a fragment of odd length ("DIMSE: Odd Fragment Length"): a private value read from the
    file ("GE_GENESIS_FF", 13 bytes, answered UN) is padded to an even length."""
    run = subprocess.run(["findscu", "-v", "-aet", "SCU", "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=IMAGE",
                          "-k", f"SOPInstanceUID={CT_SMALL_SOP}", "-k", "(0009,0010)", "-k", "(0009,1001)",
                          "127.0.0.1", str(server.dicom_port)], capture_output=True, timeout=30)
    out = (run.stdout + run.stderr).decode("latin-1")
    assert "Odd Fragment" not in out and "Final Find Response (Success)" in out, out[-1500:]
    def dcmtk_hex(text: bytes) -> str:    # how DCMTK prints a UN value
        return "\\".join(f"{b:02x}" for b in text)

    assert dcmtk_hex(b"GEMS_IDEN_01") in out and dcmtk_hex(b"GE_GENESIS_FF\x00") in out
