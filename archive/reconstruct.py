"""The /reconstruct routes: the index rebuilt from the stored files, as Orthanc 1.12 does it.

Each instance below the resource is read again; its main DICOM tags, and those of its series, study and
patient, are written anew from it (the last instance read wins for the ancestors, as in Orthanc's
ReconstructInstance), with the MainDicomTagsSignature and MainDicomSequences metadata; all other metadata,
labels and attachments are kept, no change is logged. With ``this_level_only`` (LimitToThisLevelMainDicomTags)
only the resource's own tags are refreshed, from one of its instances. With ``files`` (ReconstructFiles) each
file is also written again under the current StorageCompression.
"""

from __future__ import annotations

import hashlib
import json
import uuid as uuidlib
from collections.abc import Iterable

from django.db import transaction

from archive import runtime, selectors
from archive.dicom.matching import fold
from archive.dicom.parse import dicom_parse
from archive.dicom.tags import main_dicom_sequences, main_dicom_tags, main_dicom_tags_signature, tag_number
from archive.levels import Level
from archive.models import Attachment, ContentType, MainDicomTag, Metadata, MetadataType, Resource
from archive.settings import archive_settings
from archive.statistics import Totals, statistics_add
from archive.storage import compress, dicom_storage


def _level_tags(ds, level: Level, encoding: str) -> dict:
    cfg = archive_settings()
    tags = main_dicom_tags(ds, level, extra=cfg.extra_main_tags(level), default_encoding=encoding)
    if level is Level.STUDY:  # a study holds its patient's tags too, as at ingest
        tags = {**main_dicom_tags(ds, Level.PATIENT, extra=cfg.extra_main_tags(Level.PATIENT),
                                  default_encoding=encoding), **tags}
    return tags


def _set_main_tags(resource_id: int, level: Level, ds, encoding: str) -> None:
    cfg = archive_settings()
    tags = _level_tags(ds, level, encoding)
    Resource.objects.filter(id=resource_id).update(main_tags=tags)
    MainDicomTag.objects.filter(resource_id=resource_id).delete()
    MainDicomTag.objects.bulk_create([
        MainDicomTag(resource_id=resource_id, level=level.depth, tag=number, value=value, value_folded=fold(value))
        for name, value in tags.items() if (number := tag_number(name)) is not None])
    Metadata.objects.update_or_create(
        resource_id=resource_id, type=MetadataType.MainDicomTagsSignature,
        defaults={"value": main_dicom_tags_signature(level, extra=cfg.extra_main_tags(level))})
    sequences = main_dicom_sequences(ds, level, extra=cfg.extra_main_tags(level), default_encoding=encoding)
    if sequences:
        text = json.dumps({"Sequences": sequences, "Version": 1}, ensure_ascii=False, separators=(",", ":"))
        Metadata.objects.update_or_create(resource_id=resource_id, type=MetadataType.MainDicomSequences,
                                          defaults={"value": text})
    else:
        Metadata.objects.filter(resource_id=resource_id, type=MetadataType.MainDicomSequences).delete()


def _chain(instance: Resource) -> list[tuple[Level, int]]:
    """(level, id) of the instance and its ancestors, the instance first."""
    row = Resource.objects.filter(id=instance.id).values_list(
        "id", "parent_id", "parent__parent_id", "parent__parent__parent_id").get()
    return list(zip((Level.INSTANCE, Level.SERIES, Level.STUDY, Level.PATIENT), row, strict=True))


def _rewrite_file(instance_id: int, data: bytes, pixel_data_offset: int | None) -> None:
    """The file stored again under the current StorageCompression (new files, the old ones removed after
    the index points to the new ones), with its "dicom-until-pixel-data" attachment when compressed, as
    the store writes them; the running statistics follow the sizes."""
    cfg = archive_settings()
    compressed = cfg.storage_compression
    files = [(ContentType.Dicom, data, compress(data) if compressed else data)]
    if compressed and pixel_data_offset is not None:
        header = data[:pixel_data_offset]
        files.append((ContentType.DicomUntilPixelData, header, compress(header)))
    storage = dicom_storage()
    staged: list[str] = []
    rows = []
    try:
        for content_type, raw, stored in files:
            uuid = str(uuidlib.uuid4())
            storage.stage(uuid, stored)
            staged.append(uuid)
            rows.append(Attachment(
                resource_id=instance_id, content_type=content_type, uuid=uuid,
                compressed_size=len(stored), uncompressed_size=len(raw), compression=2 if compressed else 1,
                compressed_md5=hashlib.md5(stored).hexdigest() if cfg.store_md5 else "",
                uncompressed_md5=hashlib.md5(raw).hexdigest() if cfg.store_md5 else ""))
        with transaction.atomic():
            # The instance locked first, its attachments read after: a reconstruction of the same instance
            # running beside this one waits, then replaces the rows that one wrote (each subtracts from the
            # statistics what it removed)
            list(Resource.objects.select_for_update().filter(id=instance_id).values_list("id", flat=True))
            old = list(Attachment.objects.select_for_update().filter(
                resource_id=instance_id, content_type__in=(ContentType.Dicom, ContentType.DicomUntilPixelData)))
            revisions = {a.content_type: a.revision for a in old}
            for row in rows:
                row.revision = revisions.get(row.content_type, 0)
            Attachment.objects.filter(id__in=[a.id for a in old]).delete()
            Attachment.objects.bulk_create(rows)
            statistics_add(Totals(
                disk_size=sum(a.compressed_size for a in rows) - sum(a.compressed_size for a in old),
                uncompressed_size=sum(a.uncompressed_size for a in rows) - sum(a.uncompressed_size for a in old)))
    except BaseException:
        for uuid in staged:
            storage.discard(uuid)
        raise
    for uuid in staged:
        storage.publish(uuid)
    for att in old:
        storage.retire(att.uuid)


def instances_reconstruct(instances: Iterable[Resource], *, files: bool = False) -> int:
    """Rebuild the index rows of each instance and its ancestors from its file; returns how many."""
    encoding = runtime.default_encoding()
    count = 0
    for instance in instances:
        data = selectors.instance_dicom(instance=instance)
        parsed = dicom_parse(data)
        ds = parsed.dataset
        with transaction.atomic():
            for level, rid in _chain(instance):
                _set_main_tags(rid, level, ds, encoding)
        if files:
            _rewrite_file(instance.id, data, parsed.pixel_data_offset)
        count += 1
    return count


def resource_reconstruct(*, resource: Resource, files: bool = False, this_level_only: bool = False) -> None:
    level = list(Level)[resource.level]
    if this_level_only:
        instance = selectors.instance_first(resource=resource)
        ds = dicom_parse(selectors.instance_dicom(instance=instance)).dataset
        with transaction.atomic():
            _set_main_tags(resource.id, level, ds, runtime.default_encoding())
        return
    instances_reconstruct(selectors.resource_descendants(resource=resource, level=Level.INSTANCE), files=files)


def archive_reconstruct(*, files: bool = False, batch: int = 500) -> int:
    """Every instance of the archive, in batches by id (no whole-table list in memory)."""
    last, count = 0, 0
    while True:
        chunk = list(Resource.objects.filter(level=Level.INSTANCE.depth, id__gt=last).order_by("id")[:batch])
        if not chunk:
            return count
        count += instances_reconstruct(chunk, files=files)
        last = chunk[-1].id
