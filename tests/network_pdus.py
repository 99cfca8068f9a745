"""Hand-made DICOM upper layer PDUs, for tests that play a peer byte by byte (when it sends, what it sends)."""

from __future__ import annotations

import struct

from pynetdicom import build_context
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.transport import AddressInformation


def associate_request(calling: str, contexts: list[tuple[str, list[str]]], *, called: str = "ORTHANC",
                      extra_items: list | None = None) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing ``contexts`` ((abstract syntax, transfer syntaxes), IDs 1, 3, 5...),
    encoded by pynetdicom; ``extra_items``: more user information items (role selection...)."""
    request = A_ASSOCIATE()
    request.application_context_name = "1.2.840.10008.3.1.1.1"
    request.calling_ae_title, request.called_ae_title = calling, called
    request.calling_presentation_address = AddressInformation("127.0.0.1", 0)
    request.called_presentation_address = AddressInformation("127.0.0.1", 104)
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.3.4"
    request.user_information = [length, implementation, *(extra_items or [])]
    proposed = []
    for index, (abstract_syntax, transfer_syntaxes) in enumerate(contexts):
        context = build_context(abstract_syntax, transfer_syntaxes)
        context.context_id = 2 * index + 1
        proposed.append(context)
    request.presentation_context_definition_list = proposed
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(request)
    return pdu.encode()


def echo_request() -> bytes:
    """A P-DATA-TF holding a C-ECHO-RQ on presentation context 1 (implicit VR little endian command set)."""
    def element(tag: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
    body = (element(0x00000002, b"1.2.840.10008.1.1\x00") + element(0x00000100, struct.pack("<H", 0x0030))
            + element(0x00000110, struct.pack("<H", 1)) + element(0x00000800, struct.pack("<H", 0x0101)))
    command = element(0x00000000, struct.pack("<I", len(body))) + body
    pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


RELEASE_REQUEST = struct.pack(">BBI", 0x05, 0, 4) + b"\0\0\0\0"


def pdu_read(sock) -> tuple[int, bytes]:
    """The next PDU from ``sock``: (type, body)."""
    data = b""
    while len(data) < 6:
        piece = sock.recv(6 - len(data))
        assert piece, "connection closed"
        data += piece
    length = struct.unpack(">I", data[2:6])[0]
    body = b""
    while len(body) < length:
        piece = sock.recv(length - len(body))
        assert piece, "connection closed"
        body += piece
    return data[0], body


def store_request(sop_class: str, sop_instance: str, *, message_id: int = 1) -> bytes:
    """A P-DATA-TF holding the command set of a C-STORE-RQ on presentation context 1, its dataset to follow."""
    def element(tag: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value

    def uid(text: str) -> bytes:
        return text.encode() + b"\x00" * (len(text) % 2)
    body = (element(0x00000002, uid(sop_class)) + element(0x00000100, struct.pack("<H", 0x0001))
            + element(0x00000110, struct.pack("<H", message_id)) + element(0x00000700, struct.pack("<H", 0))
            + element(0x00000800, struct.pack("<H", 0x0000)) + element(0x00001000, uid(sop_instance)))
    command = element(0x00000000, struct.pack("<I", len(body))) + body
    pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv
