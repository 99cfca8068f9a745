"""Stored files sent as stored (archive/network/encoded.py), over real associations on loopback."""

from __future__ import annotations

import io
import time

import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt

from archive.network.encoded import EncodedInstance, dataset_identifiers, encoded_instance, part10_meta
from tests.dicom_factory import make_dataset, make_dicom
from tests.live import free_port


def test_part10_meta_reads_the_file_meta_group():
    data = make_dicom(SOPInstanceUID="1.2.3.99")
    offset, values = part10_meta(data)
    assert values[0x00020002] == CTImageStorage
    assert values[0x00020003] == "1.2.3.99"
    assert values[0x00020010] == ExplicitVRLittleEndian
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == "1.2.3.99"
    assert data[offset:offset + 2] == b"\x08\x00"   # the dataset starts with group 0008


@pytest.mark.parametrize("data", [b"", b"junk" * 100, b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f"])
def test_part10_meta_refuses_what_is_not_a_part10_file(data):
    assert part10_meta(data) is None


def test_a_raw_dataset_is_decoded_with_the_syntax_it_was_read_in():
    data = make_dicom(SOPInstanceUID="1.2.3.98")
    offset, _values = part10_meta(data)
    sent = encoded_instance(data[offset:])   # no preamble, no file meta: a raw dataset
    assert not isinstance(sent, EncodedInstance) and sent.SOPInstanceUID == "1.2.3.98"
    # pynetdicom chooses the presentation context by it: without it, the sub-operation failed
    assert sent.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def _file(ds, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_c_store_names_the_datasets_uids_not_the_file_metas(syntax):
    """As Orthanc's SCU: real Orthanc's SCP refused (0xA900) a file whose file meta group names another SOP
    class than its dataset, sent under the meta's."""
    ds = make_dataset(SOPInstanceUID="1.2.3.97")
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"      # Secondary Capture; the dataset: CT
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.96"
    sent = encoded_instance(_file(ds, syntax))
    assert isinstance(sent, EncodedInstance) and sent.encoded_transfer_syntax == syntax
    assert (sent.encoded_sop_class, sent.encoded_sop_instance) == (CTImageStorage, "1.2.3.97")


def test_a_dataset_without_sop_uids_at_its_start_is_decoded():
    ds = make_dataset(SOPInstanceUID="1.2.3.95")
    del ds.SOPClassUID
    data = _file(ds, ExplicitVRLittleEndian)
    offset, _values = part10_meta(data)
    assert dataset_identifiers(data, offset, ExplicitVRLittleEndian) is None
    assert not isinstance(encoded_instance(data), EncodedInstance)


@pytest.fixture()
def store_scp(request):
    """A real storage SCP accepting the transfer syntaxes given by the test; records what it received."""
    received: list[tuple[str, bytes, pydicom.Dataset]] = []

    def start(syntaxes):
        ae = AE(ae_title="DEST")
        ae.add_supported_context(CTImageStorage, syntaxes)

        def on_store(event):
            received.append((str(event.context.transfer_syntax), event.request.DataSet.getvalue(), event.dataset))
            return 0x0000

        port = free_port()
        server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        request.addfinalizer(server.shutdown)
        return port

    return start, received


def _send(port: int, sent) -> int:
    ae = AE(ae_title="SRC")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="DEST")
    assert assoc.is_established
    try:
        return assoc.send_c_store(sent).Status
    finally:
        assoc.release()


def test_sent_as_stored_when_its_syntax_is_accepted(store_scp):
    start, received = store_scp
    data = make_dicom(SOPInstanceUID="1.2.3.100")
    status = _send(start([ExplicitVRLittleEndian]), encoded_instance(data))
    assert status == 0x0000
    syntax, raw, ds = received[0]
    assert syntax == ExplicitVRLittleEndian
    assert data.endswith(raw) and raw[:2] == b"\x08\x00"
    assert ds.SOPInstanceUID == "1.2.3.100"


def test_converted_when_only_another_syntax_is_accepted(store_scp):
    start, received = store_scp
    data = make_dicom(SOPInstanceUID="1.2.3.101")
    status = _send(start([ImplicitVRLittleEndian]), encoded_instance(data))
    assert status == 0x0000
    syntax, raw, ds = received[0]
    assert syntax == ImplicitVRLittleEndian
    assert not data.endswith(raw)          # re-encoded in implicit VR by pynetdicom
    assert ds.SOPInstanceUID == "1.2.3.101" and ds.PatientName == "Doe^John"


def test_sent_raw_in_small_pdus_and_with_pynetdicom_watching():
    """The raw send path to a peer taking 4 KB PDUs, and pynetdicom's path when a handler watches the PDUs:
    the peer receives the same bytes both ways."""
    received: list[bytes] = []
    dest = AE(ae_title="DEST")
    dest.maximum_pdu_size = 4096
    dest.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)

    def on_store(event):
        received.append(event.request.DataSet.getvalue())
        return 0x0000

    port = free_port()
    server = dest.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        data = make_dicom(SOPInstanceUID="1.2.3.102", PixelData=b"\x07\x00" * 50000)
        for watched in (False, True):
            ae = AE(ae_title="SRC")
            ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
            handlers = [(evt.EVT_PDU_SENT, lambda event: None)] if watched else []
            assoc = ae.associate("127.0.0.1", port, ae_title="DEST", evt_handlers=handlers)
            assert assoc.is_established and assoc.acceptor.maximum_length == 4096
            try:
                assert assoc.send_c_store(encoded_instance(data)).Status == 0x0000
            finally:
                assoc.release()
    finally:
        server.shutdown()
    assert len(received) == 2 and received[0] == received[1] and data.endswith(received[0])


def test_a_peer_that_drops_the_connection_mid_send_gives_an_empty_status():
    """The destination closes the connection at the first fragment: the C-STORE ends with no status (the
    sub-operation counts as failed), the association is over, nothing hangs."""
    ae = AE(ae_title="DEST")
    ae.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)

    def drop(event):
        if event.data[:1] == b"\x04":                  # the first P-DATA-TF
            event.assoc.dul.socket.socket.shutdown(2)    # SHUT_RDWR

    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_DATA_RECV, drop)])
    try:
        src = AE(ae_title="SRC")
        src.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        src.dimse_timeout = 10
        assoc = src.associate("127.0.0.1", port, ae_title="DEST")
        assert assoc.is_established
        data = make_dicom(SOPInstanceUID="1.2.3.103", PixelData=b"\x01\x00" * 4_000_000)   # 8 MB
        status = assoc.send_c_store(encoded_instance(data))
        assert "Status" not in status
        deadline = time.time() + 10
        while assoc.is_established and time.time() < deadline:
            time.sleep(0.05)
        assert not assoc.is_established
    finally:
        server.shutdown()
