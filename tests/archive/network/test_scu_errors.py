"""Why a DIMSE request of our SCU got no answer, in DCMTK's words as Orthanc reports them: the DIMSE timeout
(pynetdicom aborts the association itself) or the peer aborting it (compared with real Orthanc in
tests/explorer/api/test_modalities_orthanc.py)."""

from __future__ import annotations

import threading
import time

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from archive.errors import NetworkProtocolError
from archive.network import scu
from archive.network.registry import Modality
from tests.live import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_then_abort():
    """An SCP whose C-ECHO waits 3 s (answering late), or aborts the association at once when the caller is
    ABORTME."""
    release = threading.Event()

    def echo(event):
        if event.assoc.requestor.ae_title == "ABORTME":
            event.assoc.abort()
            return 0x0000
        release.wait(3)
        return 0x0000

    ae = AE(ae_title="SLOW")
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_ECHO, echo)])
    yield port
    release.set()
    server.shutdown()


def test_a_dimse_timeout_is_no_data_available(slow_then_abort):
    params = scu.scu_parameters(modality=Modality(aet="SLOW", host="127.0.0.1", port=slow_then_abort), timeout=1)
    with pytest.raises(NetworkProtocolError) as raised:
        scu.echo(params)
    assert raised.value.details == ('DicomAssociation - C-ECHO to AET "SLOW": '
                                    "DIMSE No data available (timeout in non-blocking mode)")


def test_a_peer_aborting_is_peer_aborted(slow_then_abort):
    params = scu.scu_parameters(modality=Modality(aet="SLOW", host="127.0.0.1", port=slow_then_abort),
                                local_aet="ABORTME", timeout=5)
    with pytest.raises(NetworkProtocolError) as raised:
        scu.echo(params)
    assert raised.value.details == ('DicomAssociation - C-ECHO to AET "SLOW": '
                                    "Peer aborted Association (or never connected)")


def test_a_storage_commitment_report_that_cannot_be_sent_fails_its_job():
    """Orthanc's StorageCommitmentScpJob fails when the modality cannot be reached (ours only logged it)."""
    from jobs.kinds.dicom import storage_commitment_scp_job
    from jobs.models import Job

    job = Job(type="StorageCommitmentScp", parameters={
        "transaction_uid": "1.2.3", "references": [["1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"]], "remote_aet": "GONE",
        "called_aet": "ORTHANC", "host": "127.0.0.1", "port": free_port(), "timeout": 2, "tls": False})
    with pytest.raises(NetworkProtocolError) as raised:
        list(storage_commitment_scp_job(job))
    assert raised.value.details == 'DicomAssociation - connecting to AET "GONE": TCP Initialization Error: Connection refused'


def test_a_rejection_read_while_the_requestor_was_busy_is_still_a_rejection():
    """pynetdicom's requestor thread checks the socket before reading the answer; on a busy machine the DUL
    thread has by then read the A-ASSOCIATE-RJ and closed the socket, and pynetdicom reports an abort (CI saw
    "Peer aborted" where Orthanc says "DUL Association Rejected"). A slow EVT_REQUESTED handler, run on that
    thread between the request and the check, makes the busy machine certain."""
    ae = AE(ae_title="PACS")
    ae.add_supported_context(Verification)
    ae.require_called_aet = True
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        params = scu.scu_parameters(modality=Modality(aet="WRONG", host="127.0.0.1", port=port), timeout=5)
        with pytest.raises(NetworkProtocolError) as raised, \
                scu.association(params, [scu.build_context(Verification)],
                                handlers=[(evt.EVT_REQUESTED, lambda event: time.sleep(0.5))]):
            pass
    finally:
        server.shutdown()
    assert raised.value.details == 'DicomAssociation - connecting to AET "WRONG": DUL Association Rejected'
