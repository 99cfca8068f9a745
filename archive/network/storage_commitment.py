"""Storage commitment push model, SCP side (PS3.4 J.3): a modality asks with N-ACTION whether we hold some
instances; we answer the N-ACTION at once, then a StorageCommitmentScp job checks each instance and sends the
result in an N-EVENT-REPORT on a new association to that modality, as Orthanc does
(OrthancStorageCommitmentRequestHandler and StorageCommitmentScpJob, then DicomAssociation::ReportStorageCommitment).

An instance is committed when it is in the index with the same SOP class. Otherwise its failure reason
(PS3.3 C.14.1.1) is 0x0112 (no such object instance) or 0x0119 (class-instance conflict). The event type is
1 when every instance is committed, 2 when some failed (PS3.4 J.3.3).

Reports we receive (N-EVENT-REPORT, for the commitments our SCU asked for) are kept in the database under
the StorageCommitmentReport table (archive.network.queries) for /storage-commitment/{id}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
                           host: str, port: int, timeout: float, tls: bool = False) -> None:
    """Check the instances and send the N-EVENT-REPORT on a new association to the modality ``calling_aet``
    (we are the SCP of the storage commitment SOP class on it, so the role is negotiated), calling as
    ``local_aet``. A failure is Orthanc's NetworkProtocol error, the job's (StorageCommitmentScp)."""
    from pynetdicom import build_context, build_role

    from archive.errors import NetworkProtocolError
    from archive.network import scu
    from archive.network.registry import Modality

    results = commitment_check(request)
    event_type, info = commitment_report_dataset(request.transaction_uid, results)
    params = scu.ScuParameters(local_aet=local_aet, timeout=int(timeout),
                               remote=Modality(aet=calling_aet, host=host, port=port, use_dicom_tls=tls))
    roles = [build_role(STORAGE_COMMITMENT_PUSH_MODEL, scp_role=True)]
    with scu.association(params, [build_context(STORAGE_COMMITMENT_PUSH_MODEL)], ext_neg=roles) as assoc:
        status, _reply = assoc.send_n_event_report(info, event_type, STORAGE_COMMITMENT_PUSH_MODEL,
                                                   STORAGE_COMMITMENT_INSTANCE)
        code = getattr(status, "Status", None)
        if code is None:
            raise NetworkProtocolError(f"Storage commitment - Unable to read N-EVENT-REPORT response from AET: "
                                       f"{calling_aet}")
        if code != 0x0000:
            raise NetworkProtocolError(f"Storage commitment - The report was refused by AET: {calling_aet} "
                                       f"(DIMSE status 0x{code:04X})")


def commitment_report_receive(*, event_type: int, info: Dataset | None, remote_aet: str) -> int:
    """Keep an N-EVENT-REPORT a modality sent for one of our commitment requests (the report that
    /storage-commitment/{id} shows); the DIMSE status: a processing failure for a report without a transaction
    or of an unknown event type."""
    from archive.network.queries import storage_commitment_report_dataset

    if info is None or "TransactionUID" not in info or event_type not in (EVENT_ALL_SUCCESS, EVENT_SOME_FAILURES):
        return 0x0110   # processing failure
    # Kept whatever the transaction, as Orthanc (a report of a transaction we did not ask for is stored too)
    storage_commitment_report_dataset(info, remote_aet=remote_aet)
    return 0x0000
