"""The one way in: ``instance_store`` stores one DICOM instance, whoever sends it.

REST upload, C-STORE, the UI and jobs all call it, as Orthanc routes everything through
``ServerContext::Store``. The order makes a crash harmless: stage the file, index it in one short
transaction, publish the file; a failure at any step removes what the earlier steps made.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, OperationalError, connection, connections, transaction
from pydicom.dataset import Dataset

from archive import runtime, services
from archive.dicom.parse import ParsedDicom, dicom_parse
from archive.dicom.tags import main_dicom_sequences, main_dicom_tags, main_dicom_tags_signature
from archive.errors import BadFileFormat, FullStorage, InexistentTag, UnknownResource
from archive.identifiers import ResourceIds, resource_ids
from archive.index_writes import IndexWriter
from archive.levels import Level
from archive.metrics import timed
from archive.models import ChangeType, ContentType, MetadataType, Resource
from archive.read_only import refuse_writes
from archive.settings import archive_settings
from archive.statistics import Totals, statistics_add, statistics_totals
from archive.storage import compress, dicom_storage
from archive.timeutil import iso, utcnow

logger = logging.getLogger(__name__)


class StoreStatus(enum.Enum):
    SUCCESS = "Success"
    ALREADY_STORED = "AlreadyStored"
    FAILURE = "Failure"
    FILTERED_OUT = "FilteredOut"


@dataclass(frozen=True)
class Origin:
    """Who sent an instance; becomes the Origin/RemoteIP/RemoteAET/CalledAET/HttpUsername metadata."""

    kind: str = "Unknown"            # RestApi, DicomProtocol, Plugins, Lua, WebDav, Unknown
    remote_ip: str = ""
    remote_aet: str = ""
    called_aet: str = ""
    http_username: str = ""

    @classmethod
    def rest(cls, *, remote_ip: str, username: str = "") -> Origin:
        return cls(kind="RestApi", remote_ip=remote_ip, http_username=username)

    @classmethod
    def dicom(cls, *, remote_ip: str, calling_aet: str, called_aet: str) -> Origin:
        return cls(kind="DicomProtocol", remote_ip=remote_ip, remote_aet=calling_aet, called_aet=called_aet)


@dataclass
class StoreResult:
    status: StoreStatus
    ids: ResourceIds
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dimse_status(self) -> int:
        """The C-STORE status for this outcome (PS3.4 B.2.3): success or warning, never a failure."""
        if self.status is StoreStatus.FILTERED_OUT:
            return 0xA700  # Out of resources: the same answer Orthanc gives to a filtered instance
        return 0x0000


def _identifiers(ds) -> tuple[str, str, str, str]:
    def text(keyword: str) -> str:
        value = ds.get(keyword)
        # as the value Orthanc hashes: DCMTK's string, which ends at the first NUL
        return "" if value is None else str(value).partition("\x00")[0].strip(" ")

    # As Orthanc: an absent identifying tag is "Inexistent tag" (404), an empty one a bad file (400).
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if name not in ds:
            raise InexistentTag()
    patient_id = text("PatientID")
    study, series, sop = text("StudyInstanceUID"), text("SeriesInstanceUID"), text("SOPInstanceUID")
    if not (study and series and sop):
        raise BadFileFormat("missing StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID")
    return patient_id, study, series, sop


def _index_in_series(tags: dict[str, str]) -> tuple[str | None, int | None]:
    """The IndexInSeries metadata and its integer value. Orthanc records the text of InstanceNumber, else
    of ImageIndex, spaces stripped, whatever it holds; the resource JSON shows it as an integer where it
    parses as one (boost::lexical_cast: optional sign, digits only), else null."""
    for keyword in ("InstanceNumber", "ImageIndex"):
        if keyword in tags:
            text = tags[keyword].strip(" \t\r\n\v\f")
            return text, int(text) if _INTEGER.fullmatch(text) else None
    return None, None


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def _expected_instances(tags: dict[str, str]) -> int | None:
    """Orthanc's guess of a series' size (ComputeExpectedNumberOfInstances), from the first rule whose two
    tags (or one, for the last rule) are present: ImagesInAcquisition times NumberOfTemporalPositions, else
    NumberOfSlices times NumberOfTimeSlices (cardio-PET), else CardiacNumberOfImages; NumberOfSlices alone
    gives nothing. Absent and null values skip a rule. A present value that is not a plain integer
    (boost::lexical_cast: optional sign, digits, no spaces) or a non-positive result means unknown,
    without trying the next rule."""
    def number(keyword: str) -> int | None:
        text = str(tags[keyword])
        return int(text) if _INTEGER.fullmatch(text) else None

    rules = (("ImagesInAcquisition", "NumberOfTemporalPositions"), ("NumberOfSlices", "NumberOfTimeSlices"),
             ("CardiacNumberOfImages",))
    for rule in rules:
        if all(keyword in tags for keyword in rule):
            value = 1
            for keyword in rule:
                factor = number(keyword)
                if factor is None:
                    return None
                value *= factor
            return value if value > 0 else None
    return None


def instance_store(*, data: bytes, origin: Origin, overwrite: bool | None = None,
                   metadata: Callable[[ResourceIds], Iterable[tuple[Level, int, str]]] | None = None,
                   written_meta: tuple[int, str, str, str] | None = None, sole_writer: bool = False
                   ) -> StoreResult:
    """Store one DICOM instance; AlreadyStored is a result, not an error. Raises ArchiveError on bad input.
    ``metadata(ids)`` names (level, type, value) to set on the instance or its ancestors in the same transaction,
    as Orthanc's DicomInstanceToStore::AddMetadata (ModifiedFrom/AnonymizedFrom of modification jobs).
    ``written_meta``: see dicom_parse (a C-STORE's file meta, written by the caller, is not read back).
    ``sole_writer``: the caller knows that no other store runs now (the DICOM server's only association): the
    index statements then run while the file is still being written, and the commit waits for it. The write
    lock is held through the fsync, which costs nothing when no one else waits for it (one association: x1.1
    instances/s) and much when others do (four: x0.86), hence the caller's knowledge. Not with a storage whose
    stage writes to the index itself (S3's in-flight row), which would wait for that lock."""
    with timed("orthanc_store_dicom_duration_ms"):
        return _instance_store(data=data, origin=origin, overwrite=overwrite, metadata=metadata,
                               written_meta=written_meta, sole_writer=sole_writer)


def _instance_store(*, data: bytes, origin: Origin, overwrite: bool | None,
                    metadata: Callable[[ResourceIds], Iterable[tuple[Level, int, str]]] | None,
                    written_meta: tuple[int, str, str, str] | None = None, sole_writer: bool = False
                    ) -> StoreResult:
    refuse_writes()  # ReadOnly: before any file is written
    cfg = archive_settings()
    compressed = cfg.storage_compression
    storage = dicom_storage()
    file_uuid = str(uuidlib.uuid4())
    # The file goes to disk (write + fsync, which release the GIL) on a helper thread while this one parses
    # and hashes: the latency of one store is max(write + fsync, parse + MD5), not their sum. An instance
    # refused or already stored costs one discarded staged file.
    # A stage that commits a row of its own (S3's in-flight row) must be over before the index transaction
    sole_writer = sole_writer and not storage.stage_writes_index
    staging = None if compressed else _stage_in_background(storage, file_uuid, data)
    header: _Header | None = None
    try:
        parsed = dicom_parse(data, written_meta=written_meta)
        ds = parsed.dataset
        patient_id, study_uid, series_uid, sop_uid = _identifiers(ds)
        ids = resource_ids(patient_id=patient_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
        if overwrite is None:
            overwrite = cfg.overwrite_instances
        sop_class = str(ds.get("SOPClassUID", "") or "").strip(" \x00")
        # An instance already stored is found by the index transaction. It is looked up first only where what
        # comes before the transaction costs (compression) or may refuse it (size limits: a full archive still
        # answers AlreadyStored to a resend): one query less per new instance.
        limited = bool(cfg.maximum_storage_size or cfg.maximum_patient_count)
        if (compressed or limited) and not overwrite and IndexWriter().exists(ids.instance):
            _settle(staging, storage, file_uuid)
            return StoreResult(StoreStatus.ALREADY_STORED, ids, sop_class, sop_uid)
        stored = compress(data) if compressed else data
        if compressed and parsed.pixel_data_offset is not None:
            header = _Header.of(data[:parsed.pixel_data_offset], store_md5=cfg.store_md5)
        room = len(stored) + (header.sizes[1] if header else 0) if limited else None
        if room is not None:
            _check_size(room)  # Orthanc counts the size on disk
        md5 = hashlib.md5(data).hexdigest() if cfg.store_md5 else ""
        stored_md5 = (hashlib.md5(stored).hexdigest() if compressed else md5) if cfg.store_md5 else ""
        if staging is None:
            _stage(storage, file_uuid, stored)
        elif not sole_writer:
            staging.result()  # durable before the index references it
        if header is not None:
            _stage(storage, header.uuid, header.stored)
    except BaseException:
        _settle(staging, storage, file_uuid)
        if header is not None:
            storage.discard(header.uuid)
        raise
    removed_files: list[str] = []     # recycled patients' files
    replaced_files: list[str] = []    # an overwritten instance's files
    try:
        for attempt in range(_INDEX_ATTEMPTS):
            removed_files.clear()
            replaced_files.clear()
            try:
                with transaction.atomic():
                    status = _index_instance(parsed, ids, origin=origin, sizes=(len(data), len(stored)),
                                             md5s=(md5, stored_md5), compressed=compressed, file_uuid=file_uuid,
                                             overwrite=overwrite, removed_files=removed_files,
                                             replaced_files=replaced_files, room=room,
                                             extra_metadata=tuple(metadata(ids)) if metadata else (),
                                             header=header)
                    if staging is not None:
                        staging.result()  # durable before the commit makes the index reference it
                break
            except IntegrityError:
                # Another connection created the same patient, study, series or instance between our lookup
                # and our insert (PostgreSQL's READ COMMITTED allows it; SQLite's IMMEDIATE transactions
                # do not): the transaction rolled back whole, so look again and store on what is there now.
                # A patient being deleted meanwhile (forward-then-delete routing) can invalidate a few
                # lookups in a row: from the second retry on, wait a little, longer each time.
                if attempt == _INDEX_ATTEMPTS - 1:
                    raise
                if attempt:
                    time.sleep(random.uniform(0.001, 0.01) * attempt)
            except OperationalError as error:
                # PostgreSQL broke a deadlock between two stores of one series (an overwrite deletes and
                # touches the ancestors the other one touches): ours rolled back whole, so run it again.
                if not _is_deadlock(error) or attempt == _INDEX_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
    except BaseException:
        _settle(staging, storage, file_uuid)  # compensate: no orphan file (a stage still running is waited for)
        if header is not None:
            storage.discard(header.uuid)
        raise
    for uuid in (file_uuid, header.uuid) if header is not None else (file_uuid,):
        if status is not StoreStatus.SUCCESS:
            storage.discard(uuid)
        else:
            storage.publish(uuid)
    for old in removed_files:
        storage.remove(old)
    for old in replaced_files:
        storage.retire(old)
    return StoreResult(status, ids, sop_class, sop_uid)


_INDEX_ATTEMPTS = 12

_stager: tuple[int, ThreadPoolExecutor] | None = None
_stager_lock = threading.Lock()


def _stager_lock_renew() -> None:
    global _stager_lock
    _stager_lock = threading.Lock()    # a fork while another thread held it must not leave the child's locked


os.register_at_fork(after_in_child=_stager_lock_renew)


def _stage_in_background(storage, file_uuid: str, data: bytes) -> Future:
    global _stager
    stager = _stager
    # One pool per process: a forked child (jobs.kinds.copies) inherits the object but not its threads.
    if stager is None or stager[0] != os.getpid():
        with _stager_lock:     # two first stores at once (an HTTP worker's threads) make one pool, not two
            if _stager is None or _stager[0] != os.getpid():
                _stager = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="stage"))
            stager = _stager
    return stager[1].submit(_stage, storage, file_uuid, data)


def stager_stop() -> None:
    """Stop this process's stage threads, each closing its database connections first (the S3 storage writes
    its in-flight row from them): for the end of a test session, whose database is then dropped."""
    global _stager
    if _stager is None or _stager[0] != os.getpid():
        return
    pool, _stager = _stager[1], None
    threads = len(pool._threads)
    if threads:
        # One task per thread, held at a barrier until all are in, so that every thread runs one
        barrier = threading.Barrier(threads)

        def close() -> None:
            connections.close_all()
            barrier.wait(timeout=30)

        for _ in range(threads):
            pool.submit(close)
    pool.shutdown(wait=True)


@dataclass(frozen=True)
class _Header:
    """The "dicom-until-pixel-data" attachment: the file up to its pixel data, which Orthanc stores beside a
    compressed file (ServerContext::StoreAfterTranscoding) so that reading the tags does not inflate the
    whole file."""

    uuid: str
    stored: bytes
    sizes: tuple[int, int]   # uncompressed, compressed
    md5s: tuple[str, str]    # uncompressed, compressed ("" without StoreMD5)

    @classmethod
    def of(cls, data: bytes, *, store_md5: bool) -> _Header:
        stored = compress(data)
        md5s = (hashlib.md5(data).hexdigest(), hashlib.md5(stored).hexdigest()) if store_md5 else ("", "")
        return cls(str(uuidlib.uuid4()), stored, (len(data), len(stored)), md5s)


def _stage(storage, file_uuid: str, data: bytes) -> None:
    with timed("orthanc_storage_create_duration_ms"):
        storage.stage(file_uuid, data)


def _settle(staging: Future | None, storage, file_uuid: str) -> None:
    """Wait for a background stage that is no longer wanted, then remove what it wrote."""
    if staging is not None:
        try:
            staging.result()
        except Exception:  # nothing written, or a partial file that discard removes
            pass
    storage.discard(file_uuid)


def _is_deadlock(error: OperationalError) -> bool:
    # SQLSTATE 40P01 deadlock_detected, 40001 serialization_failure (psycopg sets .sqlstate on the cause)
    return getattr(error.__cause__, "sqlstate", None) in ("40P01", "40001")


def _index_instance(parsed: ParsedDicom, ids: ResourceIds, *, origin: Origin, sizes: tuple[int, int],
                    md5s: tuple[str, str], compressed: bool, file_uuid: str, overwrite: bool,
                    removed_files: list[str], replaced_files: list[str], extra_metadata: tuple = (),
                    room: int | None = None,
                    header: _Header | None = None) -> StoreStatus:
    """Index one instance in the caller's transaction. The hot path of every upload: plain SQL that SQLite
    and PostgreSQL both run (the ORM costs ~20x more per statement here), a handful of statements."""
    ds = parsed.dataset
    cfg = archive_settings()
    encoding = runtime.default_encoding()  # the configured one, or the one set by PUT /tools/default-encoding
    now = utcnow()
    now_iso = iso(now)
    db = IndexWriter()

    existing = db.find(ids)
    gone: Totals | None = None  # what an overwrite removed
    if ids.instance in existing:
        if not overwrite:
            return StoreStatus.ALREADY_STORED
        # Overwrite: delete the old instance (and the ancestors it leaves empty), then store anew. Mostly the
        # series keeps other instances: a few plain statements (the ORM's deletion cost ~3 ms an instance).
        files = db.delete_instance_with_siblings(
            instance_id=existing[ids.instance][0], public_id=ids.instance, series_id=existing[ids.series][0],
            dependents=services.DEPENDENT_TABLES) if ids.series in existing else None
        if files is not None:
            replaced_files.extend(uuid for uuid, _disk, _raw in files)
            gone = Totals(instances=1, disk_size=sum(f[1] for f in files), uncompressed_size=sum(f[2] for f in files))
            del existing[ids.instance]
        else:
            deleted = services.resource_delete_in_transaction(level=Level.INSTANCE, public_id=ids.instance)
            replaced_files.extend(deleted.files)
            gone = deleted.totals
            existing = db.find(ids)
    if room is not None:
        # Recycling in the store's own transaction, as Orthanc does: what is counted is what is stored.
        recycled = _make_room(room, ids.patient, pending=gone or Totals(), removed_files=removed_files)
        gone = recycled if gone is None else gone + recycled

    metadata: list[tuple[int, int, str]] = []
    changes: list[tuple[int, int, str]] = []
    parent_id: int | None = None
    created: set[Level] = set()
    chain = ((Level.PATIENT, ids.patient), (Level.STUDY, ids.study), (Level.SERIES, ids.series))
    ancestors: list[int] = []
    tag_rows: list[tuple[int, int, dict]] = []  # (id, level, main tags) of the resources created here
    expected: int | None = None
    for level, public_id in chain:
        found = existing.get(public_id)
        if found is None:
            tags = main_dicom_tags(ds, level, extra=cfg.extra_main_tags(level), default_encoding=encoding)
            if level is Level.STUDY:
                tags = {**main_dicom_tags(ds, Level.PATIENT, extra=cfg.extra_main_tags(Level.PATIENT),
                                          default_encoding=encoding), **tags}
            expected = _expected_instances(tags) if level is Level.SERIES else None
            rid = db.insert_resource(level=level, public_id=public_id, parent_id=parent_id, tags=tags, now=now,
                                     expected=expected)
            created.add(level)
            tag_rows.append((rid, level.depth, tags))
            metadata.append((rid, MetadataType.MainDicomTagsSignature,
                             main_dicom_tags_signature(level, extra=cfg.extra_main_tags(level))))
            metadata.extend(_main_sequences(rid, ds, level, cfg=cfg, encoding=encoding))
            if level is Level.SERIES:
                metadata.append((rid, MetadataType.RemoteAET, origin.remote_aet))
                if expected is not None:
                    metadata.append((rid, MetadataType.ExpectedNumberOfInstances, str(expected)))
        else:
            rid, expected = found
        ancestors.append(rid)
        parent_id = rid

    instance_tags = main_dicom_tags(ds, Level.INSTANCE, extra=cfg.extra_main_tags(Level.INSTANCE),
                                    default_encoding=encoding)
    index_text, index = _index_in_series(instance_tags)
    instance_id = db.insert_resource(level=Level.INSTANCE, public_id=ids.instance, parent_id=parent_id,
                                     tags=instance_tags, now=now, index=index, stable=True)
    tag_rows.append((instance_id, Level.INSTANCE.depth, instance_tags))
    db.insert_main_tags(tag_rows)
    db.insert_attachment(resource_id=instance_id, content_type=ContentType.Dicom, uuid=file_uuid,
                         compressed_size=sizes[1], uncompressed_size=sizes[0], compressed=compressed,
                         compressed_md5=md5s[1], uncompressed_md5=md5s[0])
    if header is not None:
        db.insert_attachment(resource_id=instance_id, content_type=ContentType.DicomUntilPixelData,
                             uuid=header.uuid, compressed_size=header.sizes[1], uncompressed_size=header.sizes[0],
                             compressed=True, compressed_md5=header.md5s[1], uncompressed_md5=header.md5s[0])
        sizes = (sizes[0] + header.sizes[0], sizes[1] + header.sizes[1])  # both count in the statistics
    values = (
        (MetadataType.IndexInSeries, index_text),
        (MetadataType.ReceptionDate, now_iso),
        (MetadataType.RemoteAET, origin.remote_aet),
        (MetadataType.Origin, origin.kind),
        (MetadataType.TransferSyntax, parsed.transfer_syntax),
        (MetadataType.SopClassUid, _sop_class_uid(ds)),
        (MetadataType.RemoteIP, origin.remote_ip),
        (MetadataType.CalledAET, origin.called_aet if origin.kind == "DicomProtocol" else None),
        (MetadataType.HttpUsername, origin.http_username if origin.kind == "RestApi" else None),
        (MetadataType.PixelDataOffset, None if parsed.pixel_data_offset is None else str(parsed.pixel_data_offset)),
        (MetadataType.MainDicomTagsSignature,
         main_dicom_tags_signature(Level.INSTANCE, extra=cfg.extra_main_tags(Level.INSTANCE))),
    )
    metadata.extend((instance_id, t, v) for t, v in values if v is not None)
    metadata.extend(_main_sequences(instance_id, ds, Level.INSTANCE, cfg=cfg, encoding=encoding))
    ids_by_level = [*ancestors, instance_id]
    existing_rows = []
    for level, kind, value in extra_metadata:
        rid = ids_by_level[level.depth]
        if level is Level.INSTANCE or level in created:
            metadata.append((rid, kind, value))
        else:
            existing_rows.append((rid, kind, value))
    db.insert_metadata(metadata)
    db.upsert_metadata(existing_rows)

    # Changes in Orthanc's order: the instance first, then the new ancestors from the bottom up.
    changes.append((ChangeType.NewInstance, 3, ids.instance))
    new_kind = {Level.SERIES: ChangeType.NewSeries, Level.STUDY: ChangeType.NewStudy,
                Level.PATIENT: ChangeType.NewPatient}
    changes.extend((new_kind[lvl], lvl.depth, pid) for lvl, pid in reversed(chain) if lvl in created)
    db.insert_changes(changes, date=now_iso)

    touched = [rid for (lvl, _), rid in zip(chain, ancestors, strict=True) if lvl not in created]
    if touched:
        db.touch(touched, now=now)
    if expected is not None:
        services.series_check_completed(series_id=ancestors[2], expected=expected, now_iso=now_iso)
    # Last statement before the commit: on PostgreSQL it holds a counter row's lock until then (with
    # sole_writer, until the file is durable too).
    added = Totals(int(Level.PATIENT in created), int(Level.STUDY in created), int(Level.SERIES in created), 1,
                   sizes[1], sizes[0])
    statistics_add(added - gone if gone is not None else added, cursor=db.cursor)
    return StoreStatus.SUCCESS


def _main_sequences(rid: int, ds, level: Level, *, cfg, encoding: str) -> list[tuple[int, int, str]]:
    """The MainDicomSequences metadata of a new resource (Orthanc 1.11.1): its main tags that are sequences
    (RequestAttributesSequence on series, and sequences named in ExtraMainDicomTags), kept in Orthanc's
    full format under ``{"Sequences": ..., "Version": 1}``, as Orthanc stores them."""
    sequences = main_dicom_sequences(ds, level, extra=cfg.extra_main_tags(level), default_encoding=encoding)
    if not sequences:
        return []
    text = json.dumps({"Sequences": sequences, "Version": 1}, ensure_ascii=False, separators=(",", ":"))
    return [(rid, MetadataType.MainDicomSequences, text)]


def _recycling_needed(incoming_size: int, patient_public_id: str, *, pending: Totals) -> bool:
    """Orthanc's IsRecyclingNeeded, counted as if the instance were stored: more bytes than
    MaximumStorageSize, or more patients than MaximumPatientCount. ``pending``: what the recycling has
    removed so far in this transaction, not yet subtracted from the running totals."""
    cfg = archive_settings()
    totals = statistics_totals() - pending  # the running totals: no sum over all attachments per instance
    if cfg.maximum_storage_size:
        if totals.disk_size + incoming_size > cfg.maximum_storage_size * 1024 * 1024:
            return True
    if cfg.maximum_patient_count:
        count = totals.patients + (not Resource.objects.filter(level=0, public_id=patient_public_id).exists())
        if count > cfg.maximum_patient_count:
            return True
    return False


RECYCLING_LOCK = 0x52454359  # "RECY": the PostgreSQL advisory lock that serializes stores under limits


def _check_size(incoming_size: int) -> None:
    """An instance larger than MaximumStorageSize on its own: refused before anything else, in both modes
    (an error status of 500, not Reject's 507)."""
    limit = archive_settings().maximum_storage_size * 1024 * 1024
    if limit and incoming_size > limit:
        raise FullStorage(f"Cannot store an instance of size {incoming_size} bytes in a storage area "
                          f"limited to {limit}")


def _make_room(incoming_size: int, patient_public_id: str, *, pending: Totals, removed_files: list[str]) -> Totals:
    """Recycle (or reject) as Orthanc does when MaximumStorageSize or MaximumPatientCount is reached; returns
    what was removed, for the store's statistics_add. Runs in the store's transaction.

    ``incoming_size`` is the size on disk (compressed when StorageCompression is on). The oldest unprotected
    patients go first; the patient receiving the instance is never recycled. All or nothing: Orthanc
    recycles inside the store transaction, so a store that fails recycles no one. The check and the store
    are one step for all processes (SQLite's IMMEDIATE transactions; on PostgreSQL an advisory lock held
    until the commit): two stores that each saw room for one more would otherwise both go in.
    """
    cfg = archive_settings()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RECYCLING_LOCK])
    gone = Totals()
    while _recycling_needed(incoming_size, patient_public_id, pending=pending + gone):
        if cfg.maximum_storage_mode == "Reject":
            raise FullStorage(rejected=True)
        victim = (Resource.objects.filter(level=0, is_protected=False).exclude(public_id=patient_public_id)
                  .order_by("last_update", "id").values_list("public_id", flat=True).first())
        if victim is None:
            raise FullStorage("Cannot recycle more patients")
        logger.info("recycling patient %s to make room", victim)
        try:
            with transaction.atomic():
                deleted = services.resource_delete_in_transaction(level=Level.PATIENT, public_id=victim)
        except UnknownResource:
            continue  # deleted by someone else meanwhile: look again
        removed_files.extend(deleted.files)
        gone = gone + deleted.totals
    return gone


def _sop_class_uid(ds: Dataset) -> str | None:
    """The SopClassUid metadata: absent without the tag, as Orthanc sets it only when the file has one."""
    if 0x00080016 not in ds:
        return None
    return str(ds.get("SOPClassUID") or "").strip(" \x00")
