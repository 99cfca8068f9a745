"""pynetdicom's acceptor association with an event-driven, low-copy receive path (pynetdicom 3.0).

Why: pynetdicom runs two threads per association that poll each other with 1 ms sleeps (the DUL reactor
polls the socket and its queue, the association reactor polls the DIMSE message queue), and turns every
received P-DATA-TF PDU into three objects (a PDU, its PDV items, a P-DATA primitive) and three copies of its
bytes (4 KB reads appended to a bytearray, ``bytes()`` of it, slices into a BytesIO). A 0.53 MB C-STORE in
16 KB PDUs (MaximumPduLength, 16384 by default as in Orthanc) is 33 such PDUs: ~1.9 ms of CPU per instance
before our handler runs, and up to 1 ms of sleep at each of the hand-overs.

What changes (nothing on the wire, nothing the handlers see):

- Waiting: the DUL reactor waits in ``select`` on the socket and a wake-up socket (written when a primitive
  is queued for it, or when it is killed); the association reactor waits on an Event set when the DUL
  queues a DIMSE message or an A-RELEASE/A-ABORT indication, or stops. Both still wake every
  ``IDLE_CHECK`` seconds to look at their timers (ARTIM, network idle), as pynetdicom's loops do.
- Receiving: a PDU is read in one ``recv_into`` into a buffer of its announced length. A P-DATA-TF
  received in Sta6 (association established), with nothing else pending for the state machine, goes
  straight to the DIMSE assembler: that is the state machine's DT-2 action, Sta6 to Sta6, without the
  objects. Anything else (other PDUs, other states, a malformed P-DATA-TF, handlers bound to
  EVT_DATA_RECV, EVT_PDU_RECV or EVT_FSM_TRANSITION beyond pynetdicom's own P-DATA logger, which logs
  nothing) goes through pynetdicom's decoding and state machine unchanged, so errors are answered as
  pynetdicom answers them (A-P-ABORT on an invalid PDU, Evt17 on a closed or timed-out connection).
- Assembling: the fragments of a message are kept as views of the received buffers and joined once when
  the last one arrives; the dataset is a ``BytesIO`` over that ``bytes`` object, so ``getvalue()`` gives
  it back without a copy. Several messages in one P-DATA-TF are all decoded (pynetdicom drops the PDVs
  that follow the end of a message in the same PDU).
- Serving C-STOREs and C-ECHOs (opt-in, ``serve_inline``): a complete request is served on the DUL
  thread that assembled it, and its response sent by that thread next, instead of being handed to the
  association reactor and back: two thread wake-ups less per instance, each a scheduling delay when the
  machine is busy (see ``FastAssociation.serve_inline`` for what such a handler may not do).
- Answering: a plain C-STORE-RSP is encoded directly (``store_response_command``, byte for byte what
  pynetdicom encodes) instead of through a pydicom Dataset; pynetdicom's standard handlers of
  EVT_DIMSE_RECV/EVT_DIMSE_SENT, which only log, are skipped when their logger would drop the lines.
- The accepted socket gets the network timeout (DicomScpTimeout), so a peer that stops in the middle of a
  PDU ends the association instead of blocking its reactor forever.

CPU per 0.53 MB instance received in 16 KB PDUs (storescu, one association), the handler's own work left
out: pynetdicom's path 2.8 ms (1.9 ms on the DUL thread, 0.8 ms on the association thread), this one 0.8 ms.
"""

from __future__ import annotations

import functools
import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
from copy import deepcopy
from datetime import datetime
from io import BytesIO

from pynetdicom import _config, evt
from pynetdicom._globals import MODE_ACCEPTOR, MODE_REQUESTOR
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.ae import ApplicationEntity as AE
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import _MESSAGE_TYPES, C_ECHO_RQ, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_CANCEL, C_GET, C_MOVE, C_STORE, N_EVENT_REPORT
from pynetdicom.dsutils import decode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RQ
from pynetdicom.pdu_items import UserInformationItem
from pynetdicom.pdu_primitives import A_ASSOCIATE, P_DATA
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler
from pynetdicom.utils import make_target

from archive.network.command_set import store_request_primitive

# pynetdicom's own loggers, so its messages keep their names
LOGGER = logging.getLogger("pynetdicom.dul")
ASSOC_LOGGER = logging.getLogger("pynetdicom.association")
DIMSE_LOGGER = logging.getLogger("pynetdicom.dimse")
HANDLERS_LOGGER = logging.getLogger("pynetdicom._handlers")   # pynetdicom's standard event handlers log here

# pynetdicom logs each identifier it sends or receives by iterating it, which converts every raw element to a
# pydicom value: the values as received are lost (a name "Wang^XiaoDong=^=" becomes "Wang^XiaoDong=^") and the
# conversion costs time on every C-FIND answer. Orthanc logs no identifier either.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

IDLE_CHECK = 0.05            # seconds between checks of the timers when nothing happens
RECV_CHUNK = 1 << 18          # bytes asked of each recv: several 16 KB PDUs per system call
_LARGE_PDU = 1 << 22          # PDUs announcing more than this are read piecewise (a lying length costs nothing)
_UINT4 = struct.Struct(">I")
_US_ELEMENT = struct.Struct("<HHIH")


