"""Our DICOM SCU: the associations we open to remote modalities (echo, find, move, get, store, storage
commitment), with pynetdicom, as Orthanc's DicomControlUserConnection, DicomStoreUserConnection and
DicomAssociation do with DCMTK. No database here: callers pass datasets and get datasets, statuses and
typed errors back (archive.errors), with the messages Orthanc gives.

Rules of the standard followed here:

- C-FIND (PS3.4 C.4.1): the identifier carries Query/Retrieve Level and the unique keys of the levels above;
  Orthanc adds the keys of the queried level and of the levels above with universal matching (empty, or "*" for
  the "GE" manufacturer), uses the Patient Root model at the patient level and the Study Root model otherwise.
  A status other than Success or Pending (0xFF00, 0xFF01) fails the request.
- C-MOVE and C-GET (PS3.4 C.4.2, C.4.3): the identifier has the unique keys of the level only (PS3.4
  C.4.2.2.1); pending responses count the sub-operations (remaining, completed, failed, warning), which gives
  the progress. C-GET sub-operations come back on the same association: the storage SOP classes are proposed
  with the SCP role (PS3.7 D.3.3.4, SCP/SCU role selection).
- Storage commitment push model (PS3.4 J.3): an N-ACTION (Action Type 1) on the well-known instance
  1.2.840.10008.1.20.1.1 with a Transaction UID and the Referenced SOP Sequence; the result comes back as an
  N-EVENT-REPORT, usually on an association the remote opens to our SCP (archive.network.queries records it).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, StoragePresentationContexts, build_context, evt
from pynetdicom import sop_class as sop
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import build_role

from archive.errors import ArchiveError, BadFileFormat, NetworkProtocolError, OrthancError
from archive.network.association import FastAE
from archive.network.encoded import (
    accepted_storage,
    dataset_identifiers,
    decoded_dataset,
    instance_to_send,
    part10_meta,
)
from archive.network.registry import Modality
from archive.network.tls import TlsSettings, client_context
from archive.network.transcoding import send_policy, storage_contexts, syntaxes_to_try

logger = logging.getLogger(__name__)

# DIMSE statuses (PS3.7 C, PS3.4 C.4).
SUCCESS = 0x0000
PENDING = (0xFF00, 0xFF01)
UNABLE_TO_PROCESS = 0xC000     # C-FIND/C-MOVE "Failed: unable to process"
DUPLICATE_SOP_INSTANCE = 0x0111
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # PS3.4 J.3.5: the well-known SOP instance

# What a C-GET proposes to receive (Orthanc: its accepted transfer syntaxes).
RECEIVED_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit,
                     JPEGLosslessSV1, JPEG2000Lossless, JPEG2000, JPEGLSLossless, JPEGLSNearLossless, RLELossless]
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


def _error(name: str, code: int, description: str) -> OrthancError:
    """Orthanc's DicomUserConnection errors (2015-2017) when archive.errors has them, else NetworkProtocol."""
    return getattr(OrthancError, name, None) or OrthancError.NETWORK_PROTOCOL


NO_PRESENTATION_CONTEXT = _error("NO_PRESENTATION_CONTEXT", 2015,
                                 "DicomUserConnection: No acceptable presentation context for modality")
DICOM_FIND_UNAVAILABLE = _error("DICOM_FIND_UNAVAILABLE", 2016,
                                "DicomUserConnection: The C-FIND command is not supported by the remote SCP")
DICOM_MOVE_UNAVAILABLE = _error("DICOM_MOVE_UNAVAILABLE", 2017,
                                "DicomUserConnection: The C-MOVE command is not supported by the remote SCP")


class DimseFailure(NetworkProtocolError):
    """A DIMSE request answered with a failure status; ``status`` keeps it (a job's DimseErrorStatus). Orthanc
    answers "unable to process" (0xC000) of C-FIND and C-MOVE with HTTP 422."""

    def __init__(self, details: str, *, status: int, payload: dict | None = None):
        super().__init__(details, payload=payload)
        self.status = status

    @property
    def http_status(self) -> int:
        return 422 if self.status == UNABLE_TO_PROCESS else super().http_status


