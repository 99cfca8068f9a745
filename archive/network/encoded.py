"""Stored files sent as they are stored: the dataset bytes of a Part 10 file go out in a C-STORE without being
decoded and encoded again by pydicom (which costs more than the rest of a sub-operation: a 0.5 MB CT took
~4 ms), whenever the peer accepted the file's own transfer syntax; otherwise the file is decoded and pynetdicom
converts it as before.

``EncodedInstance`` is a ``Dataset`` (pynetdicom's C-MOVE and C-GET loops accept nothing else) that holds the
file; ``Association.send_c_store`` is wrapped once to recognise it. Every other call is left to pynetdicom.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import struct
import time
from collections.abc import Callable

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom._handlers import standard_dimse_sent_handler, standard_pdu_sent_handler
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from archive.network.association import p_data_pieces, send_pieces, store_request_command
from archive.network.transcoding import SENDABLE_UNCOMPRESSED, SendPolicy, cannot_transcode, syntaxes_to_try

LOGGER = logging.getLogger("pynetdicom.dimse")
HANDLERS_LOGGER = logging.getLogger("pynetdicom._handlers")   # pynetdicom's standard event handlers log here

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class EncodedInstance(Dataset):
    """A stored DICOM file to send with C-STORE: its file meta group read, its dataset kept as bytes."""

    def __init__(self, data: bytes, *, sop_class: str, sop_instance: str, transfer_syntax: str, offset: int,
                 policy: SendPolicy | None = None, remote_aet: str = ""):
        super().__init__()
        # ``policy``: how to send it when the peer did not accept its syntax (archive.network.transcoding); None
        # leaves it to pynetdicom's conversions of the decoded dataset. ``encoded_as_stored``: whether its bytes
        # may go out as they are (else it is decoded and re-encoded even in its own syntax).
        self.__dict__.update(encoded_data=data, encoded_sop_class=sop_class, encoded_sop_instance=sop_instance,
                             encoded_transfer_syntax=transfer_syntax, encoded_offset=offset, encoded_policy=policy,
                             encoded_remote_aet=remote_aet, encoded_as_stored=sendable_as_stored(data, offset))

    def __bool__(self) -> bool:  # an empty Dataset is falsy: pynetdicom would skip the sub-operation
        return True

    @property
    def SOPInstanceUID(self) -> str:   # noqa: N802 - pynetdicom lists a failed sub-operation's instance by it
        return self.encoded_sop_instance

    def decoded(self) -> Dataset:
        return decoded_dataset(self.encoded_data)


def decoded_dataset(data: bytes) -> Dataset:
    """The file decoded by pydicom for pynetdicom to send. A raw dataset without file meta group (the archive
    stores those, as Orthanc does) gets the transfer syntax it was read in, as DCMTK infers it: pynetdicom needs
    it to choose the presentation context."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if len(ds) and "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def encoded_instance(data: bytes, *, policy: SendPolicy | None = None, remote_aet: str = "") -> Dataset:
    """The file as an EncodedInstance when its file meta group names its transfer syntax and its dataset the
    SOP Class and Instance UIDs, else decoded. The UIDs are read from the dataset's first elements, or, where
    that walk does not go (big endian), from the decoded header: a big endian file must be an EncodedInstance
    too, so that the send policy converts it for a peer that did not accept big endian (pynetdicom does not
    convert it: real Orthanc sent it to getscu in explicit little endian where we sent nothing)."""
    meta = part10_meta(data)
    syntax = meta[1].get(0x00020010) if meta is not None else None
    found = (dataset_identifiers(data, meta[0], syntax) or _decoded_identifiers(data)) if syntax else None
    if found is None:
        return decoded_dataset(data)
    return EncodedInstance(data, sop_class=found[0], sop_instance=found[1], transfer_syntax=syntax, offset=meta[0],
                           policy=policy, remote_aet=remote_aet)


def dataset_identifiers(data: bytes, offset: int, syntax: str) -> tuple[str, str] | None:
    """(SOP Class UID, SOP Instance UID) of the dataset that starts at ``offset``, read from its first elements
    without decoding it; None when they are not there (or the walk meets anything unusual: the caller decodes).
    The C-STORE names the dataset's UIDs, as Orthanc's SCU does, not the file meta group's: a file where they
    differ was refused by real Orthanc ("0xA900: dataset does not match SOP class")."""
    if syntax == ExplicitVRBigEndian:
        return None
    implicit = syntax == ImplicitVRLittleEndian
    pos, end, found = offset, len(data), {}
    while pos + 8 <= end:
        group, element = struct.unpack_from("<HH", data, pos)
        tag = (group << 16) | element
        if tag > 0x00080018:
            break
        if implicit:
            (length,) = struct.unpack_from("<I", data, pos + 4)
            start = pos + 8
        elif data[pos + 4:pos + 6] in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if length == 0xFFFFFFFF or start + length > end:
            return None
        if tag in (0x00080016, 0x00080018):
            found[tag] = data[start:start + length].decode("ascii", "replace").strip("\x00 ")
        pos = start + length
    if not found.get(0x00080016) or not found.get(0x00080018):
        return None
    return found[0x00080016], found[0x00080018]


