"""The DICOM server (SCP) on pynetdicom: C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET and storage commitment, with
Orthanc's access rules, started by ``manage.py serve`` or ``manage.py dicomserver``.

Access (Orthanc's OrthancApplicationEntityFilter, checked live against 1.10.1):

- An association is rejected (permanent, service user; PS3.8 9.3.4) when DicomCheckCalledAet is on and the
  called AET is not DicomAet (reason 7), or when no DicomAlwaysAllow* option is on and the calling AET is not
  a known modality (reason 3; with DicomCheckModalityHost its host must be the caller's IP).
- Each request is then allowed by DicomAlwaysAllowEcho/Store/Find/Move/Get, or by the AllowEcho, AllowStore,
  AllowFind, AllowMove, AllowGet, AllowNAction, AllowEventReport flags of the caller's modality (when several
  modalities share its AET, the one whose host is the caller's IP). A refused request aborts the
  association, as Orthanc does (DIMSE_ILLEGALASSOCIATION).

Presentation contexts are negotiated per association, for the abstract syntaxes the caller proposes: the
storage SOP classes of AcceptedSopClasses/RejectedSopClasses with the transfer syntaxes accepted now
(AcceptedTransferSyntaxes, the *TransferSyntaxAccepted options, PUT /tools/accepted-transfer-syntaxes),
unknown SOP classes when UnknownSopClassAccepted is on, and Verification, the patient- and study-root
query/retrieve models and storage commitment in the uncompressed transfer syntaxes.

C-STORE keeps the dataset as received: the Part 10 file is the file meta group we write followed by the
encoded dataset pynetdicom hands over, never decoded and re-encoded; ``instance_store`` is the one way in.
Associations are pynetdicom's with the receive path of archive/network/association.py (no polling, PDUs
read in bulk, fragments joined once, C-STOREs served on the thread that received them).

Processes: Python runs one thread at a time per process, so ``serve_forever`` can run in several processes
forked on one listening socket (``dicomserver --processes N``); each process takes a new association only
when it is no busier than the others (a shared array of association counts), so four associations on two
processes are served two by two. The socket also has SO_REUSEPORT, so that further ``dicomserver`` commands
on the same host can listen on the same port (the kernel spreads the connections between them).
DicomThreadsCount bounds the associations one process serves at once; the others wait in the backlog, as
they wait for a free thread in Orthanc.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pydicom
from django.conf import settings
from django.db import connections
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.acse import ACSE
from pynetdicom.presentation import PresentationContext, build_context, negotiate_as_acceptor
from pynetdicom.service_class import StorageServiceClass, attempt
from pynetdicom.sop_class import register_uid, uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from archive import metrics, runtime
from archive.dicom.tags import dataset_group_invalid
from archive.errors import ArchiveError, BadFileFormat
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.metrics import timed
from archive.network import registry
from archive.network.association import FastAE, FastRequestHandler
from archive.network.cfind import LEVELS, QueryRefused, find_answers
from archive.network.encoded import encoded_instance
from archive.network.memo import IdentityMemo
from archive.network.registry import Modality
from archive.network.storage_commitment import (
    STORAGE_COMMITMENT_PUSH_MODEL,
    commitment_report_receive,
    commitment_request_parse,
)
from archive.network.tls import TlsSettings, client_context, server_context
from archive.network.transcoding import SendPolicy, send_policy, storage_contexts
from archive.selectors import instance_dicom_files

logger = logging.getLogger(__name__)

# -- DIMSE statuses (PS3.4 annexes B, C, J; PS3.7 C) -----------------------------------------------------------
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES = 0xA700            # C-STORE/C-FIND "Refused: out of resources": Orthanc's answer to a failed
                                     # store
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900   # C-STORE: the dataset's SOP class/instance differ from the request
CANNOT_UNDERSTAND = 0xC000           # C-STORE "Error: cannot understand"; C-FIND/C-MOVE/C-GET "unable to process"
PROCESSING_FAILURE = 0x0110          # N-ACTION/N-EVENT-REPORT
NO_SUCH_ACTION_TYPE = 0x0123

UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
# C-ECHO, C-FIND, C-MOVE, C-GET, storage commitment: Orthanc's CommandDispatcher prefers explicit little endian,
# then explicit big endian, then implicit (pynetdicom accepts the first of ours the caller proposes)
GENERIC_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2")
# C-STORE: Orthanc's (1.9+) storage contexts prefer explicit little endian, then implicit, then explicit big endian,
# then the other accepted syntaxes in their usual order; implicit first would lose the VR of private tags
STORAGE_PREFERRED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
VERIFICATION = "1.2.840.10008.1.1"
QUERY_RETRIEVE = {
    "1.2.840.10008.5.1.4.1.2.1.1": "Find", "1.2.840.10008.5.1.4.1.2.2.1": "Find",    # patient, study root
    "1.2.840.10008.5.1.4.1.2.1.2": "Move", "1.2.840.10008.5.1.4.1.2.2.2": "Move",
    "1.2.840.10008.5.1.4.1.2.1.3": "Get", "1.2.840.10008.5.1.4.1.2.2.3": "Get",
}
GET_WITHOUT_BULK_DATA = "1.2.840.10008.5.1.4.1.2.5.3"   # Composite Instance Retrieve Without Bulk Data
_NON_STORAGE = frozenset({VERIFICATION, STORAGE_COMMITMENT_PUSH_MODEL, *QUERY_RETRIEVE})

# Orthanc's file meta for what it receives (DCMTK's implementation, as 1.10.1 writes it)
IMPLEMENTATION_CLASS_UID = b"1.2.276.0.7230010.3.0.3.6.7"
IMPLEMENTATION_VERSION_NAME = b"OFFIS_DCMTK_367"

_ALWAYS_OPTIONS = {"Echo": ("DicomAlwaysAllowEcho", True), "Store": ("DicomAlwaysAllowStore", True),
                   "Find": ("DicomAlwaysAllowFind", False), "FindWorklist": ("DicomAlwaysAllowFindWorklist", False),
                   "Move": ("DicomAlwaysAllowMove", False), "Get": ("DicomAlwaysAllowGet", False)}
_MODALITY_FLAGS = {"Echo": "allow_echo", "Store": "allow_store", "Find": "allow_find",
                   "FindWorklist": "allow_find_worklist", "Move": "allow_move", "Get": "allow_get",
                   "NAction": "allow_n_action", "NEventReport": "allow_event_report"}


@dataclass(frozen=True)
class ScpSettings:
    aet: str = "ORTHANC"
    port: int = 4242
    check_called_aet: bool = False
    check_modality_host: bool = False
    always_allow: frozenset[str] = frozenset({"Echo", "Store"})
    timeout: float = 30
    max_pdu: int = 16384
    threads: int = 4
    storage_classes: frozenset[str] = frozenset()
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def from_configuration(cls) -> ScpSettings:
        cfg = settings.ORTHANC
        return cls(aet=str(cfg.get("DicomAet", "ORTHANC")).strip(), port=int(cfg.get("DicomPort", 4242)),
                   check_called_aet=bool(cfg.get("DicomCheckCalledAet", False)),
                   check_modality_host=bool(cfg.get("DicomCheckModalityHost", False)),
                   always_allow=frozenset(kind for kind, (option, default) in _ALWAYS_OPTIONS.items()
                                          if cfg.get(option, default)),
                   timeout=float(cfg.get("DicomScpTimeout", 30) or 0) or None,
                   max_pdu=int(cfg.get("MaximumPduLength", 16384)),
                   threads=max(1, int(cfg.get("DicomThreadsCount", 4))),
                   storage_classes=frozenset(runtime.accepted_sop_classes()),
                   tls=TlsSettings.from_configuration())


# -- who is calling -----------------------------------------------------------------------------------------

@dataclass
class Caller:
    """The remote end of an association, and the modalities it may be."""

    ip: str
    aet: str
    called_aet: str
    candidates: list[Modality] = field(default_factory=list)

    @property
    def modality(self) -> Modality | None:
        """Orthanc's pick: the only modality with this AET, else the one whose host is the caller's IP."""
        if len(self.candidates) == 1:
            return self.candidates[0]
        return next((m for m in self.candidates if m.host == self.ip), None)


def caller_identify(*, ip: str, aet: str, called_aet: str, modalities: dict[str, Modality] | None = None) -> Caller:
    return Caller(ip=ip, aet=aet, called_aet=called_aet,
                  candidates=[m for _name, m in registry.modalities_for_caller(aet, ip, modalities)])


def connection_allowed(caller: Caller, scp: ScpSettings) -> bool:
    """IsAllowedConnection: anyone when some request type is always allowed, else known modalities only."""
    return bool(scp.always_allow) or bool(caller.candidates)


def request_allowed(kind: str, caller: Caller, scp: ScpSettings) -> bool:
    """IsAllowedRequest for Echo, Store, Find, FindWorklist, Move, Get, NAction, NEventReport. Several modalities
    may share the caller's AET: with DicomCheckModalityHost (the candidates are then those at the caller's IP),
    one of them allowing it is enough; without, all of them must allow it (Orthanc 1.10+; the one at the
    caller's IP decided, and none there refused)."""
    if kind in scp.always_allow:
        return True
    flag = _MODALITY_FLAGS[kind]
    allowed = [bool(getattr(m, flag)) for m in caller.candidates]
    if not allowed:
        return False
    return any(allowed) if scp.check_modality_host else all(allowed)


# -- association negotiation ----------------------------------------------------------------------------------

_registered_unknown: set[str] = set()
_register_lock = threading.Lock()


def _is_unknown_sop_class(uid: str, scp: ScpSettings) -> bool:
    if uid in _registered_unknown:
        return True
    return uid not in scp.storage_classes and uid not in _NON_STORAGE and uid_to_service_class(uid) is _BASE_SERVICE


_BASE_SERVICE = uid_to_service_class("1.2.3.4.5.6.7.8.9")   # what pynetdicom gives for a UID it does not know


@functools.lru_cache(maxsize=4096)
def _unknown_to_pynetdicom(uid: str) -> bool:
    # Cached: pynetdicom looks a UID up by scanning the values of its tables, for each proposed context
    return uid_to_service_class(uid) is _BASE_SERVICE


_supported_for: IdentityMemo[list[PresentationContext]] = IdentityMemo(64)


def contexts_for(proposed: list[PresentationContext], scp: ScpSettings) -> list[PresentationContext]:
    """The contexts we support among those proposed (so a caller proposing ten gets ten, not our hundreds).
    Remembered for the same proposed context objects (shared by the associations sending the same request)
    and the same configuration, as the negotiation is (``_negotiated``)."""
    accepted_ts = storage_preference(runtime.accepted_transfer_syntaxes())
    unknown_ok = runtime.unknown_sop_class_accepted()
    key = (tuple(map(id, proposed)), accepted_ts, unknown_ok, scp.storage_classes)
    return list(_supported_for.get(key, list(proposed),
                                   lambda: _contexts_for(proposed, scp, accepted_ts, unknown_ok)))


def storage_preference(accepted: list[str]) -> tuple[str, ...]:
    """The accepted transfer syntaxes in the order C-STORE contexts prefer them (STORAGE_PREFERRED first)."""
    return (*(ts for ts in STORAGE_PREFERRED if ts in accepted), *(ts for ts in accepted if ts not in STORAGE_PREFERRED))


def _contexts_for(proposed: list[PresentationContext], scp: ScpSettings, accepted_ts: tuple[str, ...],
                  unknown_ok: bool) -> list[PresentationContext]:
    out: list[PresentationContext] = []
    seen: set[str] = set()
    for cx in proposed:
        uid = str(cx.abstract_syntax)
        if uid in seen:
            continue
        seen.add(uid)
        if uid in _NON_STORAGE:
            out.append(_supported_context(uid, GENERIC_TRANSFER_SYNTAXES, storage=False))
        elif uid in scp.storage_classes or (unknown_ok and _is_unknown_sop_class(uid, scp)):
            if uid not in _registered_unknown and _unknown_to_pynetdicom(uid):
                _register_storage(uid)   # unknown to pynetdicom: DCMTK's retired classes, UIDs configured
            if accepted_ts:
                out.append(_supported_context(uid, accepted_ts, storage=True))
    return out


@functools.lru_cache(maxsize=4096)
def _supported_context(uid: str, transfer_syntaxes: tuple[str, ...], *, storage: bool) -> PresentationContext:
    """One supported context, built once: pynetdicom validates every UID with a regular expression, which for
    a storescu proposing ~120 classes against ~40 accepted transfer syntaxes was half of an association's
    set-up. pynetdicom's negotiation only reads the acceptor's contexts, so one shared object is safe."""
    context = build_context(uid, list(transfer_syntaxes))
    if storage:
        context.scu_role = True     # the caller stores to us (C-STORE) ...
        context.scp_role = True     # ... or receives from us (C-GET sub-operations)
    return context


def contexts_build(scp: ScpSettings) -> None:
    """Build the contexts of every accepted SOP class now (~30 ms for ~200 classes), not on the first association
    that proposes them: a storescu proposing ~120 classes waited ~20 ms more on each DICOM process's first
    association. Called before the worker processes fork, which share what it built."""
    accepted_ts = storage_preference(runtime.accepted_transfer_syntaxes())
    for uid in _NON_STORAGE:
        _supported_context(uid, GENERIC_TRANSFER_SYNTAXES, storage=False)
    if accepted_ts:
        for uid in scp.storage_classes:
            _supported_context(uid, accepted_ts, storage=True)


def _register_storage(uid: str) -> None:
    """Make pynetdicom dispatch C-STORE of an unknown SOP class to the storage service (promiscuous mode)."""
    with _register_lock:
        if uid not in _registered_unknown:
            register_uid(uid, "UnknownStorage_" + uid.replace(".", "_"), StorageServiceClass)
            _registered_unknown.add(uid)


# How long the modalities read when a connection was accepted stand for its A-ASSOCIATE-RQ: a peer sends it at
# once; one that waits gets them read again, so a modality just added by the REST API is known.
MODALITIES_READ_VALID = 1.0


def _fresh(read: tuple[float, dict[str, Modality]] | None) -> dict[str, Modality] | None:
    if read is None or time.monotonic() - read[0] > MODALITIES_READ_VALID:
        return None
    return read[1]


class _OrthancAcse(ACSE):
    """pynetdicom's ACSE with Orthanc's association checks and our contexts, decided per association."""

    def _negotiate_as_acceptor(self) -> None:
        assoc = self.assoc
        server: DicomServer = assoc._server
        scp = server.scp
        rq = self.requestor.primitive
        calling, called = str(rq.calling_ae_title).strip(), str(rq.called_ae_title).strip()
        reject: tuple[int, int, int] | None = None
        try:
            caller = caller_identify(ip=assoc.requestor.address, aet=calling, called_aet=called,
                                     modalities=_fresh(assoc.modalities_read))
            if scp.check_called_aet and not registry.aet_same(called, scp.aet):
                logger.warning("Rejected association: called AET %r is not %r", called, scp.aet)
                reject = (0x01, 0x01, 0x07)     # rejected-permanent, service user, called AET not recognised
            elif not connection_allowed(caller, scp):
                logger.warning("Rejected association from unknown AET %r on IP %s", calling, caller.ip)
                reject = (0x01, 0x01, 0x03)     # rejected-permanent, service user, calling AET not recognised
            else:
                self.acceptor.supported_contexts = contexts_for(
                    rq.presentation_context_definition_list, scp)
        except Exception:
            logger.exception("association negotiation failed")
            reject = (0x02, 0x01, 0x01)         # rejected-transient, service user, no reason given
        if reject is not None:
            self.send_reject(*reject)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        assoc.orthanc_caller = caller
        super()._negotiate_as_acceptor()


class _RequestHandler(FastRequestHandler):
    server: DicomServer
    serve_inline = True      # handle_store and handle_echo never wait for the peer

    def handle(self) -> None:
        # Counted done once: by the association's thread once it is started (it ends the association), else by
        # this handler when it fails before starting it.
        self._started = False
        try:
            if isinstance(self.request, ssl.SSLSocket) and not self._tls_handshake():
                self.server.association_done()
                return
            super().handle()
        except BaseException:
            if not self._started:
                self.server.association_done()
            raise

    def _tls_handshake(self) -> bool:
        """The TLS handshake, here on the connection's own thread (pynetdicom does it in the accept loop,
        where a peer that never answers would stop every other one), within DicomScpTimeout."""
        sock: ssl.SSLSocket = self.request
        try:
            sock.settimeout(self.server.scp.timeout)
            sock.do_handshake()
            return True
        except (OSError, ValueError) as exc:     # ssl.SSLError is an OSError; a timeout too
            logger.warning("DICOM TLS handshake with %s:%s failed: %s", *self.client_address[:2], exc)
            try:
                sock.close()
            except OSError:
                pass
            return False

    def _create_association(self):
        assoc = super()._create_association()
        assoc.modalities_read = self.server.modalities_taken(self.request)
        assoc.acse = _OrthancAcse(assoc)
        assoc.thread_exit_hooks.append(connections.close_all)   # the DUL thread's database connections
        scp = self.server.scp
        assoc.refuses_store = lambda: _store_refused(assoc, scp)
        run = assoc.run
        server = self.server

        def run_and_clean() -> None:
            try:
                run()
            finally:
                server.association_done()
                connections.close_all()   # this thread's database connections

        assoc.run = run_and_clean
        start = assoc.start

        def start_owned() -> None:
            start()
            self._started = True       # from here the association's thread counts it done

        assoc.start = start_owned
        return assoc


# -- the handlers -----------------------------------------------------------------------------------------------

def _caller(event) -> Caller:
    return event.assoc.orthanc_caller


def _rejected(kind: str, caller: Caller, scp: ScpSettings) -> bool:
    """Whether the caller may not make this request (logged as Orthanc logs it)."""
    activity_mark()
    if request_allowed(kind, caller, scp):
        return False
    logger.warning("Rejected %s request from remote DICOM modality with AET %r and hostname %r",
                   kind, caller.aet, caller.ip)
    return True


def _refused(event, kind: str, scp: ScpSettings) -> bool:
    """True (and the association aborted) when the caller may not make this request."""
    if not _rejected(kind, _caller(event), scp):
        return False
    event.assoc.abort()
    return True


def _store_refused(assoc, scp: ScpSettings) -> bool:
    """Whether the caller of ``assoc`` may not store; the association is then aborted on the C-STORE's command
    set (FastDimse.receive_items), before its dataset comes."""
    caller = getattr(assoc, "orthanc_caller", None)
    return caller is not None and _rejected("Store", caller, scp)


def handle_echo(event, scp: ScpSettings) -> int:
    """evt.EVT_C_ECHO (PS3.7 9.1.5)."""
    if _refused(event, "Echo", scp):
        return CANNOT_UNDERSTAND
    return SUCCESS


_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})


