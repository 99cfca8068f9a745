"""Attachments: files attached to resources, as Orthanc 1.12.11 keeps them.

The DICOM file of an instance is the attachment ``dicom`` (content type 1); clients add their own files
under user content types (1024-65535, named by the ``UserContentType`` option, ``name: number`` or
``name: [number, mime]``). Each attachment has a revision (ETag ``"<revision>-<uncompressed MD5>"``), as
metadata do. Files go through the storage area's two phases (stage, commit the index, publish) and an
attachment that is replaced or deleted loses its file only once the index no longer points to it.

Orthanc's quirks kept on purpose: reading, writing, deleting and (un)compressing one attachment find the
resource whatever the level in the URI (only the list checks the level); ``Range`` follows Orthanc's
parser, where ``bytes=-N`` means the first N+1 bytes and an end past the file is refused, not clamped.
"""

from __future__ import annotations

import hashlib
import re
import uuid as uuidlib
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from archive.errors import (
    ArchiveError,
    BadRange,
    ForbiddenAccess,
    InexistentItem,
    OrthancError,
    RevisionMismatch,
    UnknownResource,
)
from archive.levels import Level
from archive.metadata import etag_of, etag_parse, revision_expected, revisioned_row
from archive.models import Attachment, Change, ChangeType, ContentType, Resource
from archive.selectors import resource_get, resource_get_any_level
from archive.settings import archive_settings
from archive.statistics import Totals, statistics_add
from archive.storage import compress, dicom_storage, uncompress
from archive.timeutil import iso, utcnow

USER_FIRST, USER_LAST = 1024, 65535
COMPRESSION_NONE, COMPRESSION_ZLIB = 1, 2      # Orthanc's CompressionType numbers
SYSTEM_NAMES = {"dicom": ContentType.Dicom, "dicom-as-json": ContentType.DicomAsJson,
                "dicom-until-pixel-data": ContentType.DicomUntilPixelData}
_SYSTEM_MIME = {ContentType.Dicom: "application/dicom", ContentType.DicomAsJson: "application/json",
                ContentType.DicomUntilPixelData: "application/dicom"}
_EXTENSION = {ContentType.Dicom: ".dcm", ContentType.DicomUntilPixelData: ".dcm", ContentType.DicomAsJson: ".json"}
_INT = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")


class SystemAttachmentReadOnly(ForbiddenAccess):
    """Only user attachments (1024-65535) can be written or deleted over REST (and ``dicom-as-json``
    deleted, with StoreDicom). Orthanc answers a bare 403, without the JSON error body."""

    bare = True


def _user_types() -> dict[str, tuple[int, str]]:
    out = {}
    for name, value in (settings.ORTHANC.get("UserContentType") or {}).items():
        try:
            if isinstance(value, list):
                mime = str(value[1]) if len(value) > 1 else "application/octet-stream"
                out[str(name)] = (int(value[0]), mime)
            else:
                out[str(name)] = (int(value), "application/octet-stream")
        except (TypeError, ValueError, IndexError):
            continue
    return out


def content_type_number(name: str) -> int:
    """An attachment name -> its content type, as Orthanc's StringToContentType: an integer is taken as
    is, else a system or ``UserContentType`` name; anything else is InexistentItem (404)."""
    if _INT.fullmatch(name) and -(2**31) <= int(name) < 2**31:
        return int(name)
    if name in SYSTEM_NAMES:
        return int(SYSTEM_NAMES[name])
    user = _user_types()
    if name in user:
        return user[name][0]
    raise InexistentItem()


def content_type_name(number: int) -> str:
    for name, value in SYSTEM_NAMES.items():
        if int(value) == number:
            return name
    for name, (value, _mime) in _user_types().items():
        if value == number:
            return name
    return str(number)


def content_type_is_user(number: int) -> bool:
    return USER_FIRST <= number <= USER_LAST


def mime_type(number: int) -> str:
    """The Content-Type of an attachment's data (Orthanc's GetFileContentMime)."""
    if number in _SYSTEM_MIME:
        return _SYSTEM_MIME[number]
    for value, mime in _user_types().values():
        if value == number:
            return mime
    return "application/octet-stream"