def _only(assoc: Association, event, standard) -> bool:
    """Whether the handlers bound to a notification event are at most pynetdicom's standard one."""
    return all(h[0] is standard for h in assoc._handlers.get(event, ()))


def _uid_element(element: int, uid: str) -> bytes:
    raw = uid.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00"
    return struct.pack("<HHI", 0x0000, element, len(raw)) + raw


def store_response_command(primitive: C_STORE) -> bytes:
    """The command set of a C-STORE-RSP (PS3.7 9.3.1.2), implicit VR little endian, as pynetdicom encodes
    it (DIMSEMessage.primitive_to_message then encode): the elements it has, in tag order, with the group
    length first. Only for a response without Offending Element or Error Comment."""
    elements = b"".join((
        b"" if primitive.AffectedSOPClassUID is None else _uid_element(0x0002, primitive.AffectedSOPClassUID),
        _US_ELEMENT.pack(0x0000, 0x0100, 2, 0x8001),                          # CommandField: C-STORE-RSP
        _US_ELEMENT.pack(0x0000, 0x0120, 2, primitive.MessageIDBeingRespondedTo),
        _US_ELEMENT.pack(0x0000, 0x0800, 2, 0x0101),                          # CommandDataSetType: none
        _US_ELEMENT.pack(0x0000, 0x0900, 2, primitive.Status),
        b"" if primitive.AffectedSOPInstanceUID is None else _uid_element(0x1000, primitive.AffectedSOPInstanceUID),
    ))
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(elements)) + elements


def retrieve_response_command(primitive: C_MOVE | C_GET) -> bytes:
    """The command set of a C-MOVE-RSP or C-GET-RSP without an identifier (the pending answers after each
    sub-operation, and most final ones; PS3.7 9.3.4.2, 9.3.3.2), as pynetdicom encodes it: the elements it
    has, in tag order, with the group length first."""
    def us(element: int, value: int | None) -> bytes:
        return b"" if value is None else _US_ELEMENT.pack(0x0000, element, 2, value)

    elements = b"".join((
        b"" if primitive.AffectedSOPClassUID is None else _uid_element(0x0002, primitive.AffectedSOPClassUID),
        us(0x0100, 0x8021 if primitive.__class__ is C_MOVE else 0x8010),        # CommandField
        us(0x0120, primitive.MessageIDBeingRespondedTo),
        us(0x0800, 0x0101),                                                      # CommandDataSetType: none
        us(0x0900, primitive.Status),
        us(0x1020, primitive.NumberOfRemainingSuboperations),
        us(0x1021, primitive.NumberOfCompletedSuboperations),
        us(0x1022, primitive.NumberOfFailedSuboperations),
        us(0x1023, primitive.NumberOfWarningSuboperations),
    ))
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(elements)) + elements


def store_request_command(*, message_id: int, priority: int, sop_class: str, sop_instance: str,
                          originator_aet: str | None = None, originator_id: int | None = None) -> bytes:
    """The command set of a C-STORE-RQ with a dataset (PS3.7 9.3.1.1), implicit VR little endian, in tag
    order with the group length first, as pynetdicom encodes it."""
    aet = b""
    if originator_aet:
        aet = originator_aet.encode("ascii")
        aet += b" " * (len(aet) % 2)
    elements = b"".join((
        _uid_element(0x0002, sop_class),
        _US_ELEMENT.pack(0x0000, 0x0100, 2, 0x0001),                          # CommandField: C-STORE-RQ
        _US_ELEMENT.pack(0x0000, 0x0110, 2, message_id),
        _US_ELEMENT.pack(0x0000, 0x0700, 2, priority),
        _US_ELEMENT.pack(0x0000, 0x0800, 2, 0x0001),                          # CommandDataSetType: present
        _uid_element(0x1000, sop_instance),
        struct.pack("<HHI", 0x0000, 0x1030, len(aet)) + aet if aet else b"",
        _US_ELEMENT.pack(0x0000, 0x1031, 2, originator_id) if originator_id is not None else b"",
    ))
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(elements)) + elements


_PDU_HEADER = struct.Struct(">BBI")      # P-DATA-TF: type 0x04, reserved, length
_PDV_HEADER = struct.Struct(">IBB")      # PDV item: length, presentation context ID, message control header


def p_data_pieces(context_id: int, command: bytes, dataset: memoryview, max_pdu: int) -> list:
    """The P-DATA-TF PDUs of one message as a list of buffers for sendmsg (PS3.8 9.3.5, E.2): the command
    in one PDU, the dataset in fragments of at most ``max_pdu`` - 6 bytes (the peer's maximum PDU length
    counts the PDV header), one PDV per PDU as pynetdicom sends them. The fragments are views, not copies."""
    pieces: list = [_PDU_HEADER.pack(0x04, 0, len(command) + 6) + _PDV_HEADER.pack(len(command) + 2, context_id, 0x03),
                    command]
    step = max_pdu - 6 if max_pdu else len(dataset) or 1
    total = len(dataset)
    for start in range(0, total, step):
        fragment = dataset[start:start + step]
        last = 0x02 if start + step >= total else 0x00
        pieces.append(_PDU_HEADER.pack(0x04, 0, len(fragment) + 6) + _PDV_HEADER.pack(len(fragment) + 2, context_id,
                                                                                       last))
        pieces.append(fragment)
    return pieces