def _leading_uids(data: bytes, implicit: bool) -> tuple[str | None, str | None]:
    """SOPClassUID and SOPInstanceUID from the head of a little endian dataset, without decoding it: they come
    before anything else than a handful of group 0008 elements."""
    found: dict[int, str] = {}
    pos, size = 0, len(data)
    while pos + 8 <= size:
        group, element = struct.unpack_from("<HH", data, pos)
        tag = group << 16 | element
        if tag > 0x00080018:
            break
        element_header = _element_header(data, pos, implicit)
        if element_header is None:
            break
        header, length = element_header
        if length == 0xFFFFFFFF:
            raise ValueError("undefined length")
        if tag in (0x00080016, 0x00080018):
            found[tag] = data[pos + header:pos + header + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos += header + length
    return found.get(0x00080016), found.get(0x00080018)


def leading_invalid_groups_dropped(data: bytes, implicit: bool) -> bytes:
    """The dataset without the elements of invalid groups it starts with (a stray file meta element, as some
    writers leave): Orthanc's C-STORE drops them (DCMTK's removeInvalidGroups when it writes the file). Only
    those leading the dataset, which come before any valid one; left as received when they cannot be walked."""
    pos, size = 0, len(data)
    while pos + 8 <= size:
        group = struct.unpack_from("<H", data, pos)[0]
        if not dataset_group_invalid(group):
            break
        found = _element_header(data, pos, implicit)
        if found is None or found[1] == 0xFFFFFFFF or pos + found[0] + found[1] > size:
            return data
        pos += found[0] + found[1]
    return data[pos:] if pos else data


def _element_header(data: bytes, pos: int, implicit: bool) -> tuple[int, int] | None:
    """(header size, value length) of the little endian element at ``pos``, None when the data ends first."""
    if implicit:
        return 8, struct.unpack_from("<I", data, pos + 4)[0]
    if data[pos + 4:pos + 6] in _LONG_VRS:
        return (12, struct.unpack_from("<I", data, pos + 8)[0]) if pos + 12 <= len(data) else None
    return 8, struct.unpack_from("<H", data, pos + 6)[0]


def little_endian_dataset(ts: str) -> bool | None:
    """Whether a dataset in this transfer syntax is implicit (True) or explicit (False) little endian, as the
    encapsulated syntaxes' are; None for big endian and deflate."""
    if ts == "1.2.840.10008.1.2":
        return True
    if ts == "1.2.840.10008.1.2.1" or ts.startswith(("1.2.840.10008.1.2.4", "1.2.840.10008.1.2.5")):
        return False
    return None


def _sop_uids(data: bytes, ts: str, part10: bytes) -> tuple[str | None, str | None]:
    implicit = little_endian_dataset(ts)
    if implicit is not None:
        try:
            return _leading_uids(data, implicit)
        except (ValueError, struct.error):
            pass
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True, specific_tags=["SOPClassUID",
                                                                                      "SOPInstanceUID"])
    return (str(ds.SOPClassUID) if "SOPClassUID" in ds else None,
            str(ds.SOPInstanceUID) if "SOPInstanceUID" in ds else None)


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB",):
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _uid(text: str) -> bytes:
    raw = text.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def part10_bytes(dataset: bytes, *, sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """A Part 10 file (PS3.10 7.1): preamble, "DICM", the file meta group, then the dataset as received."""
    meta = b"".join((
        _meta_element(0x00020001, b"OB", b"\x00\x01"),
        _meta_element(0x00020002, b"UI", _uid(sop_class)),
        _meta_element(0x00020003, b"UI", _uid(sop_instance)),
        _meta_element(0x00020010, b"UI", _uid(transfer_syntax)),
        _meta_element(0x00020012, b"UI", _uid(IMPLEMENTATION_CLASS_UID.decode())),
        _meta_element(0x00020013, b"SH", IMPLEMENTATION_VERSION_NAME + b" " * (len(IMPLEMENTATION_VERSION_NAME) % 2)),
    ))
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
    return b"".join((b"\x00" * 128, b"DICM", group_length, meta, dataset))


def handle_store(event, scp: ScpSettings) -> int:
    """evt.EVT_C_STORE (PS3.4 B.2.3): the dataset as received, through instance_store."""
    if _refused(event, "Store", scp):
        return OUT_OF_RESOURCES
    caller = _caller(event)
    request = event.request
    try:
        ts = str(event.context.transfer_syntax)
        dataset = request.DataSet.getvalue()
        implicit = little_endian_dataset(ts)
        if dataset[1:2] == b"\x00" and dataset[:1] < b"\x08" and implicit is not None:   # first group below 0008
            dataset = leading_invalid_groups_dropped(dataset, implicit)
        affected_class, affected_instance = str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID)
        data = part10_bytes(dataset, sop_class=affected_class, sop_instance=affected_instance, transfer_syntax=ts)
        sop_class, sop_instance = _sop_uids(dataset, ts, data)
        if not sop_class or not sop_instance:
            logger.warning("C-STORE: no SOP class or instance UID in the dataset from %s", caller.aet)
            return CANNOT_UNDERSTAND
        if sop_class != request.AffectedSOPClassUID or sop_instance != request.AffectedSOPInstanceUID:
            logger.warning("C-STORE: the dataset does not match the request (%s %s)", sop_class, sop_instance)
            return DATASET_DOES_NOT_MATCH_SOP_CLASS
        result = instance_store(data=data, origin=Origin.dicom(remote_ip=caller.ip, calling_aet=caller.aet,
                                                              called_aet=caller.called_aet),
                                written_meta=(len(data) - len(dataset), ts, affected_class, affected_instance),
                                sole_writer=_sole_association(event))
        originator = request.MoveOriginatorApplicationEntityTitle
        if originator and request.MoveOriginatorMessageID is not None and result.dimse_status == 0:
            # A sub-operation of one of our C-MOVEs: its job lists the instance (ReceivedInstancesIds).
            from jobs.kinds.dicom import retrieve_instance_received

            retrieve_instance_received(originator_aet=str(originator), message_id=int(request.MoveOriginatorMessageID),
                                       instance_id=result.ids.instance)
        return result.dimse_status
    except BadFileFormat as exc:
        logger.warning("C-STORE from %s refused: %s", caller.aet, exc)
        return CANNOT_UNDERSTAND
    except ArchiveError as exc:
        logger.error("Exception while storing DICOM from %s: %s", caller.aet, exc)
        return OUT_OF_RESOURCES
    except Exception:
        logger.exception("C-STORE from %s failed", caller.aet)
        return OUT_OF_RESOURCES