def download_name(att: Attachment) -> str:
    """The file name Orthanc puts in Content-Disposition when it sends an attachment: UUID + extension."""
    return att.uuid + _EXTENSION.get(att.content_type, "")


def attachment_etag(att: Attachment) -> str:
    return etag_of(att.revision, md5=att.uncompressed_md5)


def attachment_matches(att: Attachment, if_none_match: str | None) -> bool:
    """Whether If-None-Match names this very revision (Orthanc then answers 304)."""
    if if_none_match is None:
        return False
    return etag_parse(if_none_match, header="If-None-Match") == (att.revision, att.uncompressed_md5)


def _log(resource: Resource, content_type: int) -> None:
    # Orthanc logs UpdatedAttachment for user attachments only.
    if content_type_is_user(content_type):
        Change.objects.create(change_type=ChangeType.UpdatedAttachment, level=resource.level,
                              public_id=resource.public_id, date=iso(utcnow()))


# Reads ------------------------------------------------------------------------------------------------

def attachments_list(*, level: Level, public_id: str, full: bool = False) -> list[str] | dict[str, int]:
    """The attachments of a resource: names in content-type order, or with ``full`` an object
    name -> number (keys sorted, as Orthanc's JSON writer sorts them). UnknownResource if the resource is
    not at that level."""
    resource = resource_get(level=level, public_id=public_id)
    numbers = sorted(Attachment.objects.filter(resource=resource).values_list("content_type", flat=True))
    if full:
        # Code point order is UTF-8 byte order, the order of Orthanc's JSON writer.
        return dict(sorted((content_type_name(n), n) for n in numbers))
    return [content_type_name(n) for n in numbers]


def attachment_get(*, public_id: str, name: str) -> Attachment:
    """One attachment, found whatever the level in the URI (Orthanc's LookupAttachment). InexistentItem
    for an unknown name; UnknownResource for an unknown resource or an absent attachment."""
    att = _attachment_find(public_id=public_id, name=name)
    if att is None:
        raise UnknownResource()
    return att


def _attachment_find(*, public_id: str, name: str) -> Attachment | None:
    number = content_type_number(name)
    resource = resource_get_any_level(public_id=public_id)
    return Attachment.objects.filter(resource=resource, content_type=number).first()


def attachment_operations(att: Attachment) -> list[str]:
    """What GET .../attachments/{name} lists: the routes below it, MD5 ones only when MD5s are stored."""
    ops = ["compress", "compressed-data"]
    if att.compressed_md5:
        ops.append("compressed-md5")
    ops += ["compressed-size", "data", "info", "is-compressed"]
    if att.uncompressed_md5:
        ops.append("md5")
    ops += ["size", "uncompress"]
    if att.compressed_md5 and att.uncompressed_md5:
        ops.append("verify-md5")
    return ops


def attachment_info(att: Attachment) -> dict:
    """Orthanc's ``.../info`` object (keys in the order its JSON writer prints them)."""
    return {"CompressedMD5": att.compressed_md5, "CompressedSize": att.compressed_size,
            "ContentType": att.content_type, "UncompressedMD5": att.uncompressed_md5,
            "UncompressedSize": att.uncompressed_size, "Uuid": att.uuid}


def attachment_stored_bytes(att: Attachment) -> bytes:
    """The file as the storage area holds it (compressed or not)."""
    return dicom_storage().read(att.uuid)


def attachment_data(att: Attachment) -> bytes:
    """The attachment's content, uncompressed."""
    data = attachment_stored_bytes(att)
    return uncompress(data) if att.compression == COMPRESSION_ZLIB else data