def send_pieces(sock: socket.socket, pieces: list) -> None:
    """sendall for a list of buffers: sendmsg in batches (IOV_MAX is 1024 on Linux), partial sends resumed."""
    views = [memoryview(p) for p in pieces]
    while views:
        batch = views[:512]
        sent = sock.sendmsg(batch)
        taken = 0
        for view in batch:
            if sent >= len(view):
                sent -= len(view)
                taken += 1
            else:
                views[taken] = view[sent:]
                break
        del views[:taken]


class _Waker:
    """A socket pair: one end in the DUL's select, the other written to wake it. Closed sockets make wake()
    a no-op (never a write to a file descriptor number that may have been reused)."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)

    def fileno(self) -> int:
        return self.reader.fileno()

    def wake(self) -> None:
        try:
            self.writer.send(b"\x01")
        except OSError:      # buffer full (already awake) or closed
            pass

    def drain(self) -> None:
        try:
            self.reader.recv(4096)
        except OSError:
            pass

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


class _WakingQueue(queue.Queue):
    """A queue that sets an Event after each put: the association reactor waits on it."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self._event = event

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._event.set()


def _pdv_items(body: memoryview) -> list[tuple[int, memoryview]] | None:
    """The PDV items of the body of a P-DATA-TF (PS3.8 9.3.5.1): (context ID, view of the message control
    header byte and the fragment). None when the items do not fill the PDU exactly or one has no control
    header: pynetdicom's decoder then decides what that is."""
    end, offset, items = len(body), 0, []
    while offset < end:
        if offset + 6 > end:
            return None
        length = _UINT4.unpack_from(body, offset)[0]
        if length < 2 or offset + 4 + length > end:
            return None
        items.append((body[offset + 4], body[offset + 5:offset + 4 + length]))
        offset += 4 + length
    return items or None


# Requests whose handlers never wait for the peer, served on the DUL thread (see FastAssociation.serve_inline)
_INLINE_REQUESTS = (C_STORE_RQ, C_ECHO_RQ)