def _sole_association(event) -> bool:
    """Whether this association is the only one of the DICOM server, in all its processes."""
    server = getattr(event.assoc, "_server", None)
    return isinstance(server, DicomServer) and server.associations_total() == 1


def handle_find(event, scp: ScpSettings) -> Iterator[tuple[int, Dataset | None]]:
    """evt.EVT_C_FIND (PS3.4 C.4.1): the same parser and matcher as /tools/find (see cfind.py)."""
    if _refused(event, "Find", scp):
        return
    caller = _caller(event)
    modality = caller.modality
    try:
        with timed("orthanc_find_scp_duration_ms"):
            found = find_answers(event.identifier, retrieve_aet=scp.aet,
                                 manufacturer=modality.manufacturer if modality else "Generic")
    except QueryRefused as exc:
        logger.warning("C-FIND request handler has failed: %s", exc)
        yield CANNOT_UNDERSTAND, None
        return
    except Exception:
        logger.exception("C-FIND request handler has failed")
        yield CANNOT_UNDERSTAND, None
        return
    for answer in found.answers:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, answer
    if not found.complete:
        # As Orthanc's FindScp: "Success, but the results were too numerous and had to be cropped", sent as
        # 0xFE00 (matching terminated)
        yield CANCEL, None
        return


# -- C-MOVE and C-GET ----------------------------------------------------------------------------------------