def _decoded_identifiers(data: bytes) -> tuple[str, str] | None:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True,
                             specific_tags=["SOPClassUID", "SOPInstanceUID"])
        found = tuple(str(ds.get(keyword, "") or "").strip("\x00 ") for keyword in ("SOPClassUID", "SOPInstanceUID"))
    except Exception:
        return None
    return found if all(found) else None


def instance_to_send(data: bytes, choices: list[str], *, sop_class: str, sop_instance: str, transfer_syntax: str,
                     offset: int | None, decoded: Dataset | None = None) -> Dataset:
    """The file to send in the first of ``choices`` (archive.network.transcoding.syntaxes_to_try) it can be
    written in: as stored in its own syntax (``offset`` of its dataset, None when it is not a Part 10 file);
    decoded, for pynetdicom to convert between uncompressed syntaxes; else transcoded."""
    from archive.dicom.transcode import TranscodingFailed, file_transcode

    for target in choices:
        if target == transfer_syntax and offset is not None:
            return EncodedInstance(data, sop_class=sop_class, sop_instance=sop_instance,
                                   transfer_syntax=transfer_syntax, offset=offset)
        if target == transfer_syntax or (transfer_syntax in SENDABLE_UNCOMPRESSED and target in SENDABLE_UNCOMPRESSED):
            return decoded if decoded is not None else decoded_dataset(data)
        try:
            return encoded_instance(file_transcode(data, syntax=target))
        except TranscodingFailed as exc:
            LOGGER.warning("C-STORE: cannot transcode %s from %s to %s: %s", sop_instance, transfer_syntax, target,
                           exc)
    raise cannot_transcode(sop_class=sop_class, source=transfer_syntax, attempted=choices)


_UN_HEADER = re.compile(rb"UN\x00\x00")   # explicit VR "UN", its two reserved bytes (PS3.5 7.1.2)
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


def sendable_as_stored(data: bytes, offset: int) -> bool:
    """Whether the dataset bytes may go out as stored: not when its header has explicit VR "UN" elements
    (files written with UN for standard attributes, as some converters do). Real Orthanc's C-STORE SCP
    refuses such a dataset (0xC000) while it stores the same file uploaded over REST, and Orthanc's own SCU
    sends what DCMTK re-encodes; so such a file is decoded and re-encoded (pydicom gives the UN elements
    their dictionary VR). A false alarm (those bytes inside a value) only costs the re-encoding."""
    end = data.find(_PIXEL_DATA_TAG, offset)
    return _UN_HEADER.search(data, offset, end if end >= 0 else len(data)) is None


def part10_meta(data: bytes) -> tuple[int, dict[int, str]] | None:
    """(offset of the dataset, UI values of the file meta group) of a Part 10 file (PS3.10 7.1: the group is
    always explicit VR little endian), or None for anything else (a raw dataset, a truncated header)."""
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    pos, values = 132, {}
    try:
        while pos + 8 <= len(data):
            group, element, vr = struct.unpack_from("<HH2s", data, pos)
            if group != 0x0002:
                return pos, values
            if vr in _LONG_VRS:
                (length,) = struct.unpack_from("<I", data, pos + 8)
                start = pos + 12
            else:
                (length,) = struct.unpack_from("<H", data, pos + 6)
                start = pos + 8
            if length == 0xFFFFFFFF or start + length > len(data):
                return None
            if vr == b"UI":
                values[(group << 16) | element] = data[start:start + length].decode("ascii").rstrip("\x00 ")
            pos = start + length
    except (struct.error, UnicodeDecodeError):
        return None
    return None


def accepted_storage(assoc: Association) -> dict[str, dict[str, object]]:
    """SOP class -> {transfer syntax: context} of the contexts accepted for us as SCU, indexed once per
    association (they do not change once it is established): pynetdicom's ``accepted_contexts`` sorts them on
    each call, and a store proposes ~60 of them (archive.network.transcoding)."""
    index = assoc.__dict__.get("_accepted_storage")
    if index is None or index[0] != len(assoc._accepted_cx):
        table: dict[str, dict[str, object]] = {}
        for cx in assoc.accepted_contexts:
            if cx.as_scu:
                table.setdefault(str(cx.abstract_syntax), {}).setdefault(str(cx.transfer_syntax[0]), cx)
        index = assoc.__dict__["_accepted_storage"] = (len(assoc._accepted_cx), table)
    return index[1]


def _exact_context(assoc: Association, instance: EncodedInstance):
    return accepted_storage(assoc).get(instance.encoded_sop_class, {}).get(instance.encoded_transfer_syntax)


_pynetdicom_send_c_store = Association.send_c_store