@dataclass(frozen=True)
class ByteRange:
    """Orthanc's StorageRange: optional inclusive start and end (``bytes=-N`` is ``0..N``, not a suffix)."""

    start: int | None = None
    end: int | None = None

    @classmethod
    def parse(cls, header: str) -> ByteRange:
        """An HTTP Range header (Orthanc 1.12.5). Not ``bytes=``, or not exactly one ``-``: BadRange (416).
        A bound that is not a number is ignored, as Orthanc's parser does; start > end is Orthanc's
        BadSequenceOfCalls (400)."""
        if not header.startswith("bytes="):
            raise BadRange()
        tokens = header[len("bytes="):].split("-")
        if len(tokens) != 2:
            raise BadRange()
        start, end = (int(t) if _DIGITS.fullmatch(t) and int(t) < 2**64 else None for t in tokens)
        if start is not None and end is not None and start > end:
            raise ArchiveError(orthanc_error=OrthancError.BAD_SEQUENCE_OF_CALLS)
        return cls(start, end)

    def content_range(self, size: int) -> str:
        """The Content-Range answer header; BadRange when the range does not fit in ``size`` bytes."""
        self._check(size)
        first = self.start if self.start is not None else 0
        last = self.end if self.end is not None else size - 1
        return f"bytes {first}-{last}/{size}"

    def extract(self, data: bytes) -> bytes:
        self._check(len(data))
        first = self.start if self.start is not None else 0
        last = self.end if self.end is not None else len(data) - 1
        return data[first:last + 1]

    def _check(self, size: int) -> None:
        if size == 0 or (self.start is not None and self.start >= size) or \
                (self.end is not None and self.end >= size):
            raise BadRange()


def attachment_range(att: Attachment, byte_range: ByteRange, *, uncompressed: bool) -> tuple[bytes, str]:
    """A part of the attachment (of its stored bytes unless ``uncompressed``) and its Content-Range."""
    data = attachment_data(att) if uncompressed else attachment_stored_bytes(att)
    return byte_range.extract(data), byte_range.content_range(len(data))


def attachment_verify_md5(*, public_id: str, name: str) -> bool | None:
    """Check the stored file against the recorded MD5s, as POST .../verify-md5: True if it matches,
    False if not, None when there is nothing to check (absent attachment or no MD5 stored). Orthanc
    answers ``{}`` for True and a bare 400 otherwise. UnknownResource for an unknown resource."""
    att = _attachment_find(public_id=public_id, name=name)
    if att is None or not att.compressed_md5 or not att.uncompressed_md5:
        return None
    stored = attachment_stored_bytes(att)
    if hashlib.md5(stored).hexdigest() != att.compressed_md5:
        return False
    if att.compression == COMPRESSION_NONE:
        return True
    try:
        return hashlib.md5(uncompress(stored)).hexdigest() == att.uncompressed_md5
    except (ValueError, zlib.error):  # a corrupted stream is a failed verification, not a crash
        return False


# Writes -----------------------------------------------------------------------------------------------

def _stage(data: bytes, *, compressed: bool, store_md5: bool) -> dict:
    """Write a new file to the staging area; returns the Attachment fields that describe it."""
    stored = compress(data) if compressed else data
    uuid = str(uuidlib.uuid4())
    dicom_storage().stage(uuid, stored)
    md5 = hashlib.md5(data).hexdigest() if store_md5 else ""
    stored_md5 = (hashlib.md5(stored).hexdigest() if compressed else md5) if store_md5 else ""
    return {"uuid": uuid, "compressed_size": len(stored), "uncompressed_size": len(data),
            "compression": COMPRESSION_ZLIB if compressed else COMPRESSION_NONE,
            "compressed_md5": stored_md5, "uncompressed_md5": md5}


def _store(*, public_id: str, number: int, data: bytes, compressed: bool,
           expected: tuple[int, str] | None, only_existing: bool = False) -> Attachment:
    """Stage the file, point the index at it (revision 0, or +1 over a replaced one), publish it, then
    remove the replaced file. Nothing is left behind when the index refuses the change."""
    fields = _stage(data, compressed=compressed, store_md5=archive_settings().store_md5)
    storage = dicom_storage()
    old_uuid = None
    try:
        with transaction.atomic():
            resource = resource_get_any_level(public_id=public_id)
            row, created = revisioned_row(Attachment, lookup={"resource": resource, "content_type": number},
                                          create=None if only_existing else fields)
            if row is None:
                raise UnknownResource()
            change = Totals(disk_size=fields["compressed_size"], uncompressed_size=fields["uncompressed_size"])
            if not created:
                if expected is not None and expected != (row.revision, row.uncompressed_md5):
                    raise RevisionMismatch()
                old_uuid = row.uuid
                change -= Totals(disk_size=row.compressed_size, uncompressed_size=row.uncompressed_size)
                for key, value in fields.items():
                    setattr(row, key, value)
                row.revision += 1
                row.save()
            _log(resource, number)
            statistics_add(change)  # last, see statistics_add
    except BaseException:
        storage.discard(fields["uuid"])
        raise
    storage.publish(fields["uuid"])
    if old_uuid:
        storage.retire(old_uuid)
    return row