_RETRIEVE_KEYS = ((Level.INSTANCE, "SOPInstanceUID"), (Level.SERIES, "SeriesInstanceUID"),
                  (Level.STUDY, "StudyInstanceUID"), (Level.PATIENT, "PatientID"))


def retrieve_instances(identifier: Dataset, *, each_value_found: bool = False) -> list:
    """The instances a C-MOVE/C-GET identifier names, as OrthancMoveRequestHandler::LookupIdentifiers: the unique
    key of the QueryRetrieveLevel (at study level a non-empty AccessionNumber first), or, without a level, the
    most specific of SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID, PatientID present. Each value of a
    backslash list is looked up exactly: a wildcard is refused (it would send the whole archive). With
    ``each_value_found`` (C-GET), a value that matches nothing refuses the request. Raises QueryRefused."""
    from archive.selectors import resource_descendants

    text = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if text:
        if text not in LEVELS:
            raise QueryRefused(f"bad QueryRetrieveLevel: {text}")
        level = LEVELS[text]
        keyword = dict((lv, kw) for lv, kw in _RETRIEVE_KEYS)[level]
    else:
        level, keyword = next(((lv, kw) for lv, kw in _RETRIEVE_KEYS if identifier.get(kw)), (None, None))
        if level is None:
            raise QueryRefused("no QueryRetrieveLevel and no identifier")
    if level is Level.STUDY and _text(identifier.get("AccessionNumber")):
        keyword = "AccessionNumber"
    values = [v for v in (v.strip() for v in _text(identifier.get(keyword)).split("\\")) if v]
    if not values:
        raise QueryRefused(f"C-MOVE/C-GET without {keyword}")
    if any("*" in v or "?" in v for v in values):
        raise QueryRefused(f"Wildcards are not allowed on {keyword}")
    tag = pydicom.datadict.tag_for_keyword(keyword)
    resources = _exact_matches(level, tag, values)
    if each_value_found and len(values) > 1:
        missing = [v for v in values if not _exact_matches(level, tag, [v])]
        if missing:
            raise QueryRefused(f"unknown resource: {keyword}={missing[0]}")
    if not resources:
        raise QueryRefused(f"unknown resource: {keyword}={_text(identifier.get(keyword))}")
    instances = []
    for resource in resources:
        instances.extend([resource] if level is Level.INSTANCE else
                         resource_descendants(resource=resource, level=Level.INSTANCE))
    return instances


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _exact_matches(level: Level, tag: int, values: list[str]) -> list:
    """The resources of ``level`` whose ``tag`` is one of ``values`` (no wildcard among them: exact matching)."""
    from archive.find import FindQuery, TagConstraint, resources_find

    query = FindQuery(level=level, tags=(TagConstraint(tag=tag, query="\\".join(values)),), case_sensitive=True)
    return resources_find(query=query)


