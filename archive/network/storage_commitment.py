"""Storage commitment push model, SCP side (PS3.4 J.3): a modality asks with N-ACTION whether we hold some
instances; we answer the N-ACTION at once, then check each instance and send the result in an
N-EVENT-REPORT on a new association to that modality, as Orthanc does (OrthancStorageCommitmentRequestHandler
and StorageCommitmentScpJob, then DicomAssociation::ReportStorageCommitment).

An instance is committed when it is in the index with the same SOP class. Otherwise its failure reason
(PS3.3 C.14.1.1) is 0x0112 (no such object instance) or 0x0119 (class-instance conflict). The event type is
1 when every instance is committed, 2 when some failed (PS3.4 J.3.3).

Reports we receive (N-EVENT-REPORT, for the commitments our SCU asked for) are kept in the database under
the StorageCommitmentReport table (archive.network.queries) for /storage-commitment/{id}.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from archive.levels import Level
from archive.models import MainDicomTag, Metadata, MetadataType

logger = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"   # the well-known SOP instance (PS3.4 J.3.1)
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
EVENT_ALL_SUCCESS = 1
EVENT_SOME_FAILURES = 2


@dataclass(frozen=True)
class CommitmentRequest:
    transaction_uid: str
    references: tuple[tuple[str, str], ...]   # (SOP class UID, SOP instance UID)


def commitment_request_parse(ds: Dataset | None) -> CommitmentRequest:
    """The N-ACTION information (TransactionUID, ReferencedSOPSequence); raises ValueError when absent."""
    if ds is None or "TransactionUID" not in ds:
        raise ValueError("N-ACTION without TransactionUID")
    refs = []
    for item in ds.get("ReferencedSOPSequence", []) or []:
        refs.append((str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", ""))))
    return CommitmentRequest(str(ds.TransactionUID), tuple(refs))


def commitment_check(request: CommitmentRequest) -> list[tuple[str, str, int]]:
    """(class, instance, 0 or failure reason) for each reference, in order: one query for all."""
    sop_uids = [sop for _cls, sop in request.references]
    # The SOP instance UID is a main tag of the instance level; its SOP class is the SopClassUid metadata.
    rows = MainDicomTag.objects.filter(tag=0x00080018, level=Level.INSTANCE.depth, value__in=sop_uids)
    by_resource = dict(rows.values_list("resource_id", "value"))
    classes = dict(Metadata.objects.filter(resource_id__in=list(by_resource), type=MetadataType.SopClassUid)
                   .values_list("resource_id", "value"))
    found = {sop: classes.get(rid, "") for rid, sop in by_resource.items()}
    out = []
    for cls, sop in request.references:
        if sop not in found:
            out.append((cls, sop, NO_SUCH_OBJECT_INSTANCE))
        elif found[sop] != cls:
            out.append((cls, sop, CLASS_INSTANCE_CONFLICT))
        else:
            out.append((cls, sop, 0))
    return out


def commitment_report_dataset(transaction_uid: str, results: list[tuple[str, str, int]]) -> tuple[int, Dataset]:
    """(event type, N-EVENT-REPORT information) for the checked references (PS3.4 J.3.3)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ok, failed = Sequence(), Sequence()
    for cls, sop, reason in results:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = sop
        if reason:
            item.FailureReason = reason
            failed.append(item)
        else:
            ok.append(item)
    ds.ReferencedSOPSequence = ok       # even empty, as Orthanc (no RetrieveAETitle either)
    if failed:
        ds.FailedSOPSequence = failed
    return (EVENT_SOME_FAILURES if failed else EVENT_ALL_SUCCESS), ds


def commitment_report_send(*, request: CommitmentRequest, calling_aet: str, local_aet: str,
                           host: str, port: int, timeout: float, tls: bool = False) -> bool:
    """Check the instances and send the N-EVENT-REPORT on a new association (we are the SCP of the
    storage commitment SOP class on it, so the role is negotiated). Never raises; True when sent."""
    from pynetdicom import build_role

    from archive.network.association import FastAE
    from archive.network.tls import TlsSettings, client_context

    try:
        results = commitment_check(request)
        event_type, info = commitment_report_dataset(request.transaction_uid, results)
        ae = FastAE(ae_title=local_aet)
        ae.maximum_pdu_size = int(settings.ORTHANC.get("MaximumPduLength", 16384) or 0)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        ae.add_requested_context(STORAGE_COMMITMENT_PUSH_MODEL)
        tls_args = (client_context(TlsSettings.from_configuration()), None) if tls else None
        assoc = ae.associate(host, port, ae_title=calling_aet, tls_args=tls_args,
                             ext_neg=[build_role(STORAGE_COMMITMENT_PUSH_MODEL, scp_role=True)])
        if not assoc.is_established:
            logger.warning("storage commitment: cannot associate with %s at %s:%s", calling_aet, host, port)
            return False
        try:
            status, _reply = assoc.send_n_event_report(info, event_type, STORAGE_COMMITMENT_PUSH_MODEL,
                                                       STORAGE_COMMITMENT_INSTANCE)
        finally:
            assoc.release()
        code = getattr(status, "Status", None)
        if code != 0x0000:
            logger.warning("storage commitment: %s answered the report with status %s", calling_aet, code)
        return code == 0x0000
    except Exception:
        logger.exception("storage commitment: report to %s failed", calling_aet)
        return False
    finally:
        close_old_connections()


def commitment_report_send_later(**kwargs) -> threading.Thread:
    """Send the report from another thread, once our N-ACTION answer is on its way (as Orthanc's job)."""
    def run() -> None:
        try:
            commitment_report_send(**kwargs)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="storage-commitment-report", daemon=True)
    thread.start()
    return thread


def commitment_report_receive(*, event_type: int, info: Dataset | None, remote_aet: str) -> int:
    """Keep an N-EVENT-REPORT a modality sent for one of our commitment requests (the report that
    /storage-commitment/{id} shows); the DIMSE status: a processing failure for an unknown transaction."""
    from archive.network.queries import storage_commitment_report_dataset

    if info is None or "TransactionUID" not in info or event_type not in (EVENT_ALL_SUCCESS, EVENT_SOME_FAILURES):
        return 0x0110   # processing failure
    # Kept whatever the transaction, as Orthanc (a report of a transaction we did not ask for is stored too)
    return 0x0000 if storage_commitment_report_dataset(info, remote_aet=remote_aet) else 0x0110