def attachment_put(*, public_id: str, name: str, data: bytes, if_match: str | None) -> Attachment:
    """Create or replace a user attachment (compressed if StorageCompression) and log UpdatedAttachment.

    Revisions work as for metadata: a new attachment starts at 0, a replaced one adds 1 and, with If-Match
    (or CheckRevisions), must match the revision and uncompressed MD5 named, else RevisionMismatch (409).
    Orthanc answers 200 even for an unknown resource (with a meaningless ETag); this answers 404."""
    number = content_type_number(name)
    if not content_type_is_user(number):
        raise SystemAttachmentReadOnly()
    return _store(public_id=public_id, number=number, data=data,
                  compressed=archive_settings().storage_compression, expected=revision_expected(if_match))


def attachment_set_compression(*, public_id: str, name: str, compressed: bool) -> None:
    """Rewrite an attachment zlib-compressed or plain (POST .../compress, .../uncompress); a no-op when it
    already is. The new file gets a new UUID and the revision adds 1. UnknownResource when absent."""
    att = attachment_get(public_id=public_id, name=name)
    if (att.compression == COMPRESSION_ZLIB) == compressed:
        return
    _store(public_id=public_id, number=att.content_type, data=attachment_data(att), compressed=compressed,
           expected=(att.revision, att.uncompressed_md5), only_existing=True)


def attachment_delete(*, public_id: str, name: str, if_match: str | None) -> None:
    """Delete a user attachment (or ``dicom-as-json`` with StoreDicom) and log UpdatedAttachment; its file
    goes once the index no longer points to it. UnknownResource when absent; with CheckRevisions, If-Match
    is mandatory. The DICOM file of an instance cannot be deleted (bare 403): delete the instance."""
    number = content_type_number(name)
    allowed = content_type_is_user(number) or (
        number == ContentType.DicomAsJson and bool(settings.ORTHANC.get("StoreDicom", True)))
    if not allowed:
        raise SystemAttachmentReadOnly()
    expected = revision_expected(if_match, required=True)
    with transaction.atomic():
        resource = resource_get_any_level(public_id=public_id)
        row = Attachment.objects.select_for_update().filter(resource=resource, content_type=number).first()
        if row is None:
            raise UnknownResource()
        if expected is not None and expected != (row.revision, row.uncompressed_md5):
            raise RevisionMismatch()
        uuid = row.uuid
        row.delete()
        _log(resource, number)
        statistics_add(-Totals(disk_size=row.compressed_size, uncompressed_size=row.uncompressed_size))
    dicom_storage().remove(uuid)


def dicom_as_json_invalidate() -> int:
    """POST /tools/invalidate-tags: remove every DICOM-as-JSON attachment, so that the summaries are made
    again from the files, as Orthanc does (no change is logged: Orthanc logs those of user attachments only).
    This server never caches tags in such attachments: only those a client put are there, often none.
    Returns how many went."""
    with transaction.atomic():
        rows = list(Attachment.objects.filter(content_type=ContentType.DicomAsJson)
                    .values_list("id", "uuid", "compressed_size", "uncompressed_size"))
        if rows:
            Attachment.objects.filter(id__in=[r[0] for r in rows]).delete()
            statistics_add(-Totals(disk_size=sum(r[2] for r in rows), uncompressed_size=sum(r[3] for r in rows)))
    for _id, uuid, _size, _usize in rows:
        dicom_storage().remove(uuid)
    return len(rows)