def _syntaxes(instances: list) -> dict[str, set[str]]:
    """SOP class -> transfer syntaxes of the instances, from the index (no file read)."""
    from archive.models import Metadata, MetadataType

    ids = [r.id for r in instances]
    rows: dict[int, dict[int, str]] = {}
    for i in range(0, len(ids), 900):
        for rid, kind, value in Metadata.objects.filter(
                resource_id__in=ids[i:i + 900],
                type__in=(MetadataType.SopClassUid, MetadataType.TransferSyntax)).values_list(
                "resource_id", "type", "value"):
            rows.setdefault(rid, {})[kind] = value
    out: dict[str, set[str]] = {}
    for values in rows.values():
        cls = values.get(MetadataType.SopClassUid)
        if cls:
            out.setdefault(cls, set()).add(values.get(MetadataType.TransferSyntax) or UNCOMPRESSED[1])
    return out


def _dataset(instance, file: tuple[str, int] | None, *, policy: SendPolicy, remote_aet: str,
             bulk_data: bool = True) -> Dataset | str:
    """The stored file to send in a sub-operation (``file`` from instance_dicom_files): as stored
    (archive/network/encoded.py), transcoded as ``policy`` says if the peer did not accept its syntax, unless the
    bulk data must be taken out (Composite Instance Retrieve Without Bulk Data)."""
    from archive.selectors import dicom_file_read

    try:
        if file is None:
            raise FileNotFoundError(f"no DICOM file for instance {instance.public_id}")
        data = dicom_file_read(file)
        if bulk_data:
            return encoded_instance(data, policy=policy, remote_aet=remote_aet)
        return pydicom.dcmread(io.BytesIO(data))
    except Exception:
        logger.exception("C-MOVE/C-GET: cannot read instance %s", instance.public_id)
        return "unreadable"   # not a Dataset: pynetdicom counts the sub-operation as failed


