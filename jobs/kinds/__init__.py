"""Job kinds: ``KINDS[type](job)`` runs a job as a generator yielding its progress (percent) after each step;
the runner (jobs.tasks) saves it and honours pause and cancel between steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from jobs.kinds import archive, dicom, media, modify, peers, restructure
from jobs.models import Job

KINDS: dict[str, Callable[[Job], Iterator[float]]] = {
    "Archive": archive.archive_job,
    "Media": media.media_job,
    "ResourceModification": modify.modify_job,
    "MergeStudy": restructure.merge_job,
    "SplitStudy": restructure.split_job,
    "DicomModalityStore": dicom.modality_store_job,
    "DicomMoveScu": dicom.move_scu_job,
    "DicomGetScu": dicom.get_scu_job,
    "OrthancPeerStore": peers.peer_store_job,
    dicom.STORAGE_COMMITMENT_SCP: dicom.storage_commitment_scp_job,
}
