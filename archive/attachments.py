"""Attachments: the DICOM file of an instance and user-defined files (UserContentType, 1024-65535) on any
resource; stored through the storage area's stage/publish protocol, with revisions like metadata."""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from archive.errors import CorruptedFile, ParameterOutOfRange, RevisionMismatch, UnknownResource
from archive.models import Attachment, Change, ChangeType, ContentType, Resource
from archive.settings import archive_settings
from archive.storage import compress, dicom_storage, uncompress
from archive.timeutil import iso, utcnow

SYSTEM_NAMES = {"dicom": ContentType.Dicom, "dicom-as-json": ContentType.DicomAsJson,
                "dicom-until-pixel-data": ContentType.DicomUntilPixelData}
USER_FIRST, USER_LAST = 1024, 65535
OPERATIONS = ["compress", "compressed-data", "compressed-md5", "compressed-size", "data", "info",
              "is-compressed", "md5", "size", "uncompress", "verify-md5"]


def _user_types() -> dict[str, tuple[int, str]]:
    out = {}
    for name, value in (settings.ORTHANC.get("UserContentType") or {}).items():
        if isinstance(value, list):
            out[str(name)] = (int(value[0]), str(value[1]) if len(value) > 1 else "application/octet-stream")
        else:
            out[str(name)] = (int(value), "application/octet-stream")
    return out


def content_type_number(name: str) -> int:
    if name in SYSTEM_NAMES:
        return int(SYSTEM_NAMES[name])
    user = _user_types()
    if name in user:
        return user[name][0]
    if name.isdigit() and 0 < int(name) <= USER_LAST:
        return int(name)
    raise ParameterOutOfRange(f"Unknown attachment type: {name}")


def content_type_name(number: int) -> str:
    for name, value in SYSTEM_NAMES.items():
        if int(value) == number:
            return name
    for name, (value, _mime) in _user_types().items():
        if value == number:
            return name
    return str(number)


def mime_type(number: int) -> str:
    if number == ContentType.Dicom:
        return "application/dicom"
    for value, mime in _user_types().values():
        if value == number:
            return mime
    return "application/octet-stream"


def attachments_list(*, resource: Resource) -> dict[str, int]:
    rows = Attachment.objects.filter(resource=resource).order_by("content_type").values_list("content_type", flat=True)
    return {content_type_name(n): n for n in rows}


def attachment_get(*, resource: Resource, name: str) -> Attachment:
    row = Attachment.objects.filter(resource=resource, content_type=content_type_number(name)).first()
    if row is None:
        raise UnknownResource(f"No attachment {name} on this resource")
    return row


def attachment_info(att: Attachment) -> dict:
    return {"CompressedMD5": att.compressed_md5, "CompressedSize": att.compressed_size,
            "ContentType": att.content_type, "UncompressedMD5": att.uncompressed_md5,
            "UncompressedSize": att.uncompressed_size, "Uuid": att.uuid}


def attachment_stored_bytes(att: Attachment) -> bytes:
    return dicom_storage().read(att.uuid)


def attachment_data(att: Attachment) -> bytes:
    data = attachment_stored_bytes(att)
    return uncompress(data) if att.compression == 2 else data


def attachment_verify_md5(att: Attachment) -> None:
    """CorruptedFile unless the stored bytes still have the recorded MD5s."""
    stored = attachment_stored_bytes(att)
    if att.compressed_md5 and hashlib.md5(stored).hexdigest() != att.compressed_md5:
        raise CorruptedFile("The MD5 of the stored attachment does not match")
    data = uncompress(stored) if att.compression == 2 else stored
    if att.uncompressed_md5 and hashlib.md5(data).hexdigest() != att.uncompressed_md5:
        raise CorruptedFile("The MD5 of the attachment does not match")


@dataclass
class _Written:
    uuid: str
    stored: bytes


def _write(data: bytes, compressed: bool) -> tuple[_Written, dict]:
    stored = compress(data) if compressed else data
    uuid = str(uuidlib.uuid4())
    dicom_storage().stage(uuid, stored)
    md5 = hashlib.md5(data).hexdigest()
    fields = {"uuid": uuid, "compressed_size": len(stored), "uncompressed_size": len(data),
              "compression": 2 if compressed else 1,
              "compressed_md5": hashlib.md5(stored).hexdigest() if compressed else md5, "uncompressed_md5": md5}
    return _Written(uuid, stored), fields


def _log(resource: Resource) -> None:
    Change.objects.create(change_type=ChangeType.UpdatedAttachment, level=resource.level,
                          public_id=resource.public_id, date=iso(utcnow()))


def _replace(*, resource: Resource, number: int, data: bytes, compressed: bool, if_match: int | None,
             require_existing: bool, check: bool) -> int:
    written, fields = _write(data, compressed)
    storage = dicom_storage()
    old_uuid = None
    try:
        with transaction.atomic():
            row = Attachment.objects.select_for_update().filter(resource=resource, content_type=number).first()
            if row is None:
                if require_existing:
                    raise UnknownResource()
                Attachment.objects.create(resource=resource, content_type=number, revision=0, **fields)
                revision = 0
            else:
                if check and archive_settings().check_revisions and (if_match is None or if_match != row.revision):
                    raise RevisionMismatch()
                old_uuid = row.uuid
                for key, value in fields.items():
                    setattr(row, key, value)
                row.revision += 1
                row.save()
                revision = row.revision
            _log(resource)
    except BaseException:
        storage.discard(written.uuid)
        raise
    storage.publish(written.uuid)
    if old_uuid:
        storage.remove(old_uuid)
    return revision


def attachment_put(*, resource: Resource, name: str, data: bytes, if_match: int | None) -> int:
    """Create or replace a user-defined attachment; returns its revision."""
    number = content_type_number(name)
    if not USER_FIRST <= number <= USER_LAST:
        raise ParameterOutOfRange(f"Only user-defined attachments can be written: {name}")
    return _replace(resource=resource, number=number, data=data, compressed=archive_settings().storage_compression,
                    if_match=if_match, require_existing=False, check=True)


def attachment_set_compression(*, resource: Resource, name: str, compressed: bool) -> None:
    """Rewrite an attachment compressed or not (POST .../compress and .../uncompress); idempotent."""
    att = attachment_get(resource=resource, name=name)
    if (att.compression == 2) == compressed:
        return
    _replace(resource=resource, number=att.content_type, data=attachment_data(att), compressed=compressed,
             if_match=None, require_existing=True, check=False)


def attachment_delete(*, resource: Resource, name: str, if_match: int | None) -> None:
    """Delete a user-defined attachment (the DICOM file of an instance cannot be deleted this way)."""
    number = content_type_number(name)
    if number == ContentType.Dicom:
        raise ParameterOutOfRange("The DICOM file of an instance cannot be deleted; delete the instance")
    with transaction.atomic():
        row = Attachment.objects.select_for_update().filter(resource=resource, content_type=number).first()
        if row is None:
            raise UnknownResource(f"No attachment {name} on this resource")
        if archive_settings().check_revisions and (if_match is None or if_match != row.revision):
            raise RevisionMismatch()
        uuid = row.uuid
        row.delete()
        _log(resource)
    dicom_storage().remove(uuid)