def _store_contexts(instances: list, policy: SendPolicy) -> list[PresentationContext]:
    return storage_contexts(dict(sorted(_syntaxes(instances).items())), policy)


def handle_move(event, scp: ScpSettings):
    """evt.EVT_C_MOVE (PS3.4 C.4.2): the destination AET is looked up among the modalities."""
    if _refused(event, "Move", scp):
        raise RequestRefused
    destination = str(event.move_destination or "").strip()
    try:
        found = registry.modality_by_aet(destination)
    except Exception:
        logger.exception("C-MOVE: cannot read the modalities")
        found = None
    if found is None:
        # Orthanc's MoveScp fails the request (0xC000, zero counts; its REST SCU then answers 422), where
        # pynetdicom would answer 0xA801 "move destination unknown"
        logger.error("C-MOVE: unknown destination AET %r", destination)
        raise RetrieveFailed(CANNOT_UNDERSTAND)
    _name, modality = found
    # A lookup that fails ends here, before the destination is yielded (no association to the destination)
    with timed("orthanc_move_scp_duration_ms"):   # as Orthanc's: the lookup, not the sub-operations
        instances = _retrieve_instances_or_fail(event.identifier, "C-MOVE")
    # pynetdicom associates through our FastAE (no Nagle, no polling: association.py)
    policy = send_policy(modality.allow_transcoding)
    options = {"contexts": _store_contexts(instances, policy), "ae_title": modality.aet,
               "move_originator": _caller(event).aet, "unestablished": _destination_unreachable}
    if modality.use_dicom_tls:
        options["tls_args"] = (client_context(scp.tls), None)
    yield modality.host, modality.port, options
    yield len(instances)
    files = instance_dicom_files(instances)
    for instance in instances:
        if event.is_cancelled:
            yield CANCEL, None
            return
        activity_mark()     # the association to the destination polls fast while sub-operations go on
        yield PENDING, _dataset(instance, files.get(instance.id), policy=policy, remote_aet=modality.aet)


def _destination_unreachable() -> None:
    """A known C-MOVE destination that refuses or does not answer: Orthanc's 0xC000 with zero counts (pynetdicom's
    0xA801 made movescu say "move destination unknown" of a configured one)."""
    logger.error("C-MOVE: cannot associate with the destination")
    raise RetrieveFailed(CANNOT_UNDERSTAND)


class RetrieveFailed(Exception):
    """A C-MOVE or C-GET that fails before any sub-operation: answered as Orthanc's MoveScp/GetScp answer any
    failure, the status (0xC000) with zero sub-operation counts and no identifier (pynetdicom would answer its
    own 0xC5xx/0xC4xx, or a failure with a FailedSOPInstanceUIDList that DCMTK's getscu does not read)."""

    def __init__(self, status: int = CANNOT_UNDERSTAND) -> None:
        super().__init__(f"0x{status:04X}")
        self.status = status


def _retrieve_instances_or_fail(identifier: Dataset, command: str, *, each_value_found: bool = False) -> list:
    try:
        return retrieve_instances(identifier, each_value_found=each_value_found)
    except QueryRefused as exc:
        logger.error("%s request handler has failed: %s", command, exc)
    except Exception:
        logger.exception("%s request handler has failed", command)
    raise RetrieveFailed(CANNOT_UNDERSTAND)


class RequestRefused(Exception):
    """A C-MOVE or C-GET of a caller that may not make it: the association is already aborted (_refused), so
    nothing is answered (pynetdicom would log the handler's early return as a failure, with a traceback)."""