def _send_c_store(self: Association, dataset, msg_id: int = 1, priority: int = 2, originator_aet=None,
                  originator_id=None):
    if originator_aet is not None and getattr(self, "move_originator", None):
        originator_aet = self.move_originator     # a C-MOVE sub-operation names the C-MOVE's caller (FastAE)
    if not isinstance(dataset, EncodedInstance):
        return _pynetdicom_send_c_store(self, dataset, msg_id=msg_id, priority=priority,
                                        originator_aet=originator_aet, originator_id=originator_id)
    context = _exact_context(self, dataset) if self.is_established else None
    if context is None and self.is_established and dataset.encoded_policy is not None:
        # Not accepted as stored: transcoded as the policy says, or refused with Orthanc's error
        accepted = set(accepted_storage(self).get(dataset.encoded_sop_class, ()))
        choices = syntaxes_to_try(sop_class=dataset.encoded_sop_class, source=dataset.encoded_transfer_syntax,
                                  accepted=accepted, policy=dataset.encoded_policy,
                                  remote_aet=dataset.encoded_remote_aet)
        dataset = instance_to_send(dataset.encoded_data, choices, sop_class=dataset.encoded_sop_class,
                                   sop_instance=dataset.encoded_sop_instance,
                                   transfer_syntax=dataset.encoded_transfer_syntax, offset=dataset.encoded_offset)
        if not isinstance(dataset, EncodedInstance):
            return _pynetdicom_send_c_store(self, dataset, msg_id=msg_id, priority=priority,
                                            originator_aet=originator_aet, originator_id=originator_id)
        context = _exact_context(self, dataset)
    if context is None or not dataset.encoded_as_stored:
        # Not accepted as stored, or not to be sent as stored: pynetdicom converts (or refuses) the decoded dataset
        return _pynetdicom_send_c_store(self, dataset.decoded(), msg_id=msg_id, priority=priority,
                                        originator_aet=originator_aet, originator_id=originator_id)
    raw = _raw_socket(self)
    if raw is not None and len(dataset.encoded_data) > dataset.encoded_offset:   # a dataset to send
        return _send_raw(self, raw, dataset, context.context_id, msg_id=msg_id, priority=priority,
                         originator_aet=originator_aet, originator_id=originator_id)
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = priority
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.AffectedSOPClassUID = dataset.encoded_sop_class
    req.AffectedSOPInstanceUID = dataset.encoded_sop_instance
    req.DataSet = io.BytesIO(memoryview(dataset.encoded_data)[dataset.encoded_offset:])
    return _exchange(self, lambda: self.dimse.send_msg(req, context.context_id))


def _exchange(assoc: Association, send: Callable[[], None]) -> Dataset:
    """As pynetdicom's send_c_store: pause the reactor, send, wait for the response, resume; the response's
    status dataset (empty when none came)."""
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    lost = False
    try:
        try:
            send()
        except (OSError, TimeoutError):
            LOGGER.exception("C-STORE: the connection was lost while sending")
            lost = True
        rsp = None if lost else assoc.dimse.get_msg(block=True)[1]
    finally:
        assoc._reactor_checkpoint.set()
    if lost:
        assoc.abort()
        return Dataset()
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def _raw_socket(assoc: Association) -> socket.socket | None:
    """The plain TCP socket of an established association whose PDUs no handler watches (pynetdicom's standard
    handlers only log), else None: TLS sockets and watched associations take pynetdicom's path."""
    transport = assoc.dul.socket
    sock = getattr(transport, "socket", None)
    if type(sock) is not socket.socket or assoc.dul.state_machine.current_state != "Sta6":
        return None
    handlers = assoc._handlers
    if handlers.get(evt.EVT_DATA_SENT) or handlers.get(evt.EVT_FSM_TRANSITION) \
            or not all(h[0] is standard_pdu_sent_handler for h in handlers.get(evt.EVT_PDU_SENT, ())) \
            or not all(h[0] is standard_dimse_sent_handler for h in handlers.get(evt.EVT_DIMSE_SENT, ())):
        return None
    if HANDLERS_LOGGER.isEnabledFor(logging.INFO):
        return None      # pynetdicom's standard handlers would log the message: keep its path
    return sock


def _send_raw(assoc: Association, sock: socket.socket, dataset: EncodedInstance, context_id: int, *, msg_id: int,
              priority: int, originator_aet, originator_id):
    """The C-STORE-RQ written to the socket by this thread in one sendmsg per 512 buffers, the stored bytes as
    views: the DUL thread, which sends what is queued for it, has nothing queued meanwhile (the association's
    reactor is paused and this thread is the only one sending), and still receives the response."""
    command = store_request_command(message_id=msg_id, priority=priority, sop_class=dataset.encoded_sop_class,
                                    sop_instance=dataset.encoded_sop_instance,
                                    originator_aet=str(originator_aet).strip() if originator_aet else None,
                                    originator_id=originator_id)
    pieces = p_data_pieces(context_id, command, memoryview(dataset.encoded_data)[dataset.encoded_offset:],
                           assoc.dimse.maximum_pdu_size)
    return _exchange(assoc, lambda: send_pieces(sock, pieces))


Association.send_c_store = _send_c_store
