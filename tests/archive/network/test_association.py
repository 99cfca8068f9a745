"""The faster receive path (archive/network/association.py) against pynetdicom's own encoding and decoding,
and over a real association with PDUs of several sizes."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.dimse_messages import C_ECHO_RQ, C_GET_RSP, C_MOVE_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage, Verification
from pynetdicom.transport import ThreadedAssociationServer

from archive.network.association import (
    FastAssociation,
    FastRequestHandler,
    _pdv_items,
    p_data_pieces,
    retrieve_response_command,
    store_request_command,
    store_response_command,
)
from tests.dicom_factory import make_dataset
from tests.network_pdus import associate_request


def _pynetdicom_command(primitive) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000, 0xB000])
@pytest.mark.parametrize("instance_uid", ["1.2.3", "1.2.34", None])
def test_store_response_is_encoded_as_pynetdicom_does(status, instance_uid):
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = CTImageStorage
    if instance_uid:
        rsp.AffectedSOPInstanceUID = instance_uid
    rsp.Status = status
    assert store_response_command(rsp) == _pynetdicom_command(rsp)


def _pdata_items(message, context_id: int, max_pdu: int) -> list[bytes]:
    """Encoded P-DATA-TF PDUs (as pynetdicom sends them) of a DIMSE message."""
    from pynetdicom.pdu import P_DATA_TF

    pdus = []
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdus.append(pdu.encode())
    return pdus


def _store_request(data: bytes, uid: str) -> C_STORE_RQ:
    request = C_STORE()
    request.MessageID = 3
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = uid
    request.Priority = 2
    request.DataSet = io.BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    return message


def _acceptor() -> FastAssociation:
    return FastAssociation(AE(ae_title="ORTHANC"), MODE_ACCEPTOR)


def test_pdv_items_must_fill_the_pdu():
    good = b"\x00\x00\x00\x04\x01\x02ab"
    assert [(cx, bytes(v)) for cx, v in _pdv_items(memoryview(good))] == [(1, b"\x02ab")]
    assert _pdv_items(memoryview(good[:-1])) is None                      # item longer than the PDU
    assert _pdv_items(memoryview(b"\x00\x00\x00\x01\x01")) is None         # no message control header
    assert _pdv_items(memoryview(good + b"\x00")) is None                 # trailing bytes


@pytest.mark.parametrize("max_pdu", [16384, 4096, 0])
def test_fragments_are_assembled_into_the_message(max_pdu):
    data = encode(make_dataset(SOPInstanceUID=generate_uid(), PixelData=b"\x01\x02" * 20000), False, True)
    uid = generate_uid()
    assoc = _acceptor()
    for pdu in _pdata_items(_store_request(data, uid), 1, max_pdu):
        assoc.dimse.receive_items(_pdv_items(memoryview(pdu)[6:]))
    context_id, primitive = assoc.dimse.get_msg()
    assert context_id == 1 and isinstance(primitive, C_STORE)
    assert primitive.AffectedSOPInstanceUID == uid and primitive.MessageID == 3
    assert primitive.DataSet.getvalue() == data
    assert assoc.dimse.get_msg() == (None, None)


def test_several_messages_in_one_pdu_are_all_queued():
    echo = C_ECHO()
    echo.MessageID = 9
    echo.AffectedSOPClassUID = Verification
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    data = encode(make_dataset(SOPInstanceUID=generate_uid()), False, True)
    bodies = [pdu[6:] for pdu in _pdata_items(message, 3, 0) + _pdata_items(_store_request(data, "1.2.3"), 1, 0)]
    assoc = _acceptor()
    assoc.dimse.receive_items(_pdv_items(memoryview(b"".join(bodies))))
    assert [type(p) for _cx, p in (assoc.dimse.get_msg(), assoc.dimse.get_msg())] == [C_ECHO, C_STORE]


def test_dataset_without_command_ends_the_association():
    assoc = _acceptor()
    assoc.dimse.receive_items([(1, memoryview(b"\x02abc"))])
    assert assoc.dul.event_queue.get_nowait() == "Evt19"
    assert assoc.dimse.get_msg() == (None, None)


@pytest.mark.parametrize("max_pdu", [16384, 131072, 0])
def test_store_over_an_association(max_pdu):
    """A C-STORE through a server using the fast path, received in PDUs of the size it advertises."""
    received = []

    def handle(event):
        received.append(event.request.DataSet.getvalue())
        return 0x0000

    ae = AE(ae_title="ORTHANC")
    ae.maximum_pdu_size = max_pdu
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    server = ThreadedAssociationServer(ae, ("127.0.0.1", 0), "ORTHANC", ae.supported_contexts,
                                       evt_handlers=[(evt.EVT_C_STORE, handle)],
                                       request_handler=FastRequestHandler)
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scu = AE(ae_title="SCU")
        scu.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
        assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="ORTHANC")
        assert assoc.is_established
        datasets = [make_dataset(SOPInstanceUID=generate_uid(), PixelData=bytes([n]) * 300_000) for n in range(3)]
        assert [assoc.send_c_store(ds).Status for ds in datasets] == [0, 0, 0]
        assoc.release()
        assert received == [encode(ds, False, True) for ds in datasets]
    finally:
        server.shutdown()


def test_stalled_peer_is_dropped_after_the_network_timeout():
    """A peer that stops in the middle of a PDU no longer holds the association forever."""
    ae = AE(ae_title="ORTHANC")
    ae.network_timeout = 0.5
    ae.add_supported_context(Verification)
    server = ThreadedAssociationServer(ae, ("127.0.0.1", 0), "ORTHANC", ae.supported_contexts,
                                       request_handler=FastRequestHandler)
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scu = AE(ae_title="SCU")
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="ORTHANC")
        assert assoc.is_established
        raw: socket.socket = assoc.dul.socket.socket
        raw.sendall(b"\x04\x00\x00\x00\x10\x00\x00\x00")       # a P-DATA-TF header, then nothing
        deadline = time.monotonic() + 5     # the server closes the connection: our side sees Evt17
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not assoc.is_established
    finally:
        server.shutdown()


def _pynetdicom_retrieve_command(primitive) -> bytes:
    message = (C_MOVE_RSP if isinstance(primitive, C_MOVE) else C_GET_RSP)()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


@pytest.mark.parametrize("kind", [C_MOVE, C_GET])
@pytest.mark.parametrize("status", [0xFF00, 0x0000, 0xB000, 0xA702])
@pytest.mark.parametrize("counts", [(5, 2, 0, 1), (None, 3, 1, 0), (None, None, None, None)])
def test_move_and_get_responses_are_encoded_as_pynetdicom_does(kind, status, counts):
    rsp = kind()
    rsp.MessageIDBeingRespondedTo = 11
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2" if kind is C_MOVE else "1.2.840.10008.5.1.4.1.2.2.3"
    rsp.Status = status
    (rsp.NumberOfRemainingSuboperations, rsp.NumberOfCompletedSuboperations, rsp.NumberOfFailedSuboperations,
     rsp.NumberOfWarningSuboperations) = counts
    assert retrieve_response_command(rsp) == _pynetdicom_retrieve_command(rsp)


def test_store_request_command_is_encoded_as_pynetdicom_does():
    for originator in ((None, None), ("MOVER", 7), ("ODD", 65535)):
        request = C_STORE()
        request.MessageID = 9
        request.Priority = 2
        request.AffectedSOPClassUID = CTImageStorage
        request.AffectedSOPInstanceUID = "1.2.3.45"
        request.MoveOriginatorApplicationEntityTitle, request.MoveOriginatorMessageID = originator
        message = C_STORE_RQ()
        message.primitive_to_message(request)
        message.command_set.CommandDataSetType = 0x0001     # a dataset follows (set by pynetdicom when it has one)
        expected = encode(message.command_set, True, True)
        assert store_request_command(message_id=9, priority=2, sop_class=CTImageStorage, sop_instance="1.2.3.45",
                                     originator_aet=originator[0], originator_id=originator[1]) == expected


@pytest.mark.parametrize("max_pdu", [16384, 4096, 0])
def test_raw_pdus_are_the_pdus_pynetdicom_sends(max_pdu):
    """p_data_pieces (the raw C-STORE send path) gives the P-DATA-TFs pynetdicom encodes for the same message."""
    data = encode(make_dataset(SOPInstanceUID="1.2.3.4", PixelData=b"\x01\x02" * 30001), False, True)
    message = _store_request(data, "1.2.3.4")
    expected = b"".join(_pdata_items(message, 5, max_pdu))
    command = store_request_command(message_id=3, priority=2, sop_class=CTImageStorage, sop_instance="1.2.3.4")
    assert b"".join(bytes(p) for p in p_data_pieces(5, command, memoryview(data), max_pdu)) == expected


def _associate_rq_bytes(calling: str, *, with_roles: bool) -> bytes:
    """An A-ASSOCIATE-RQ as DCMTK's storescu sends (many classes, two syntaxes each)."""
    from pynetdicom import StoragePresentationContexts, build_role

    contexts = [(cx.abstract_syntax, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
                for cx in StoragePresentationContexts[:100]]
    return associate_request(calling, contexts,
                             extra_items=[build_role(CTImageStorage, scp_role=True)] if with_roles else None)


def _described(primitive) -> tuple:
    return (primitive.calling_ae_title, primitive.called_ae_title, primitive.application_context_name,
            [(cx.context_id, cx.abstract_syntax, cx.transfer_syntax) for cx in
             primitive.presentation_context_definition_list],
            [(type(item).__name__, sorted((k, str(v)) for k, v in vars(item).items()))
             for item in primitive.user_information])


@pytest.mark.parametrize("with_roles", [False, True])
def test_shared_associate_request_gives_the_primitive_pynetdicom_gives(with_roles):
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    from archive.network.association import _associate_rq

    data = _associate_rq_bytes("SHARED", with_roles=with_roles)
    reference = A_ASSOCIATE_RQ()
    reference.decode(data)
    expected = _described(reference.to_primitive())
    first, second = _associate_rq(data).to_primitive(), _associate_rq(data).to_primitive()
    assert _associate_rq(data) is _associate_rq(data)       # decoded once
    assert _described(first) == expected and _described(second) == expected
    # each association gets a primitive and lists of its own
    assert first is not second
    assert first.presentation_context_definition_list is not second.presentation_context_definition_list
    assert first.user_information is not second.user_information


def test_remembered_negotiation_answers_as_pynetdicom():
    from pynetdicom.presentation import negotiate_as_acceptor

    from archive.network.association import _associate_rq
    from archive.network.scp import _negotiated, _supported_context

    proposed = _associate_rq(_associate_rq_bytes("MEMO", with_roles=True)).to_primitive() \
        .presentation_context_definition_list
    explicit_only = [_supported_context(str(cx.abstract_syntax), ("1.2.840.10008.1.2.1",), storage=True)
                     for cx in proposed[::2]]
    implicit_only = [_supported_context(str(cx.abstract_syntax), ("1.2.840.10008.1.2",), storage=True)
                     for cx in proposed[::3]]
    roles = {CTImageStorage: (False, True)}

    def described(answer):
        contexts, answered_roles = answer
        return ([(cx.context_id, cx.abstract_syntax, cx.transfer_syntax, cx.result, cx.as_scu, cx.as_scp)
                 for cx in contexts], [(r.sop_class_uid, r.scu_role, r.scp_role) for r in answered_roles])

    for supported, asked_roles in ((explicit_only, roles), (implicit_only, roles), (explicit_only, None),
                                   (explicit_only, roles)):
        expected = described(negotiate_as_acceptor(proposed, supported, asked_roles))
        assert described(_negotiated(proposed, supported, asked_roles)) == expected
        assert described(_negotiated(list(proposed), list(supported), asked_roles)) == expected   # remembered


def test_a_request_larger_than_any_modality_sends_is_not_kept():
    from pynetdicom import StoragePresentationContexts

    from archive.network.association import SHARED_REQUEST_MAX, _associate_rq

    syntaxes = [f"1.2.840.10008.1.2.4.{n}" for n in range(50, 100)]
    data = associate_request("HUGE", [(cx.abstract_syntax, syntaxes) for cx in StoragePresentationContexts[:100]])
    assert len(data) > SHARED_REQUEST_MAX
    dul = FastAssociation(AE(), MODE_ACCEPTOR).dul
    try:
        kept = _associate_rq.cache_info().currsize
        first, event = dul._decode_pdu(data)
        second, _ = dul._decode_pdu(data)
        assert event == "Evt6" and first is not second
        assert len(first.to_primitive().presentation_context_definition_list) == 100
        assert _associate_rq.cache_info().currsize == kept
    finally:
        dul._waker.close()