class _OrthancAttempt(attempt):
    """pynetdicom's ``attempt`` (the guard around each call of a handler), answering RetrieveFailed as
    Orthanc does: its status, the sub-operation counts at zero."""

    def __exit__(self, exc_type, exc_val, exc_tb):
        if isinstance(exc_val, RequestRefused):
            self._success = False
            return True
        if not isinstance(exc_val, RetrieveFailed):
            return super().__exit__(exc_type, exc_val, exc_tb)
        if self._assoc is not None:
            self._assoc.abort = self._assoc._abort_blocking
        self._rsp.Status = exc_val.status
        for name in ("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                     "NumberOfWarningSuboperations"):
            setattr(self._rsp, name, 0)
        self._dimse.send_msg(self._rsp, self._cx_id)
        self._success = False
        return True


def handle_get(event, scp: ScpSettings):
    """evt.EVT_C_GET (PS3.4 C.4.3): the sub-operations go back on the same association."""
    if _refused(event, "Get", scp):
        raise RequestRefused
    instances = _retrieve_instances_or_fail(event.identifier, "C-GET", each_value_found=True)
    bulk_data = str(event.request.AffectedSOPClassUID) != GET_WITHOUT_BULK_DATA
    caller = _caller(event)
    policy = send_policy(caller.modality.allow_transcoding if caller.modality is not None else True)
    yield len(instances)
    files = instance_dicom_files(instances)
    for instance in instances:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, _dataset(instance, files.get(instance.id), policy=policy, remote_aet=caller.aet,
                                bulk_data=bulk_data)


# -- storage commitment ---------------------------------------------------------------------------------------

def handle_n_action(event, scp: ScpSettings) -> tuple[int, Dataset | None]:
    """evt.EVT_N_ACTION: a storage commitment request (PS3.4 J.3.2); the report follows on a new association
    to the caller's modality."""
    if _refused(event, "NAction", scp):
        return PROCESSING_FAILURE, None
    caller = _caller(event)
    try:
        if str(event.request.RequestedSOPClassUID) != STORAGE_COMMITMENT_PUSH_MODEL \
                or event.request.ActionTypeID != 1:
            return NO_SUCH_ACTION_TYPE, None
        request = commitment_request_parse(event.action_information)
        modality = caller.modality
        if modality is None:
            logger.error("storage commitment: unknown remote modality %r", caller.aet)
            return PROCESSING_FAILURE, None
        # A job sends the report (Orthanc's StorageCommitmentScpJob), calling with the AET the modality called
        from jobs.kinds.dicom import storage_commitment_scp_submit

        storage_commitment_scp_submit(request=request, called_aet=caller.called_aet or scp.aet, modality=modality)
        return SUCCESS, None
    except Exception:
        logger.exception("storage commitment request from %s failed", caller.aet)
        return PROCESSING_FAILURE, None


def handle_n_event_report(event, scp: ScpSettings) -> tuple[int, Dataset | None]:
    """evt.EVT_N_EVENT_REPORT: a storage commitment report for a request our SCU made."""
    if _refused(event, "NEventReport", scp):
        return PROCESSING_FAILURE, None
    try:
        status = commitment_report_receive(event_type=int(event.request.EventTypeID),
                                           info=event.event_information, remote_aet=_caller(event).aet)
        return status, None
    except Exception:
        logger.exception("storage commitment report from %s failed", _caller(event).aet)
        return PROCESSING_FAILURE, None


def handlers(scp: ScpSettings) -> list:
    return [(evt.EVT_C_ECHO, handle_echo, [scp]), (evt.EVT_C_STORE, handle_store, [scp]),
            (evt.EVT_C_FIND, handle_find, [scp]), (evt.EVT_C_MOVE, handle_move, [scp]),
            (evt.EVT_C_GET, handle_get, [scp]), (evt.EVT_N_ACTION, handle_n_action, [scp]),
            (evt.EVT_N_EVENT_REPORT, handle_n_event_report, [scp])]


# -- the server -------------------------------------------------------------------------------------------------

FAST_POLL = float(os.environ.get("DICOM_FAST_POLL", "0.0002"))       # seconds between polls of pynetdicom's reactors while associations are busy
ACTIVE_WINDOW = 0.05      # ... for this long after the last DIMSE request
_last_activity = [0.0]


class _PollingClock:
    """pynetdicom's two reactors per association (DUL and association) poll their queues with 1 ms sleeps;
    on a synchronous C-STORE stream each instance waits for both (500 instances on one association: 1.86 s
    with 1 ms, 1.51 s with 0.2 ms, same CPU). Shorter sleeps while requests come in, 1 ms when idle, so an
    idle association does not spin."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds > FAST_POLL and time.monotonic() - _last_activity[0] < ACTIVE_WINDOW:
            seconds = FAST_POLL
        time.sleep(seconds)


def _pynetdicom_install() -> None:
    """Our changes to pynetdicom's module-level behaviour: the polling clock, the remembered negotiation, the
    answer to a retrieve that fails before its sub-operations (_OrthancAttempt)."""
    import pynetdicom.acse
    import pynetdicom.association
    import pynetdicom.dul
    import pynetdicom.service_class

    for module in (pynetdicom.association, pynetdicom.dul):
        if not isinstance(module.time, _PollingClock):
            module.time = _PollingClock()
    if pynetdicom.acse.negotiate_as_acceptor is negotiate_as_acceptor:
        pynetdicom.acse.negotiate_as_acceptor = _negotiated
    pynetdicom.service_class.attempt = _OrthancAttempt


_negotiations: IdentityMemo[tuple[list, list]] = IdentityMemo(64)


def _negotiated(rq_contexts: list, ac_contexts: list, roles: dict | None = None) -> tuple[list, list]:
    """pynetdicom's negotiate_as_acceptor, remembered for the same proposed and supported context objects (the
    proposed ones are shared by every association sending the same A-ASSOCIATE-RQ, the supported ones by every
    association with the same configuration): for DCMTK's storescu, 1.5 ms of each association's set-up. The
    answer's contexts are shared too; pynetdicom only reads them afterwards."""
    key = (tuple(map(id, rq_contexts)), tuple(map(id, ac_contexts)), tuple(sorted((roles or {}).items())))

    def negotiate() -> tuple[list, list]:
        result, ac_roles = negotiate_as_acceptor(rq_contexts, ac_contexts, roles)
        return list(result), list(ac_roles)

    result, ac_roles = _negotiations.get(key, (list(rq_contexts), list(ac_contexts)), negotiate)
    return list(result), list(ac_roles)


def activity_mark() -> None:
    _last_activity[0] = time.monotonic()


