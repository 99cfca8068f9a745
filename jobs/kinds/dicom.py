"""The DICOM network jobs, named as Orthanc's /jobs shows them:

- ``DicomModalityStore`` (/modalities/{id}/store): C-STORE of local instances to a modality on one association,
  one instance a step, then the storage commitment request if asked (Orthanc's DicomModalityStoreJob).
- ``DicomMoveScu`` (/modalities/{id}/move, /queries/{id}/retrieve with C-MOVE): one C-MOVE a step
  (DicomMoveScuJob); the instances the target receives for it are reported by our SCP through
  ``retrieve_instance_received``, by the Move Originator Message ID of their C-STOREs.
- ``DicomGetScu`` (/modalities/{id}/get, retrieve with C-GET): one C-GET a step, the instances stored as they
  come (DicomGetScuJob).

Each job's parameters hold the remote modality's parameters as they were at submission (a modality changed or
deleted meanwhile does not matter, as in Orthanc). Progress: the instances sent, or the sub-operations of
the running command (PS3.4 C.4.2.1.6). Cancel or pause closes the generator, which aborts the association.
``Permissive`` ignores the failure of a step (an instance, a resource), as Orthanc's SetOfCommandsJob does.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from archive import selectors
from archive.dicom.tags import tag_key
from archive.errors import ArchiveError
from archive.ingest import Origin, StoreStatus, instance_store
from archive.levels import Level
from archive.models import DicomRetrieveMessage, DicomRetrieveReceived, Resource
from archive.network import queries, scu
from archive.network.registry import modality_parse
from jobs.models import Job

logger = logging.getLogger(__name__)

STORE = "DicomModalityStore"
MOVE = "DicomMoveScu"
GET = "DicomGetScu"
STORAGE_COMMITMENT_SCP = "StorageCommitmentScp"


def _params(p: dict) -> scu.ScuParameters:
    return scu.scu_parameters(modality=modality_parse(p["remote"]), local_aet=p["local_aet"],
                              timeout=p.get("timeout"))


def _save_content(job: Job) -> None:
    """Keep the content written so far: the runner keeps a failed job's stored content, not the object's."""
    Job.objects.filter(id=job.id).update(content=job.content)


# -- C-STORE --------------------------------------------------------------------------------------------------

_FILES_BATCH = 200     # instances whose files are looked up together (two queries a batch, not two an instance)


def _instance_files(public_ids: list[str]) -> dict[str, tuple[str, int]]:
    """(uuid, compression) of the DICOM file of each of these instances still in the archive."""
    rows = list(Resource.objects.filter(public_id__in=public_ids, level=Level.INSTANCE.depth).only("id", "public_id"))
    files = selectors.instance_dicom_files(rows)
    return {r.public_id: files[r.id] for r in rows if r.id in files}


def _file_read(file: tuple[str, int] | None) -> bytes | None:
    """The bytes of a file, None when its instance was deleted after the job was submitted (or meanwhile)."""
    if file is None:
        return None
    try:
        return selectors.dicom_file_read(file)
    except OSError:
        return None


def modality_store_job(job: Job) -> Iterator[float]:
    p = job.parameters
    params = _params(p)
    instances: list[str] = p["instances"]
    originator = tuple(p["move_originator"]) if p.get("move_originator") else None
    resumed = p.get("checkpoint") or {}        # paused, then resumed: on from the next instance, as Orthanc
    start, failed = resumed.get("position", 0), resumed.get("failed", 0)
    sent: list[tuple[str, str]] = [tuple(pair) for pair in resumed.get("sent", [])]
    files: dict[str, tuple[str, int]] = {}
    with scu.StoreConnection(params, move_originator=originator) as connection:
        for k in range(start, len(instances)):
            public_id = instances[k]
            if (k - start) % _FILES_BATCH == 0:
                files = _instance_files(instances[k:k + _FILES_BATCH])
            data = _file_read(files.get(public_id))
            if data is None:
                failed += 1  # Orthanc: "An instance was removed after the job was issued"
            else:
                try:
                    sent.append(connection.store(data))
                except ArchiveError as error:
                    if not p.get("permissive"):
                        raise
                    # As Orthanc's SetOfCommandsJob: the error is logged and ignored; FailedInstancesCount only
                    # counts the instances removed since the job was issued (checked against real Orthanc)
                    logger.warning("Ignoring an error in a permissive job (instance %s): %s", public_id, error)
            job.checkpoint = {"position": k + 1, "failed": failed, "sent": sent}
            yield 100.0 * (k + 1) / (len(instances) + 1)
    if p.get("storage_commitment") and sent:
        uid = p["transaction_uid"]
        queries.storage_commitment_pending(transaction_uid=uid, remote_aet=params.remote.aet)
        scu.storage_commitment_request(params, transaction_uid=uid, references=sent,
                                       on_report=queries.storage_commitment_report_dataset)
    job.content = {**job.content, "FailedInstancesCount": failed}


# -- C-MOVE and C-GET -----------------------------------------------------------------------------------------

def _command_tags(command: dict) -> dict[int, str]:
    return {int(k[:4], 16) << 16 | int(k[5:], 16): v for k, v in command.items()}


def _command_level(tags: dict[int, str]) -> Level:
    return queries.level_parse(tags.get(queries.QR_LEVEL, ""))


def _detail(command: dict, status: int, received: list[str]) -> dict:
    return {"DimseErrorStatus": status, "Query": command, "ReceivedInstancesIds": received}


def _run_commands(job: Job, run_one) -> Iterator[float]:
    """The steps of a retrieve job: one command each, its Details (status, instances received) kept in the
    content as it goes."""
    commands: list[dict] = job.parameters["commands"]
    start = (job.parameters.get("checkpoint") or {}).get("position", 0)   # resumed: on from the next command
    details = job.content["Details"] if start else [_detail(c, 0, []) for c in commands]
    job.content = {**job.content, "Details": details}
    for k in range(start, len(commands)):
        command = commands[k]
        job.checkpoint = {"position": k}      # paused within a command: it runs again when resumed
        details[k] = _detail(command, 0, [])
        received: list[str] = details[k]["ReceivedInstancesIds"]
        try:
            for fraction in run_one(command, received):
                yield 100.0 * (k + fraction) / (len(commands) + 1)
        except ArchiveError as error:
            details[k]["DimseErrorStatus"] = getattr(error, "status", 0)
            _save_content(job)
            if not job.parameters.get("permissive"):
                # Orthanc's DicomRetrieveScuBaseJob::LookupErrorPayload: the failed job's Details
                error.payload = {"Type": "RetrieveJob", "Content": copy.deepcopy(details)}
                raise
        _save_content(job)
        job.checkpoint = {"position": k + 1}


def _register(key_prefix: str, job_id: str) -> tuple[int, str]:
    """A Message ID for a C-MOVE of ours not in use by another (Orthanc counts from 1000)."""
    for _attempt in range(100):
        message_id = random.randint(1000, 0xFFFE)
        key = f"{key_prefix}-{message_id}"
        try:
            with transaction.atomic():
                DicomRetrieveMessage.objects.create(key=key, job_id=job_id)
            return message_id, key
        except IntegrityError:
            continue
    raise ArchiveError("No free message ID for C-MOVE")


def move_scu_job(job: Job) -> Iterator[float]:
    p = job.parameters
    params = _params(p)
    # Registrations older than a day are of moves that never finished (a killed worker).
    DicomRetrieveMessage.objects.filter(created__lt=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).delete()

    def run_one(command: dict, received: list[str]) -> Iterator[float]:
        tags = _command_tags(command)
        level = _command_level(tags)
        identifier = queries.retrieve_identifier(level=level, answer=tags, manufacturer=params.remote.manufacturer)
        message_id, key = _register(params.local_aet.strip().upper(), job.id)   # a peer may send it upper-cased
        try:
            for progress in scu.move(params, identifier=identifier, target_aet=p["target_aet"],
                                     message_id=message_id):
                received[:] = _received(key)
                yield progress.fraction
        finally:
            received[:] = _received(key)
            DicomRetrieveMessage.objects.filter(key=key).delete()
            DicomRetrieveReceived.objects.filter(key=key).delete()

    yield from _run_commands(job, run_one)


def _received(key: str) -> list[str]:
    return list(DicomRetrieveReceived.objects.filter(key=key).order_by("id").values_list("instance", flat=True))


def retrieve_instance_received(*, originator_aet: str, message_id: int, instance_id: str) -> None:
    """For the C-STORE SCP: an instance stored from a C-STORE whose Move Originator AET and Message ID
    (PS3.7 9.1.1.1) name one of our C-MOVEs; the job lists it in its Details (ReceivedInstancesIds)."""
    key = f"{originator_aet.strip().upper()}-{int(message_id)}"
    if DicomRetrieveMessage.objects.filter(key=key).exists():
        DicomRetrieveReceived.objects.create(key=key, instance=instance_id)


def _sop_classes_in_study(params: scu.ScuParameters, tags: dict[int, str]) -> list[str] | None:
    """SOPClassesInStudy of the answer's study, asked of the remote in a study-level C-FIND when the answer
    did not carry it: the C-GET then proposes those classes, each compressed syntax apart (scu.get_storage_
    contexts), instead of 120 common classes in one context each, where the peer may pick a syntax it cannot
    transcode to, or lack the class. None when the remote does not say (the common classes then)."""
    study = tags.get(0x0020000D)
    if not study:
        return None
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    identifier.SOPClassesInStudy = ""
    try:
        answers = scu.find(params, identifier=identifier, model=scu.FIND_DEFAULT)
    except ArchiveError as error:
        logger.info("C-GET: SOPClassesInStudy not available from %s: %s", params.remote.aet, error)
        return None
    classes: set[str] = set()
    for answer in answers:
        value = answer.get("SOPClassesInStudy")
        if value:
            classes.update(str(v).strip() for v in (value if isinstance(value, MultiValue) else [value]))
    return sorted(c for c in classes if c) or None


def get_scu_job(job: Job) -> Iterator[float]:
    p = job.parameters
    params = _params(p)
    origin = Origin.dicom(remote_ip=params.remote.host, calling_aet=params.remote.aet, called_aet=params.local_aet)

    def run_one(command: dict, received: list[str]) -> Iterator[float]:
        tags = _command_tags(command)
        level = _command_level(tags)
        identifier = queries.retrieve_identifier(level=level, answer=tags, manufacturer=params.remote.manufacturer)
        classes = [c for c in tags.get(0x00080062, "").split("\\") if c] or _sop_classes_in_study(params, tags)

        def on_store(event) -> int:
            result = instance_store(data=event.encoded_dataset(include_meta=True), origin=origin)
            if result.status in (StoreStatus.SUCCESS, StoreStatus.ALREADY_STORED):
                received.append(result.ids.instance)
            return result.dimse_status

        for progress in scu.get(params, identifier=identifier, on_store=on_store, sop_classes=classes):
            yield progress.fraction

    yield from _run_commands(job, run_one)


# -- what the routes submit -----------------------------------------------------------------------------------

def query_json(tags: dict[int, str], fmt: str) -> dict:
    return queries.render(queries.tags_full(tags), fmt)


def retrieve_content(*, params: scu.ScuParameters, commands: list[dict[int, str]], fmt: str,
                     target_aet: str | None) -> dict:
    """A retrieve job's Content before it runs (Orthanc's DicomRetrieveScuBaseJob::GetPublicContent)."""
    content: dict[str, Any] = {
        "Description": "REST API", "LocalAet": params.local_aet, "RemoteAet": params.remote.aet,
        "Query": [query_json(c, fmt) for c in commands],
        "Details": [_detail(query_json(c, "short"), 0, []) for c in commands],
    }
    if target_aet is not None:
        content["TargetAet"] = target_aet
    return content


def retrieve_parameters(*, params: scu.ScuParameters, commands: list[dict[int, str]], permissive: bool,
                        target_aet: str | None, timeout: int | None) -> dict:
    from archive.network.registry import modality_json

    return {"remote": modality_json(params.remote), "local_aet": params.local_aet, "timeout": timeout,
            "commands": [{tag_key(t): v for t, v in sorted(c.items())} for c in commands],
            "target_aet": target_aet, "permissive": permissive}


__all__ = ["GET", "MOVE", "STORE", "get_scu_job", "modality_store_job", "move_scu_job", "retrieve_content",
           "retrieve_instance_received", "retrieve_parameters"]


# -- storage commitment SCP -----------------------------------------------------------------------------------

def storage_commitment_scp_job(job: Job) -> Iterator[float]:
    """The report of a storage commitment request a modality sent us (Orthanc's StorageCommitmentScpJob):
    the instances checked, then the N-EVENT-REPORT sent on a new association to that modality."""
    from archive.network.storage_commitment import CommitmentRequest, commitment_report_send

    p = job.parameters
    request = CommitmentRequest(p["transaction_uid"], tuple(tuple(r) for r in p["references"]))
    yield 50.0
    commitment_report_send(request=request, calling_aet=p["remote_aet"], local_aet=p["called_aet"],
                           host=p["host"], port=p["port"], timeout=p["timeout"], tls=p["tls"])
    yield 100.0


def storage_commitment_scp_submit(*, request, called_aet: str, modality) -> None:
    """Queue the report of a storage commitment request (from the DICOM server's N-ACTION handler)."""
    from jobs import engine

    content = {"CalledAet": called_aet, "Description": "", "RemoteAet": modality.aet,
               "TransactionUid": request.transaction_uid}
    timeout = modality.timeout or int(settings.ORTHANC.get("DicomScuTimeout", 10) or 10)
    parameters = {"transaction_uid": request.transaction_uid, "references": [list(r) for r in request.references],
                  "remote_aet": modality.aet, "called_aet": called_aet, "host": modality.host,
                  "port": modality.port, "timeout": timeout, "tls": modality.use_dicom_tls}
    engine.job_submit(kind=STORAGE_COMMITMENT_SCP, parameters=parameters, content=content)
