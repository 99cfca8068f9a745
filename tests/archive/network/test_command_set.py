"""C-STORE-RQ command sets read with struct give the primitive pynetdicom's decoder gives, or None."""

import struct
from io import BytesIO

import pytest
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import decode, encode

from archive.network.command_set import store_request_primitive

FIELDS = ("MessageID", "AffectedSOPClassUID", "AffectedSOPInstanceUID", "Priority",
          "MoveOriginatorApplicationEntityTitle", "MoveOriginatorMessageID")


def encoded_store_rq(**fields) -> bytes:
    primitive = C_STORE()
    primitive.MessageID = fields.get("MessageID", 7)
    primitive.AffectedSOPClassUID = fields.get("AffectedSOPClassUID", "1.2.840.10008.5.1.4.1.1.2")
    primitive.AffectedSOPInstanceUID = fields.get("AffectedSOPInstanceUID", "1.2.3.4.5.6.7")
    primitive.Priority = fields.get("Priority", 2)
    primitive.MoveOriginatorApplicationEntityTitle = fields.get("MoveOriginatorApplicationEntityTitle")
    primitive.MoveOriginatorMessageID = fields.get("MoveOriginatorMessageID")
    primitive.DataSet = BytesIO(b"\x08\x00\x18\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


def pynetdicom_primitive(command: bytes) -> C_STORE:
    message = C_STORE_RQ()
    message.command_set = decode(BytesIO(command), True, True)
    message.context_id = 1
    return message.message_to_primitive()


@pytest.mark.parametrize("fields", [
    {},
    {"AffectedSOPInstanceUID": "1.2.3.45"},                       # even length
    {"AffectedSOPInstanceUID": "1.2.3.456"},                      # odd length: padded with a NUL
    {"MessageID": 65535, "Priority": 1},
    {"MoveOriginatorApplicationEntityTitle": "MOVER", "MoveOriginatorMessageID": 3},
    {"MoveOriginatorApplicationEntityTitle": "  A B  ", "MoveOriginatorMessageID": 0},
])
def test_a_store_request_reads_as_pynetdicom_reads_it(fields):
    command = encoded_store_rq(**fields)
    ours, theirs = store_request_primitive(command), pynetdicom_primitive(command)
    assert ours is not None
    for name in FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name
        assert type(getattr(ours, name)) is type(getattr(theirs, name)), name


def element(tag_element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, tag_element, len(value)) + value


def test_anything_else_is_left_to_pynetdicom():
    good = encoded_store_rq()
    echo = C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    assert store_request_primitive(encode(message.command_set, True, True)) is None   # not a C-STORE-RQ
    assert store_request_primitive(good) is not None
    assert store_request_primitive(good[:-3]) is None                                   # cut short
    assert store_request_primitive(good + element(0x0600, b"DEST")) is None             # MoveDestination
    assert store_request_primitive(good + element(0x0110, b"\x01\x00")) is None         # a second MessageID
    assert store_request_primitive(good.replace(b"1.2.3.4.5.6.7\x00", b"1.2.3\\4.5.6.7")) is None   # two values


def test_a_request_without_dataset_or_required_element_is_left_to_pynetdicom():
    fields = [element(0x0002, b"1.2.840.10008.5.1.4.1.1.2\x00"), element(0x0100, b"\x01\x00"),
              element(0x0110, b"\x07\x00"), element(0x0700, b"\x00\x00"), element(0x0800, b"\x02\x01"),
              element(0x1000, b"1.2.3.4\x00\x00")]
    assert store_request_primitive(b"".join(fields)) is not None
    without_dataset = fields[:4] + [element(0x0800, b"\x01\x01")] + fields[5:]
    assert store_request_primitive(b"".join(without_dataset)) is None
    for missing in range(len(fields)):
        assert store_request_primitive(b"".join(fields[:missing] + fields[missing + 1:])) is None
    empty_uid = fields[:5] + [element(0x1000, b"")]
    assert store_request_primitive(b"".join(empty_uid)) is None
    odd_us = fields[:2] + [element(0x0110, b"\x07\x00\x00\x00")] + fields[3:]
    assert store_request_primitive(b"".join(odd_us)) is None