class DicomServer(ThreadedAssociationServer):
    """pynetdicom's server with SO_REUSEPORT, our negotiation, and a load-aware accept loop (``serve``)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, ae: AE, scp: ScpSettings, *, host: str = "0.0.0.0", port: int | None = None,
                 loads=None, slot: int = 0) -> None:
        self.scp = scp
        self.loads = loads          # shared counts of associations per process (multiprocessing.Array)
        self.slot = slot
        self.active = 0
        self._lock = threading.Lock()
        self._modalities_read: tuple | None = None   # (connection, when, modalities) being handed over
        metrics.registry.dicom_threads_set(scp.threads)   # orthanc_available_dicom_threads
        super().__init__(ae, (host, scp.port if port is None else port), scp.aet, [],
                         ssl_context=server_context(scp.tls) if scp.tls.enabled else None,
                         evt_handlers=handlers(scp), request_handler=_RequestHandler)

    def get_request(self):
        """Accept a connection; with DICOM TLS, wrap it without the handshake (see _RequestHandler)."""
        client, address = self.socket.accept()
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def process_request(self, request, client_address) -> None:
        """Start serving an accepted connection. The registered modalities are read here, on the accept
        loop's thread, whose database connection lasts: the association's own thread would open one for
        this alone (~0.5 ms of its set-up, and as much to close it). A plain connection is handed to its
        association from here; a TLS one gets a thread of its own for the handshake (_RequestHandler), and
        its association reads the modalities itself."""
        with self._lock:
            self.active += 1
            if self.loads is not None:
                self.loads[self.slot] = self.active
            metrics.registry.dicom_associations(self.active)
        if isinstance(request, ssl.SSLSocket):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.association_done()
                raise
            return
        try:
            self._modalities_read = (request, time.monotonic(), registry.modalities_all())
        except Exception:
            connections.close_all()    # a broken connection (database restarted): the next accept opens another
            logger.exception("reading the modalities failed; the association reads them itself")
        # As ThreadingMixIn.process_request_thread, without its thread: the handler only builds the association
        # and starts the association's thread (one thread start less per association, ~0.5 ms).
        try:
            self.finish_request(request, client_address)   # on failure, _RequestHandler.handle counts it done
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)
        finally:
            self._modalities_read = None

    def modalities_taken(self, request) -> tuple[float, dict[str, Modality]] | None:
        """The modalities read when ``request`` was accepted (once)."""
        read, self._modalities_read = self._modalities_read, None
        if read is None or read[0] is not request:
            return None
        return read[1], read[2]

    def association_done(self) -> None:
        with self._lock:
            self.active = max(0, self.active - 1)
            if self.loads is not None:
                self.loads[self.slot] = self.active
            metrics.registry.dicom_associations(self.active)

    def associations_total(self) -> int:
        """The associations being served by all the processes sharing the port."""
        return sum(self.loads[:]) if self.loads is not None else self.active

    def _busier_by(self) -> int:
        if self.loads is None or len(self.loads) < 2:
            return 0
        return self.active - min(self.loads[i] for i in range(len(self.loads)) if i != self.slot)

    def _left_to_others(self, selector) -> bool:
        """Give a less busy process time to accept the pending connection (its accept loop may wait for
        its GIL for a few ms); True when the connection is still pending after that: accept it here."""
        deadline = time.monotonic() + 0.025 * self._busier_by()
        while time.monotonic() < deadline:
            time.sleep(0.002)
            if not selector.select(0):
                return False      # taken by another process
            if self._busier_by() <= 0:
                break
        return True

    def serve(self, stop: threading.Event) -> None:
        """Accept associations until ``stop`` is set. Several processes may share the listening socket:
        one that serves more associations than another lets that one accept first."""
        self.socket.setblocking(False)
        try:
            self._serve(stop)
        finally:
            connections.close_all()    # this thread's (process_request)

    def _serve(self, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            while not stop.is_set():
                if not selector.select(0.5):
                    continue
                if self.active >= self.scp.threads:
                    time.sleep(0.005)        # DicomThreadsCount reached: the connection waits in the backlog
                    continue
                if self._busier_by() > 0 and not self._left_to_others(selector):
                    continue
                # Accept (or lose the race: EAGAIN, ignored). Not followed by pynetdicom's service_actions: its
                # full gc.collect() every 60 associations held the GIL ~40 ms over Django's heap; the
                # interpreter's own collections free finished associations.
                self._handle_request_noblock()


def ae_build(scp: ScpSettings) -> AE:
    ae = FastAE(ae_title=scp.aet)    # its C-MOVE sub-operations associate through it
    ae.maximum_pdu_size = scp.max_pdu
    ae.acse_timeout = scp.timeout
    ae.dimse_timeout = scp.timeout
    ae.network_timeout = scp.timeout
    ae.maximum_associations = 1000   # DicomThreadsCount is enforced before accepting (DicomServer.serve)
    return ae


def server_build(*, scp: ScpSettings | None = None, host: str = "0.0.0.0", port: int | None = None,
                 loads=None, slot: int = 0) -> DicomServer:
    """A bound, listening DICOM server (not serving yet: see ``DicomServer.serve`` or ``server_start``)."""
    scp = scp or ScpSettings.from_configuration()
    _pynetdicom_install()
    ae = ae_build(scp)
    server = DicomServer(ae, scp, host=host, port=port, loads=loads, slot=slot)
    ae._servers.append(server)
    contexts_build(scp)
    return server


@dataclass
class RunningServer:
    server: DicomServer
    thread: threading.Thread
    stop_event: threading.Event

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)
        for assoc in self.server.active_associations:
            assoc.abort()
        self.server.server_close()


def server_start(*, scp: ScpSettings | None = None, host: str = "127.0.0.1", port: int | None = 0) -> RunningServer:
    """Serve in a thread of this process (tests, and ``serve`` without separate processes)."""
    server = server_build(scp=scp, host=host, port=port)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), name="dicom-server", daemon=True)
    thread.start()
    return RunningServer(server, thread, stop)