# -- parameters -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScuParameters:
    """Orthanc's DicomAssociationParameters: who we are, whom we call, the timeout in seconds (0: none)."""

    local_aet: str
    remote: Modality
    timeout: int


def default_aet() -> str:
    return str(settings.ORTHANC.get("DicomAet", "ORTHANC"))


def scu_parameters(*, modality: Modality, local_aet: str | None = None, timeout: int | None = None) -> ScuParameters:
    """The local AET is the body's, else the modality's LocalAet, else DicomAet; the timeout is the body's,
    else the modality's Timeout, else DicomScuTimeout (10 s)."""
    aet = local_aet or modality.local_aet or default_aet()
    if timeout is None:
        timeout = modality.timeout or int(settings.ORTHANC.get("DicomScuTimeout", 10) or 0)
    return ScuParameters(local_aet=aet, remote=modality, timeout=int(timeout))


def _ae(params: ScuParameters) -> AE:
    # The modality's own LocalAet wins over the request's (Orthanc 1.12's DicomAssociation::Open; the routes
    # say "Ignored if DicomModalities already sets LocalAet for this modality"; 1.13 reverses it)
    ae = FastAE(ae_title=params.remote.local_aet or params.local_aet)
    timeout = params.timeout or None
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = int(settings.ORTHANC.get("MaximumPduLength", 16384) or 0)
    return ae


def _tcp_error(host: str, port: int, timeout: int) -> str:
    """Why the TCP connection failed, in DCMTK's words ("TCP Initialization Error: Connection refused"):
    pynetdicom only logs it, so the connection is tried once more to learn the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout or None):
            return "Peer aborted Association (or never connected)"
    except TimeoutError:
        return "TCP Initialization Error: Operation now in progress"
    except OSError as exc:
        reason = exc.strerror or (errno.errorcode.get(exc.errno or 0, "") if exc.errno else "") or str(exc)
        return f"TCP Initialization Error: {reason}"


@contextmanager
def association(params: ScuParameters, contexts: list, *, ext_neg: list | None = None,
                handlers: list | None = None, contextless: bool = False) -> Iterator:
    """An established association, released (or aborted on error) at exit. A failure to connect is Orthanc's
    NetworkProtocol error 'DicomAssociation - connecting to AET "X": ...'. With ``contextless``, a peer that
    accepts the association but none of its contexts gives the association (no context accepted, already
    closed: pynetdicom aborts it) for the caller's own error, as DCMTK keeps such an association and Orthanc's
    C-FIND/C-MOVE then fail with their "command not supported by the remote SCP"."""
    remote = params.remote
    ae = _ae(params)
    tls_args = (client_context(TlsSettings.from_configuration()), None) if remote.use_dicom_tls else None
    assoc = ae.associate(remote.host, remote.port, contexts=contexts[:MAX_CONTEXTS], ae_title=remote.aet,
                         ext_neg=ext_neg, evt_handlers=handlers, tls_args=tls_args)
    if contextless and not assoc.is_established and not assoc.accepted_contexts and assoc.rejected_contexts:
        yield assoc
        return
    if not assoc.is_established:
        if assoc.is_rejected or _rejection_pending(assoc):
            reason = "DUL Association Rejected"
        elif assoc.is_aborted and _reachable(remote.host, remote.port):
            reason = "Peer aborted Association (or never connected)"
        else:
            reason = _tcp_error(remote.host, remote.port, params.timeout)
        raise NetworkProtocolError(f'DicomAssociation - connecting to AET "{remote.aet}": {reason}')
    # Handlers on this association (an N-EVENT-REPORT, on a thread of its own) may open database connections
    assoc.thread_exit_hooks.append(connections.close_all)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _rejection_pending(assoc) -> bool:
    """Whether the peer's A-ASSOCIATE-RJ is still waiting, unread, in the DUL's queue. pynetdicom's requestor
    thread checks the socket is still connected before reading the answer: when the DUL thread already read
    the rejection and closed the socket (a busy machine), it aborts instead and reports "aborted"."""
    return any(isinstance(primitive, A_ASSOCIATE) and primitive.result in (0x01, 0x02)
               for primitive in list(assoc.dul.to_user_queue.queue))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _lost(params: ScuParameters, command: str, assoc=None) -> NetworkProtocolError:
    """No answer: the peer aborted the association (or closed the connection), or the DIMSE timeout elapsed
    (pynetdicom then aborts it itself), each in DCMTK's words as Orthanc gives them."""
    peer_gone = assoc is not None and not getattr(assoc, "_sent_abort", False)
    reason = ("Peer aborted Association (or never connected)" if peer_gone
              else "DIMSE No data available (timeout in non-blocking mode)")
    return NetworkProtocolError(f'DicomAssociation - {command} to AET "{params.remote.aet}": {reason}')


