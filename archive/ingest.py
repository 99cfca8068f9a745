"""The one way in: ``instance_store`` stores one DICOM instance, whoever sends it.

REST upload, C-STORE, the UI and jobs all call it, as Orthanc routes everything through
``ServerContext::Store``. The order makes a crash harmless: stage the file, index it in one short
transaction, publish the file; a failure at any step removes what the earlier steps made.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Sum

from archive import services
from archive.dicom.parse import ParsedDicom, dicom_parse
from archive.dicom.tags import main_dicom_tags, main_dicom_tags_signature
from archive.errors import BadFileFormat, FullStorage
from archive.identifiers import ResourceIds, resource_ids
from archive.levels import Level
from archive.models import Attachment, Change, ChangeType, ContentType, Metadata, MetadataType, Resource
from archive.settings import archive_settings
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
        return "" if value is None else str(value).strip(" \x00")

    patient_id = text("PatientID")
    study, series, sop = text("StudyInstanceUID"), text("SeriesInstanceUID"), text("SOPInstanceUID")
    for name, value in (("StudyInstanceUID", study), ("SeriesInstanceUID", series), ("SOPInstanceUID", sop)):
        if not value:
            raise BadFileFormat(f"Missing tag {name} in the DICOM file")
    return patient_id, study, series, sop


def _index_in_series(ds) -> int | None:
    for keyword in ("InstanceNumber", "ImageIndex"):
        value = ds.get(keyword)
        if value not in (None, ""):
            try:
                return int(str(value).strip())
            except ValueError:
                continue
    return None


def _expected_instances(tags: dict[str, str]) -> int | None:
    """Orthanc's guess of a series' size from its main tags (ComputeExpectedNumberOfInstances)."""
    def number(keyword: str) -> int | None:
        try:
            value = int(str(tags.get(keyword, "")).strip())
        except ValueError:
            return None
        return value if value > 0 else None

    slices, time_slices = number("NumberOfSlices"), number("NumberOfTimeSlices")
    if slices and time_slices:
        return slices * time_slices
    for keyword in ("NumberOfSlices", "ImagesInAcquisition", "CardiacNumberOfImages"):
        value = number(keyword)
        if value:
            return value
    return None


def instance_store(*, data: bytes, origin: Origin, overwrite: bool | None = None) -> StoreResult:
    """Store one DICOM instance; AlreadyStored is a result, not an error. Raises ArchiveError on bad input."""
    parsed = dicom_parse(data)
    ds = parsed.dataset
    patient_id, study_uid, series_uid, sop_uid = _identifiers(ds)
    ids = resource_ids(patient_id=patient_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
    cfg = archive_settings()
    if overwrite is None:
        overwrite = cfg.overwrite_instances
    sop_class = str(ds.get("SOPClassUID", "") or "").strip(" \x00")

    if not overwrite and Resource.objects.filter(public_id=ids.instance).exists():
        return StoreResult(StoreStatus.ALREADY_STORED, ids, sop_class, sop_uid)

    if cfg.maximum_storage_size or cfg.maximum_patient_count:
        _make_room(len(data), ids.patient)

    stored = compress(data) if cfg.storage_compression else data
    file_uuid = str(uuidlib.uuid4())
    storage = dicom_storage()
    storage.stage(file_uuid, stored)
    removed_files: list[str] = []
    try:
        with transaction.atomic():
            status = _index_instance(parsed, ids, origin=origin, data=data, stored=stored,
                                     file_uuid=file_uuid, overwrite=overwrite, removed_files=removed_files)
    except BaseException:
        storage.discard(file_uuid)  # compensate: no orphan file
        raise
    if status is not StoreStatus.SUCCESS:
        storage.discard(file_uuid)
    else:
        storage.publish(file_uuid)
    for old in removed_files:
        storage.remove(old)
    return StoreResult(status, ids, sop_class, sop_uid)


def _index_instance(parsed: ParsedDicom, ids: ResourceIds, *, origin: Origin, data: bytes, stored: bytes,
                    file_uuid: str, overwrite: bool, removed_files: list[str]) -> StoreStatus:
    ds = parsed.dataset
    cfg = archive_settings()
    now = utcnow()
    now_iso = iso(now)

    existing = dict(Resource.objects.filter(public_id__in=ids).values_list("public_id", "id"))
    if ids.instance in existing:
        if not overwrite:
            return StoreStatus.ALREADY_STORED
        # Overwrite: delete the old instance (and the ancestors it leaves empty), then store anew.
        removed_files.extend(services.resource_delete_in_transaction(level=Level.INSTANCE,
                                                                     public_id=ids.instance))
        existing = dict(Resource.objects.filter(public_id__in=ids).values_list("public_id", "id"))

    changes: list[Change] = []
    metadata: list[Metadata] = []
    parent_id: int | None = None
    created: dict[Level, int] = {}
    chain = ((Level.PATIENT, ids.patient), (Level.STUDY, ids.study), (Level.SERIES, ids.series))
    for level, public_id in chain:
        rid = existing.get(public_id)
        if rid is None:
            tags = main_dicom_tags(ds, level, extra=cfg.extra_main_tags(level),
                                   default_encoding=cfg.default_encoding)
            if level is Level.STUDY:
                tags = {**main_dicom_tags(ds, Level.PATIENT, extra=cfg.extra_main_tags(Level.PATIENT),
                                          default_encoding=cfg.default_encoding), **tags}
            resource = Resource.objects.create(level=level.depth, public_id=public_id, parent_id=parent_id,
                                               main_tags=tags, last_update=now)
            rid = resource.id
            created[level] = rid
            metadata.append(Metadata(resource_id=rid, type=MetadataType.MainDicomTagsSignature,
                                     value=main_dicom_tags_signature(level, extra=cfg.extra_main_tags(level))))
            if level is Level.SERIES:
                metadata.append(Metadata(resource_id=rid, type=MetadataType.RemoteAET, value=origin.remote_aet))
                expected = _expected_instances(tags)
                if expected is not None:
                    metadata.append(Metadata(resource_id=rid, type=MetadataType.ExpectedNumberOfInstances,
                                             value=str(expected)))
        parent_id = rid
    ancestors = [existing.get(pid) or created[lvl] for lvl, pid in chain]

    instance_tags = main_dicom_tags(ds, Level.INSTANCE, extra=cfg.extra_main_tags(Level.INSTANCE),
                                    default_encoding=cfg.default_encoding)
    index = _index_in_series(ds)
    instance = Resource.objects.create(level=Level.INSTANCE.depth, public_id=ids.instance, parent_id=parent_id,
                                       main_tags=instance_tags, last_update=now, index_in_series=index,
                                       is_stable=True)
    md5 = hashlib.md5(data).hexdigest() if cfg.store_md5 else ""
    Attachment.objects.create(
        resource_id=instance.id, content_type=ContentType.Dicom, uuid=file_uuid,
        compressed_size=len(stored), uncompressed_size=len(data),
        compression=2 if stored is not data else 1,
        compressed_md5=(hashlib.md5(stored).hexdigest() if stored is not data else md5) if cfg.store_md5 else "",
        uncompressed_md5=md5,
    )
    values = {
        MetadataType.IndexInSeries: None if index is None else str(index),
        MetadataType.ReceptionDate: now_iso,
        MetadataType.RemoteAET: origin.remote_aet,
        MetadataType.Origin: origin.kind,
        MetadataType.TransferSyntax: parsed.transfer_syntax,
        MetadataType.SopClassUid: str(ds.get("SOPClassUID", "") or ""),
        MetadataType.RemoteIP: origin.remote_ip,
        MetadataType.CalledAET: origin.called_aet if origin.kind == "DicomProtocol" else None,
        MetadataType.HttpUsername: origin.http_username if origin.kind == "RestApi" else None,
        MetadataType.PixelDataOffset: None if parsed.pixel_data_offset is None else str(parsed.pixel_data_offset),
        MetadataType.MainDicomTagsSignature: main_dicom_tags_signature(
            Level.INSTANCE, extra=cfg.extra_main_tags(Level.INSTANCE)),
    }
    metadata.extend(Metadata(resource_id=instance.id, type=t, value=v) for t, v in values.items() if v is not None)
    Metadata.objects.bulk_create(metadata)

    # Changes in Orthanc's order: the instance first, then the new ancestors from the bottom up.
    changes.append(Change(change_type=ChangeType.NewInstance, level=3, public_id=ids.instance, date=now_iso))
    for level, public_id in reversed(chain):
        if level in created:
            change = {Level.SERIES: ChangeType.NewSeries, Level.STUDY: ChangeType.NewStudy,
                      Level.PATIENT: ChangeType.NewPatient}[level]
            changes.append(Change(change_type=change, level=level.depth, public_id=public_id, date=now_iso))
    Change.objects.bulk_create(changes)

    touched = [rid for rid in ancestors if rid not in created.values()]
    if touched:
        Resource.objects.filter(id__in=touched).update(last_update=now, is_stable=False)
    services.series_check_completed(series_id=ancestors[2], now_iso=now_iso)
    return StoreStatus.SUCCESS


def _make_room(incoming_size: int, patient_public_id: str) -> None:
    """Recycle (or reject) as Orthanc does when MaximumStorageSize or MaximumPatientCount is reached.

    The oldest unprotected patients go first; the patient receiving the instance is never recycled.
    """
    cfg = archive_settings()
    while True:
        patients = Resource.objects.filter(level=0)
        count = patients.count()
        is_new_patient = not patients.filter(public_id=patient_public_id).exists()
        over_count = bool(cfg.maximum_patient_count) and is_new_patient and count >= cfg.maximum_patient_count
        over_size = False
        if cfg.maximum_storage_size:
            used = Attachment.objects.aggregate(s=Sum("compressed_size"))["s"] or 0
            over_size = used + incoming_size > cfg.maximum_storage_size * 1024 * 1024
        if not (over_count or over_size):
            return
        if cfg.maximum_storage_mode == "Reject":
            raise FullStorage()
        victim = (patients.filter(is_protected=False).exclude(public_id=patient_public_id)
                  .order_by("last_update", "id").values_list("public_id", flat=True).first())
        if victim is None:
            raise FullStorage()
        logger.info("recycling patient %s to make room", victim)
        services.resource_delete(level=Level.PATIENT, public_id=victim)