class FastDimse(DIMSEServiceProvider):
    """DIMSE provider whose message assembly keeps views of the received PDUs and joins them once."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._command: list = []
        self._data: list = []
        self._message: DIMSEMessage | None = None

    def send_msg(self, primitive, context_id: int) -> None:
        """As pynetdicom's; a plain C-STORE-RSP (the most frequent message by far), and the C-MOVE-RSP or
        C-GET-RSP without identifier that follows each sub-operation, are encoded directly instead of through
        a pydicom Dataset (pynetdicom's standard EVT_DIMSE_SENT handler logs nothing for them)."""
        kind = primitive.__class__
        if kind is C_MOVE and primitive.Status == 0xFF00 and primitive.NumberOfRemainingSuboperations == 0 \
                and primitive.MessageIDBeingRespondedTo is not None:
            # pynetdicom answers every sub-operation with a Pending, the last one too, then the final response;
            # Orthanc's C-MOVE SCP answers the last one with the final response only (movescu against 1.10.1:
            # two Pending for three instances). A C-GET's last Pending stays: Orthanc sends it too.
            return
        if kind in (C_STORE, C_MOVE, C_GET) and primitive.MessageIDBeingRespondedTo is not None \
                and primitive.Status is not None and primitive.ErrorComment is None \
                and primitive.OffendingElement is None \
                and (kind is C_STORE or primitive.Identifier is None) \
                and _only(self.assoc, evt.EVT_DIMSE_SENT, standard_dimse_sent_handler):
            try:
                command = store_response_command(primitive) if kind is C_STORE else retrieve_response_command(primitive)
            except (UnicodeEncodeError, struct.error):
                command = None
            max_pdu = self.maximum_pdu_size
            if command is not None and (not max_pdu or len(command) <= max_pdu - 6):
                pdata = P_DATA()
                pdata.presentation_data_value_list.append((context_id, b"\x03" + command))  # command, last
                self.dul.send_pdu(pdata)
                return
        super().send_msg(primitive, context_id)

    def receive_primitive(self, primitive: P_DATA) -> None:
        """The state machine's DT-2 (a P-DATA-TF that took pynetdicom's path)."""
        if _config.STORE_RECV_CHUNKED_DATASET:
            super().receive_primitive(primitive)
            return
        if primitive.__class__ is not P_DATA:
            return
        self.receive_items([(cx, memoryview(data)) for cx, data in primitive.presentation_data_value_list])

    def receive_items(self, items: list[tuple[int, memoryview]]) -> None:
        """Add PDV items to the message being received (PS3.8 E.2: bit 0 of the message control header is
        command/dataset, bit 1 last fragment); queue each message completed."""
        for context_id, data in items:
            control = data[0]
            if control & 1:
                self._command.append(data[1:])
                if not control & 2:
                    continue
                command = b"".join(self._command)
                self._command = []
                if self._plain_receive():
                    primitive = store_request_primitive(command)
                    if primitive is not None:       # a C-STORE-RQ: its dataset follows
                        if self._store_refused():
                            return
                        primitive._context_id = context_id
                        self._message = primitive
                        continue
                message = DIMSEMessage()
                message.encoded_command_set = BytesIO(command)
                message.context_id = context_id
                # The command set is always implicit VR little endian (PS3.7 6.3.1)
                message.command_set = decode(message.encoded_command_set, True, True)
                message.__class__ = _MESSAGE_TYPES[message.command_set.CommandField][1]
                if message.__class__ is C_STORE_RQ and self._store_refused():
                    return
                if message.command_set.CommandDataSetType == 0x0101:   # no dataset follows
                    if not self._complete(message):
                        return
                    continue
                self._message = message
            else:
                self._data.append(data[1:])
                if control & 2 and not self._complete(self._message):
                    return

    def _store_refused(self) -> bool:
        """A C-STORE-RQ of a caller that may not store: the association is aborted on its command set, as
        Orthanc's (its dispatcher checks the command before reading the dataset), instead of after the whole
        dataset is received (a large multi-frame instance sent for nothing)."""
        refuses = self.assoc.refuses_store
        if refuses is None or not refuses():
            return False
        self._command, self._data, self._message = [], [], None
        self.assoc.abort()
        return True

    def _plain_receive(self) -> bool:
        """Whether nothing looks at received messages but the service classes: pynetdicom's standard
        EVT_DIMSE_RECV handler only logs (at INFO and DEBUG), holding the AE-wide lock."""
        return not HANDLERS_LOGGER.isEnabledFor(logging.INFO) \
            and _only(self.assoc, evt.EVT_DIMSE_RECV, standard_dimse_recv_handler)

    def _complete(self, message: DIMSEMessage | C_STORE | None) -> bool:
        """As the end of DIMSEServiceProvider.receive_primitive; False when the association must end.
        ``message`` is a C_STORE already when store_request_primitive read its command set."""
        self._message = None
        if message is None:       # a last dataset fragment before any command set
            self._command, self._data = [], []
            DIMSE_LOGGER.error("Received an invalid DIMSE message")
            self.dul.event_queue.put("Evt19")
            return False
        if message.__class__ is C_STORE:
            primitive, kind = message, C_STORE_RQ
            primitive.DataSet = BytesIO(b"".join(self._data))
            self._data = []
            context_id = primitive._context_id
        else:
            if self._data:
                message.data_set = BytesIO(b"".join(self._data))
                self._data = []
            if not self._plain_receive():
                evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": message})
            context_id, kind = message.context_id, message.__class__
            try:
                primitive = message.message_to_primitive()
            except Exception as exc:
                DIMSE_LOGGER.error("Received an invalid DIMSE message")
                DIMSE_LOGGER.exception(exc)
                self.dul.event_queue.put("Evt19")
                return False
        assoc = self.assoc
        if kind in _INLINE_REQUESTS and assoc.serve_inline_requests and self.msg_queue.empty() \
                and assoc.is_established and threading.current_thread() is self.dul:
            assoc.serve_inline(primitive, context_id)
        elif isinstance(primitive, C_CANCEL) and len(self.cancel_req) < 10:
            self.cancel_req[primitive.MessageIDBeingRespondedTo] = primitive
        elif isinstance(primitive, N_EVENT_REPORT) and primitive.is_valid_request:
            # pynetdicom serves N-EVENT-REPORT requests at once, on their own thread
            threading.Thread(target=make_target(self._serve_report), args=(primitive, context_id)).start()
        else:
            self.msg_queue.put((context_id, primitive))
        return True

    def _serve_report(self, primitive: N_EVENT_REPORT, context_id: int) -> None:
        try:
            self.assoc._serve_request(primitive, context_id)
        finally:
            self.assoc.thread_exit()


class _SharedAssociateRq(A_ASSOCIATE_RQ):
    """An A-ASSOCIATE-RQ PDU shared by every association that sends the same bytes (see ``_associate_rq``). Its
    primitive's presentation contexts are built once and shared too: they are only read (the negotiation
    makes new contexts for its answer)."""

    _contexts: list | None = None

    def to_primitive(self) -> A_ASSOCIATE:
        contexts = self._contexts
        if contexts is None:
            primitive = super().to_primitive()
            self._contexts = list(primitive.presentation_context_definition_list)
            return primitive
        primitive = A_ASSOCIATE()
        primitive.calling_ae_title = self.calling_ae_title
        primitive.called_ae_title = self.called_ae_title
        primitive.application_context_name = self.application_context_name
        primitive._presentation_context_definition_list = list(contexts)
        for item in self.variable_items:
            if isinstance(item, UserInformationItem):
                primitive.user_information = item.to_primitive()
        return primitive


SHARED_REQUEST_MAX = 64 * 1024


@functools.lru_cache(maxsize=64)
def _associate_rq(data: bytes) -> _SharedAssociateRq:
    """A decoded A-ASSOCIATE-RQ PDU, shared by every association that sends the same bytes: a modality asks
    the same each time, and for the ~130 presentation contexts DCMTK's storescu proposes, decoding took 2.4 ms
    and building the primitive 1.6 ms (each UID validated, twice). The PDU is only read afterwards."""
    pdu = _SharedAssociateRq()
    pdu.decode(data)
    return pdu


class FastDUL(DULServiceProvider):
    """pynetdicom's DUL provider, waiting in select instead of polling, with the P-DATA fast path."""

    transport_closed = False   # the peer closed the connection (Evt17)

    def __init__(self, assoc: FastAssociation) -> None:
        super().__init__(assoc)
        self._waker = _Waker()
        self.to_user_queue = _WakingQueue(assoc.wake_event)
        self._chunk = bytearray()
        self._view = memoryview(self._chunk)
        self._pos = self._end = 0
        self.idle = threading.Event()   # set when the state machine reaches Sta1 (idle), and when the DUL ends

    def send_pdu(self, primitive) -> None:
        super().send_pdu(primitive)
        self._waker.wake()

    def _decode_pdu(self, bytestream: bytes) -> tuple:
        """As pynetdicom's (same events), an A-ASSOCIATE-RQ decoded once per distinct request; a request larger
        than any a modality sends (DCMTK's storescu: 9.6 KB) is decoded each time, so that the cache cannot
        be made to hold much."""
        if bytestream[:1] != b"\x01" or len(bytestream) > SHARED_REQUEST_MAX:
            return super()._decode_pdu(bytestream)
        data = bytes(bytestream)
        evt.trigger(self.assoc, evt.EVT_DATA_RECV, {"data": data})
        pdu = _associate_rq(data)
        evt.trigger(self.assoc, evt.EVT_PDU_RECV, {"pdu": pdu})
        return pdu, "Evt6"

    def kill_dul(self) -> None:
        super().kill_dul()
        self._waker.wake()

    def stop_dul(self) -> bool:
        """As pynetdicom's (stop once in Sta1), but the reactor is woken to see it at once and joined, instead of
        being polled while it waits out its timer check: a requestor's release waits for this."""
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._waker.wake()
        if threading.current_thread() is not self and self.is_alive():
            self.join()
        return True

    def _fast_data_allowed(self) -> bool:
        """Whether P-DATA-TFs may skip pynetdicom's PDU objects and state machine: no handler would see the
        difference (checked once per read, not per PDU)."""
        handlers = self.assoc._handlers
        return (not _config.STORE_RECV_CHUNKED_DATASET
                and not handlers.get(evt.EVT_DATA_RECV) and not handlers.get(evt.EVT_FSM_TRANSITION)
                and all(h[0] is standard_pdu_recv_handler for h in handlers.get(evt.EVT_PDU_RECV, ())))

    # -- receiving: a buffer of what the socket gave, cut into PDUs ------------------------------------------
    # Each recv asks for RECV_CHUNK bytes into a fresh bytearray, so one system call brings several PDUs;
    # a PDU within one chunk is a view of it (the DIMSE assembler keeps views of the fragments until the
    # message is complete, so a chunk is never reused); the rest of a chunk is carried into the next.

    def _buffered_pdu(self) -> bool:
        """Whether a whole PDU waits in the receive buffer."""
        avail = self._end - self._pos
        return avail >= 6 and avail >= 6 + _UINT4.unpack_from(self._chunk, self._pos + 2)[0]

    def _take(self, sock: socket.socket, size: int) -> memoryview:
        """The next ``size`` received bytes (fewer when the peer closed the connection); may raise OSError."""
        pos, avail = self._pos, self._end - self._pos
        if avail >= size:
            self._pos = pos + size
            return self._view[pos:pos + size]
        if size > _LARGE_PDU:
            data = bytearray(self._view[pos:self._end])
            while len(data) < size:
                piece = sock.recv(min(size - len(data), 1 << 20))
                if not piece:
                    break
                data += piece
            self._pos = self._end
            return memoryview(data)
        chunk = bytearray(max(size, RECV_CHUNK))
        view = memoryview(chunk)
        view[:avail] = self._view[pos:self._end]
        filled = avail
        while filled < size:
            n = sock.recv_into(view[filled:])
            if not n:
                break
            filled += n
        self._chunk, self._view, self._end = chunk, view, filled
        self._pos = min(size, filled)
        return view[:self._pos]

    def _is_transport_event(self) -> bool:
        if self._buffered_pdu():
            self._read_pdu_data()
            return True
        return super()._is_transport_event()

    def _read_pdu_data(self) -> None:
        """As pynetdicom's (same events, same log messages), through the receive buffer; a P-DATA-TF of an
        established association goes to the DIMSE assembler at once (the FSM's DT-2, Sta6 to Sta6), and the
        P-DATA-TFs already buffered behind it too."""
        sock = self.socket.socket if self.socket is not None else None
        if type(sock) is not socket.socket:
            super()._read_pdu_data()       # TLS and anything unusual: pynetdicom's own path
            return
        fast = self._fast_data_allowed()
        while True:
            try:
                header = self._take(sock, 6)
            except (OSError, TimeoutError) as exc:
                LOGGER.error("Connection closed before the entire PDU was received")
                LOGGER.exception(exc)
                self.event_queue.put("Evt17")
                return
            if len(header) < 6:
                self.event_queue.put("Evt17")
                return
            pdu_type, length = header[0], _UINT4.unpack_from(header, 2)[0]
            if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
                LOGGER.error(f"Unknown PDU type received '0x{pdu_type:02X}'")
                self.event_queue.put("Evt19")
                return
            try:
                body = self._take(sock, length)
            except (OSError, TimeoutError) as exc:
                LOGGER.error("Connection closed before the entire PDU was received")
                LOGGER.exception(exc)
                self.event_queue.put("Evt17")
                return
            if len(body) != length:
                LOGGER.error(f"The received PDU is shorter than expected ({6 + len(body)} of {6 + length} "
                             "bytes received)")
                self.event_queue.put("Evt17")
                return
            # DT-2 in Sta6, with nothing queued before it for the state machine
            if pdu_type == 0x04 and fast and self.state_machine.current_state == "Sta6" \
                    and not self.event_queue.queue:
                items = _pdv_items(body)
                if items is not None:
                    self.assoc.dimse.receive_items(items)
                    if self._buffered_pdu() and not self.event_queue.queue and not self.to_provider_queue.queue \
                            and not self._kill_thread:
                        continue
                    return
            try:
                decoded, event = self._decode_pdu(bytes(header) + bytes(body))
                self.event_queue.put(event)
            except Exception as exc:
                LOGGER.error("Unable to decode the received PDU data")
                LOGGER.exception(exc)
                self.event_queue.put("Evt19")
                return
            self._recv_pdu.put(decoded)
            return

    def _wait(self) -> None:
        """Until the socket has data, a primitive is queued, the reactor is killed, or a timer may expire."""
        if self._buffered_pdu():
            return
        if self._pos == self._end and self._end:    # all consumed: no chunk kept while idle
            self._chunk = bytearray()
            self._view = memoryview(self._chunk)
            self._pos = self._end = 0
        timeout = IDLE_CHECK
        if self.artim_timer._start_time is not None and self.artim_timer.timeout is not None:
            timeout = max(0.0, min(timeout, self.artim_timer.remaining))
        waitables: list = [self._waker]
        transport = self.socket
        if transport is not None and transport._is_connected and transport.socket is not None \
                and transport.socket.fileno() >= 0:
            waitables.append(transport.socket)
        sock = transport.socket if transport is not None else None
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return      # decrypted bytes wait inside the TLS object, where select does not see them
        try:
            ready, _, _ = select.select(waitables, [], [], timeout)
        except (OSError, ValueError):       # the socket was closed by another thread meanwhile
            ready = []
        if self._waker in ready:
            self._waker.drain()

    def run_reactor(self) -> None:
        """pynetdicom's DUL loop (dul.py, 3.0), with ``_wait`` in place of its 1 ms sleep."""
        self._idle_timer.start()
        sleep = False
        try:
            while True:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()
                    sleep = True
                if sleep:
                    self._wait()
                if self._kill_thread:
                    break
                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")
                try:
                    if self._process_recv_primitive():
                        pass
                    elif self._is_transport_event():
                        self._idle_timer.restart()
                except Exception as exc:
                    LOGGER.error("Exception in DUL.run(), aborting association")
                    LOGGER.exception(exc)
                    abort_pdu = A_ABORT_RQ()
                    abort_pdu.source = 0x02
                    abort_pdu.reason_diagnostic = 0x00
                    self.socket.send(abort_pdu.encode())
                    self.assoc.is_aborted = True
                    self.assoc.is_established = False
                    self.assoc._kill = True
                    self._kill_thread = True
                    return
                try:
                    event = self.event_queue.get(block=False)
                except queue.Empty:
                    sleep = True
                    continue
                self.state_machine.do_action(event)
                if self.state_machine.current_state == "Sta1":
                    self.idle.set()
                if event == "Evt17":
                    self.transport_closed = True
                    self.assoc.wake_event.set()   # an acceptor still waiting for its A-ASSOCIATE-RQ ends now
                sleep = False
        finally:
            self._waker.close()
            self.idle.set()
            self.assoc.wake_event.set()      # the association reactor checks whether we are alive
            self.assoc.thread_exit()


class FastAssociation(Association):
    """An association (acceptor, or requestor through ``FastAE.associate``) whose reactors wait for a signal
    instead of polling."""

    def __init__(self, ae, mode: str, *, serve_inline: bool = False) -> None:
        self.wake_event = threading.Event()
        self.serve_inline_requests = serve_inline
        self.move_originator: str | None = None     # FastAE.associate
        # Whether the caller may not store (set by the SCP): checked on a C-STORE-RQ's command set, so that a
        # refused caller's association ends before its dataset is sent (FastDimse.receive_items)
        self.refuses_store = None
        # Called by each thread the association runs besides its own (the DUL, N-EVENT-REPORT handlers) as it
        # ends: per-thread resources such as the database connections its handlers opened.
        self.thread_exit_hooks: list = []
        super().__init__(ae, mode)
        self.dul = FastDUL(self)
        self.dimse = FastDimse(self)
        self.dimse.msg_queue = _WakingQueue(self.wake_event)
        # pynetdicom set these on the DUL it made; set them again on ours
        self.acse_timeout = self.acse_timeout
        self.network_timeout = self.network_timeout

    def _bind_defaults(self) -> None:
        super()._bind_defaults()
        self.pdu_logging_unbind()

    def pdu_logging_unbind(self) -> None:
        """Unbind pynetdicom's standard PDU handlers unless its DEBUG logs are on: they only log at DEBUG,
        but format every PDU whatever the level (each presentation context of an A-ASSOCIATE: ~1 ms for
        DCMTK's storescu), under the AE-wide lock."""
        if not HANDLERS_LOGGER.isEnabledFor(logging.DEBUG):
            self.unbind(evt.EVT_PDU_RECV, standard_pdu_recv_handler)
            self.unbind(evt.EVT_PDU_SENT, standard_pdu_sent_handler)

    def thread_exit(self) -> None:
        for hook in self.thread_exit_hooks:
            try:
                hook()
            except Exception:
                LOGGER.exception("association thread exit hook failed")

    def set_socket(self, sock) -> None:
        super().set_socket(sock)
        if sock.socket is not None and self.network_timeout is not None:
            sock.socket.settimeout(self.network_timeout)

    def kill(self) -> None:
        self._kill = True
        self.wake_event.set()
        if threading.current_thread() is self.dul:
            # pynetdicom's kill waits for the DUL to reach Sta1: the DUL itself cannot wait for that
            self._reactor_checkpoint.set()
            self.is_established = False
            self._is_paused = True
            return
        # As pynetdicom's, which polls stop_dul every 10 ms (every 0.2 ms with _PollingClock): we wait for
        # the DUL to reach Sta1 instead (after an A-RELEASE-RP it waits for the peer to close the connection).
        self._reactor_checkpoint.set()
        self.is_established = False
        self._is_paused = True
        dul = self.dul
        while dul.is_alive():
            dul.idle.clear()
            if dul.stop_dul():
                break
            dul.idle.wait(0.01)

    def _abort_blocking(self, block: bool = True) -> None:
        # A C-STORE served on the DUL thread may abort (a refused request): that thread cannot block on
        # itself, so the abort is queued and the DUL sends it when the handler returns.
        super()._abort_blocking(block and threading.current_thread() is not self.dul)

    def serve_inline(self, primitive, context_id: int) -> None:
        """Serve a C-STORE request on the DUL thread, the one that received it: the handler runs, its
        response is queued and the DUL sends it next, with no hand-over to the association reactor and back
        (two thread wake-ups per instance, each a scheduling delay on a busy machine). The peer sends
        nothing else meanwhile (PS3.7: one outstanding operation, as negotiated by pynetdicom); the reactor
        still watches the timers. Handlers that run here must not wait for the peer (no send_* on this
        association, no release)."""
        paused = self._is_paused
        try:
            self._serve_request(primitive, context_id)
        finally:
            self._is_paused = paused

    def run_reactor(self) -> None:
        """pynetdicom's, except that an acceptor whose peer closes the connection before its A-ASSOCIATE-RQ
        (a TCP health check, a port scan) ends at once: pynetdicom waits for the ACSE timeout (DicomScpTimeout,
        30 s) and the connection counts against DicomThreadsCount all that time."""
        if self.is_acceptor and not self._started_dul:
            self.dul.start()
            self._started_dul = True
            self._dul_ready.wait()
            if not self._association_requested():
                self.kill()
                sock = self.dul.socket
                if self._server and sock is not None and sock.socket:
                    self._server.shutdown_request(sock.socket)
                return
        super().run_reactor()

    def _association_requested(self) -> bool:
        """Wait until the DUL has the peer's A-ASSOCIATE-RQ for us (True: pynetdicom's reactor takes it from the
        queue), or the connection closed, the DUL ended, or the ACSE timeout passed (False)."""
        deadline = None if self.acse_timeout is None else time.monotonic() + self.acse_timeout
        while self.dul.to_user_queue.empty():
            if self.dul.transport_closed or not self.dul.is_alive():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self.wake_event.wait(IDLE_CHECK if remaining is None else min(remaining, IDLE_CHECK))
            self.wake_event.clear()
        return True

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor loop (association.py, 3.0), waiting on ``wake_event`` instead of sleeping
        1 ms; it loops at once while messages keep coming."""
        self._is_paused = False
        busy = False
        while not self._kill:
            if not busy:
                # Parked: a thread that pauses the reactor (the send_* methods) may go on at once.
                self._is_paused = True
                self.wake_event.wait(IDLE_CHECK)
                self.wake_event.clear()
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            busy = msg is not None
            if msg:
                self._serve_request(msg, context_id)

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                ASSOC_LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                ASSOC_LOGGER.info(log_msg)
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                ASSOC_LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class FastRequestHandler(RequestHandler):
    """pynetdicom's request handler, making a FastAssociation, with Nagle's algorithm off on its socket."""

    serve_inline = False     # see FastAssociation.serve_inline

    def _create_association(self) -> FastAssociation:
        """pynetdicom's RequestHandler._create_association (3.0) with our association class."""
        # Nagle's algorithm and delayed ACKs stall every small DIMSE answer by ~40 ms (DESIGN.md).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ae, server = self.ae, self.server
        assoc = FastAssociation(ae, MODE_ACCEPTOR, serve_inline=self.serve_inline)
        assoc._server = server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        assoc.set_socket(AssociationSocket(assoc, client_socket=self.request))
        assoc.acceptor.maximum_length = ae.maximum_pdu_size
        assoc.acceptor.ae_title = server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(server.contexts)
        assoc.requestor.address_info = self.remote
        for event, bound in server._handlers.items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler in bound:
                    assoc.bind(event, handler[0], handler[1])
        assoc.pdu_logging_unbind()    # the server's defaults bound them again
        return assoc


class FastAE(AE):
    """pynetdicom's AE whose associations as requestor are FastAssociations: our SCU requests (store jobs,
    queries, retrieves, storage commitment reports) and the C-MOVE sub-operations pynetdicom opens for our SCP
    (it calls ``self.ae.associate``). Each response is read when the socket has it instead of at the DUL's next
    1 ms poll, and an idle association costs no CPU."""

    def associate(self, addr, port: int, contexts=None, ae_title: str = "ANY-SCP",
                  max_pdu: int | None = None, ext_neg=None, bind_address=None, tls_args=None,
                  evt_handlers=None, move_originator: str | None = None, unestablished=None) -> Association:
        """As AE.associate (pynetdicom 3.0), with a FastAssociation; returns the association whatever the outcome
        (``is_established``, ``is_rejected``, ``is_aborted``). The maximum PDU length we advertise is the AE's
        ``maximum_pdu_size`` unless ``max_pdu`` is given: Orthanc's MaximumPduLength applies to its SCU too, where
        pynetdicom would advertise its own default (16382). ``move_originator``: the AET of the C-MOVE these are
        the sub-operations of, named by their C-STOREs (pynetdicom names its own AE there, Orthanc the caller).
        ``unestablished``: called (its socket closed) when the association is refused or cannot be made, to answer
        a C-MOVE as Orthanc does (pynetdicom answers 0xA801, "move destination unknown")."""
        remote = AddressInformation.from_addr_port(addr, port)
        if bind_address is None:
            bind_address = ("::0", 0) if remote.address_family == socket.AF_INET6 else ("", 0)
        local = AddressInformation.from_tuple(bind_address)
        assoc = FastAssociation(self, MODE_REQUESTOR)
        assoc.move_originator = move_originator
        assoc.name = f"RequestorThread@{datetime.now():%Y%m%d%H%M%S}"
        transport = self._create_socket(assoc, local, tls_args)
        # Before connecting, so the A-ASSOCIATE-RQ already goes out at once: Nagle's algorithm with delayed ACKs
        # stalls every small DIMSE message by ~40 ms (DESIGN.md)
        transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assoc.set_socket(transport)
        assoc.acceptor.ae_title = ae_title
        assoc.acceptor.address_info = remote
        assoc.requestor.address_info = local
        assoc.requestor.ae_title = self.ae_title
        assoc.requestor.maximum_length = self.maximum_pdu_size if max_pdu is None else max_pdu
        assoc.requestor.implementation_class_uid = self.implementation_class_uid
        assoc.requestor.implementation_version_name = self.implementation_version_name
        for item in ext_neg or []:
            assoc.requestor.add_negotiation_item(item)
        contexts = contexts or self.requested_contexts
        self._validate_requested_contexts(contexts)
        if not contexts:
            raise RuntimeError("At least one requested presentation context is required before associating "
                               "with a peer")
        contexts = deepcopy(contexts)
        for index, context in enumerate(contexts):
            context.context_id = 2 * index + 1
        assoc.requestor.requested_contexts = contexts
        for handler in evt_handlers or []:
            assoc.bind(*handler)
        assoc.request()
        if assoc.is_established:
            # pynetdicom connects with the connection timeout, then clears it: a peer that stops in the middle of
            # a PDU must end the association (network timeout), not block its DUL for ever.
            if transport.socket is not None:
                transport.socket.settimeout(assoc.network_timeout)
            assoc.start()
        elif unestablished is not None:
            if assoc.dul.socket is not None:
                assoc.dul.socket.close()
            unestablished()
        return assoc