def _hex(status: int) -> str:
    return f"0x{status:04X}"


# -- C-ECHO ---------------------------------------------------------------------------------------------------

def echo(params: ScuParameters) -> bool:
    """C-ECHO (PS3.7 9.1.5): True when the remote answers Success."""
    with association(params, [build_context(sop.Verification)]) as assoc:
        status = assoc.send_c_echo()
        if not status or "Status" not in status:
            raise _lost(params, "C-ECHO", assoc)
        return status.Status == SUCCESS


# -- C-FIND ---------------------------------------------------------------------------------------------------

FIND_MODELS = {"Patient": sop.PatientRootQueryRetrieveInformationModelFind}
FIND_DEFAULT = sop.StudyRootQueryRetrieveInformationModelFind


def find(params: ScuParameters, *, identifier: Dataset, model: str) -> list[Dataset]:
    """One C-FIND with ``identifier`` (already complete) on ``model``: the identifiers of the pending answers."""
    answers: list[Dataset] = []
    with association(params, [build_context(model)], contextless=True) as assoc:
        if not any(c.abstract_syntax == model for c in assoc.accepted_contexts):
            raise ArchiveError(f"Remote AET is {params.remote.aet}", orthanc_error=DICOM_FIND_UNAVAILABLE)
        final = None
        for status, found in assoc.send_c_find(identifier, model):
            if not status or "Status" not in status:
                raise _lost(params, "C-FIND", assoc)
            if status.Status in PENDING:
                if found is not None:
                    answers.append(found)
                continue
            final = status.Status
        if final is None:
            raise _lost(params, "C-FIND", assoc)
    if final != SUCCESS:
        suffix = " (unable to process - invalid query ?)" if final == UNABLE_TO_PROCESS else ""
        raise DimseFailure(f'C-FIND SCU to AET "{params.remote.aet}" has failed with DIMSE status {_hex(final)}'
                           f"{suffix}", status=final)
    return answers


# -- C-MOVE and C-GET -----------------------------------------------------------------------------------------

@dataclass
class SubOperations:
    """The counts of the last pending response (PS3.4 C.4.2.1.6-9)."""

    remaining: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0

    @property
    def fraction(self) -> float:
        total = self.remaining + self.completed + self.failed + self.warning
        return 0.0 if total == 0 else (self.completed + self.failed + self.warning) / total

    def update(self, status: Dataset) -> None:
        for name, attr in (("NumberOfRemainingSuboperations", "remaining"),
                           ("NumberOfCompletedSuboperations", "completed"),
                           ("NumberOfFailedSuboperations", "failed"),
                           ("NumberOfWarningSuboperations", "warning")):
            value = status.get(name)
            if value is not None:
                setattr(self, attr, int(value))


def _retrieve_responses(params: ScuParameters, responses, command: str, assoc) -> Iterator[SubOperations]:
    """Follow the responses of a C-MOVE or C-GET, yielding the progress after each pending one."""
    progress = SubOperations()
    final = None
    for status, _identifier in responses:
        if not status or "Status" not in status:
            raise _lost(params, command, assoc)
        progress.update(status)
        if status.Status in PENDING:
            yield progress
            continue
        final = status.Status
    if final is None:
        raise _lost(params, command, assoc)
    if final != SUCCESS:
        suffix = " (unable to process - resource not found ?)" if final == UNABLE_TO_PROCESS else ""
        raise DimseFailure(f'{command} SCU to AET "{params.remote.aet}" has failed with DIMSE status '
                           f"{_hex(final)}{suffix}", status=final)
    yield progress


def move(params: ScuParameters, *, identifier: Dataset, target_aet: str, message_id: int = 1
         ) -> Iterator[SubOperations]:
    """C-MOVE on the Study Root model (as Orthanc, whatever the level), yielding the sub-operation counts.
    Closing the generator aborts the association (a canceled job)."""
    model = sop.StudyRootQueryRetrieveInformationModelMove
    contexts = [build_context(model), build_context(sop.PatientRootQueryRetrieveInformationModelMove)]
    with association(params, contexts, contextless=True) as assoc:
        if not any(c.abstract_syntax == model for c in assoc.accepted_contexts):
            raise ArchiveError(f"Remote AET is {params.remote.aet}", orthanc_error=DICOM_MOVE_UNAVAILABLE)
        yield from _retrieve_responses(
            params, assoc.send_c_move(identifier, target_aet, model, msg_id=message_id), "C-MOVE", assoc)


def get_storage_contexts(classes: list[str]) -> list:
    """The storage contexts a C-GET proposes (we are their SCP). When the classes are few (SOPClassesInStudy
    known), each compressed syntax goes in a context of its own, beside one with the uncompressed ones: the
    peer then sends each file as it stores it. In one context per class the peer picks one syntax for all its
    files, and real Orthanc, picking an uncompressed one, failed the whole C-GET on a file it cannot decode
    (JPEG 2000 lossy: "Cannot transcode"). Many classes (not known): one context each, within 128."""
    uncompressed = [ts for ts in RECEIVED_SYNTAXES if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)]
    compressed = [ts for ts in RECEIVED_SYNTAXES if ts not in uncompressed]
    if len(classes) * (len(compressed) + 1) > MAX_CONTEXTS - 1:
        return [build_context(uid, RECEIVED_SYNTAXES) for uid in classes]
    return [build_context(uid, group) for uid in classes for group in (uncompressed, *([ts] for ts in compressed))]


def get(params: ScuParameters, *, identifier: Dataset, on_store: Callable, sop_classes: list[str] | None = None
        ) -> Iterator[SubOperations]:
    """C-GET on the Study Root model; each instance that comes back is given to ``on_store(event)`` (in the
    association's thread), which returns the C-STORE status. ``sop_classes`` limits the storage classes
    proposed (SOPClassesInStudy), else the 120 most common ones are."""
    model = sop.StudyRootQueryRetrieveInformationModelGet
    classes = sop_classes or [c.abstract_syntax for c in StoragePresentationContexts]
    classes = classes[:MAX_CONTEXTS - 1]
    contexts = [build_context(model)] + get_storage_contexts(classes)
    roles = [build_role(uid, scp_role=True) for uid in classes]

    def handle_store(event) -> int:
        try:
            return on_store(event)
        except Exception:  # noqa: BLE001 - a handler never raises: the sub-operation fails (PS3.4 C.4.3.3)
            logger.exception("C-GET: storing a received instance failed")
            return 0xC211

    def handle_close(event) -> None:
        from django.db import connection

        connection.close()  # the association's thread opened its own database connection

    handlers = [(evt.EVT_C_STORE, handle_store), (evt.EVT_CONN_CLOSE, handle_close)]
    with association(params, contexts, ext_neg=roles, handlers=handlers, contextless=True) as assoc:
        if not any(c.abstract_syntax == model for c in assoc.accepted_contexts):
            raise ArchiveError(f"Remote AET is {params.remote.aet}", orthanc_error=NO_PRESENTATION_CONTEXT)
        yield from _retrieve_responses(params, assoc.send_c_get(identifier, model), "C-GET", assoc)


# -- C-STORE --------------------------------------------------------------------------------------------------

def dicom_parse(data: bytes, *, identified: bool = True) -> Dataset:
    """A DICOM file to send: Orthanc's 'Cannot parse an invalid DICOM file' when it is none (or, when
    ``identified``, has no SOP Class UID). A raw dataset without file meta group (which the archive stores, as
    Orthanc does) gets the transfer syntax it was read in, as DCMTK infers it."""
    try:
        ds = decoded_dataset(data)
        if identified:
            ds.SOPClassUID  # noqa: B018 - forces the parse of the header
        elif len(ds) == 0:
            raise ValueError("no dataset")
        ds.file_meta.TransferSyntaxUID  # noqa: B018
    except Exception:  # noqa: BLE001 - any parse error is the same answer
        raise BadFileFormat(f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)") from None
    return ds


class StoreConnection:
    """Orthanc's DicomStoreUserConnection: one association kept open across instances, negotiated again with
    more presentation contexts when an instance of a new SOP class or transfer syntax comes (up to 128)."""

    def __init__(self, params: ScuParameters, *, move_originator: tuple[str, int] | None = None):
        self.params = params
        self.move_originator = move_originator
        self.policy = send_policy(params.remote.allow_transcoding)
        self.wanted: dict[str, set[str]] = {}
        self._cm = None
        self.assoc = None
        self.message_id = 0

    def close(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.assoc = self._cm, None, None
            cm.__exit__(None, None, None)

    def __enter__(self) -> StoreConnection:
        return self

    def __exit__(self, *exc) -> None:
        if self.assoc is not None and exc[0] is not None:
            self.assoc.abort()
            self._cm, self.assoc = None, None
        self.close()

    def _open(self, sop_class: str) -> None:
        self.close()
        # The class of the instance at hand first, as Orthanc: it is the one that must fit in 128 contexts
        classes = {sop_class: self.wanted[sop_class], **self.wanted}
        self._cm = association(self.params, storage_contexts(classes, self.policy))
        self.assoc = self._cm.__enter__()

    def _accepted(self, sop_class: str) -> set[str]:
        return set(accepted_storage(self.assoc).get(sop_class, ()))

    def store(self, data: bytes) -> tuple[str, str]:
        """Send one file; (SOPClassUID, SOPInstanceUID). A failure status raises NetworkProtocol."""
        meta = part10_meta(data)
        syntax = meta[1].get(0x00020010) if meta is not None else None
        found = dataset_identifiers(data, meta[0], syntax) if syntax else None
        if found is not None:
            ds = None   # sent as stored when the peer accepts its transfer syntax (no decoding)
            sop_class, instance = found
        else:
            ds = dicom_parse(data, identified=False)
            sop_class = str(ds.get("SOPClassUID", "") or "").strip(" \x00")
            instance = str(ds.get("SOPInstanceUID", "") or "").strip(" \x00")
            if not sop_class or not instance:   # what the C-STORE request names is the dataset's (PS3.7 9.1.1)
                raise ArchiveError("Unable to determine the SOP class/instance for C-STORE with AET "
                                   f"{self.params.remote.aet}", orthanc_error=OrthancError.NO_SOP_CLASS_OR_INSTANCE)
            syntax = str(ds.file_meta.TransferSyntaxUID)
        known = self.wanted.setdefault(sop_class, set())
        if self.assoc is None or not self.assoc.is_established or syntax not in known:
            # A new syntax is proposed on a new association (where Orthanc would transcode if the class has any
            # accepted context): the peer gets the file as stored whenever it can take it.
            if self.assoc is None or not self.assoc.is_established or syntax not in self._accepted(sop_class):
                known.add(syntax)
                self._open(sop_class)
        choices = syntaxes_to_try(sop_class=sop_class, source=syntax, accepted=self._accepted(sop_class),
                                  policy=self.policy, remote_aet=self.params.remote.aet)
        ds = instance_to_send(data, choices, sop_class=sop_class, sop_instance=instance, transfer_syntax=syntax,
                              offset=meta[0] if ds is None else None, decoded=ds)
        self.message_id = self.message_id % 0xFFFF + 1
        originator = self.move_originator or (None, None)
        status = self.assoc.send_c_store(ds, msg_id=self.message_id, originator_aet=originator[0],
                                         originator_id=originator[1])
        if not status or "Status" not in status:
            raise _lost(self.params, "C-STORE", self.assoc)
        code = int(status.Status)
        # Warnings store the instance (PS3.4 B.2.3), and so does "duplicate SOP instance" (0x0111) for Orthanc
        # 1.12.4: a peer that already has it answers so when a study is sent again
        if code not in (SUCCESS, DUPLICATE_SOP_INSTANCE) and not 0xB000 <= code <= 0xBFFF:
            raise DimseFailure(f'C-STORE SCU to AET "{self.params.remote.aet}" has failed with DIMSE status '
                               f"{_hex(code)}", status=code,
                               payload={"Type": "Dimse", "Content": {"DimseErrorStatus": code}})
        return sop_class, instance


# -- storage commitment ---------------------------------------------------------------------------------------

def storage_commitment_request(params: ScuParameters, *, transaction_uid: str,
                               references: list[tuple[str, str]],
                               on_report: Callable[[Dataset], None] | None = None) -> None:
    """N-ACTION "Request Storage Commitment" (PS3.4 J.3.2). Should the remote answer with its N-EVENT-REPORT on
    this association, ``on_report(dataset)`` gets it (we propose the SCP role for that)."""
    request = Dataset()
    request.TransactionUID = transaction_uid
    items = []
    for class_uid, instance_uid in references:
        item = Dataset()
        item.ReferencedSOPClassUID = class_uid
        item.ReferencedSOPInstanceUID = instance_uid
        items.append(item)
    request.ReferencedSOPSequence = items

    def handle_report(event) -> tuple[int, None]:
        if on_report is not None:
            try:
                on_report(event.event_information)
            except Exception:  # noqa: BLE001 - a handler never raises
                logger.exception("storage commitment report on our association")
        return SUCCESS, None

    model = sop.StorageCommitmentPushModel
    roles = [build_role(model, scu_role=True, scp_role=True)]
    with association(params, [build_context(model)], ext_neg=roles, contextless=True,
                     handlers=[(evt.EVT_N_EVENT_REPORT, handle_report)]) as assoc:
        if not any(c.abstract_syntax == model for c in assoc.accepted_contexts):
            raise ArchiveError(f"Remote AET is {params.remote.aet}", orthanc_error=NO_PRESENTATION_CONTEXT)
        status, _reply = assoc.send_n_action(request, 1, model, STORAGE_COMMITMENT_INSTANCE)
        # In Orthanc's words (DicomControlUserConnection / StorageCommitmentScu)
        if not status or "Status" not in status:
            raise NetworkProtocolError(f"Storage commitment - Unable to read N-ACTION response from AET: "
                                       f"{params.remote.aet}")
        if status.Status != SUCCESS:
            raise DimseFailure(f"Storage commitment - The request cannot be handled by remote AET: "
                               f"{params.remote.aet}", status=int(status.Status))


__all__ = ["DimseFailure", "ScuParameters", "StoreConnection", "SubOperations", "association", "default_aet",
           "dicom_parse", "echo", "find", "get", "move", "scu_parameters", "storage_commitment_request"]
