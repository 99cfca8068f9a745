"""Metadata of resources, as Orthanc 1.12.11 keeps them.

System metadata (numbers below 1024, ``MetadataType``) are written by the archive; clients write user
metadata (1024-65535, named by the ``UserMetadata`` option or given as numbers). Each value has a revision
for optimistic concurrency (Orthanc 1.9.2; stored by the SQLite index since 1.12.8): the ETag of a value is
``"<revision>-<MD5 of the value>"`` and ``If-Match`` must repeat both parts.

Orthanc's order of checks is kept, because clients see which error comes first: the metadata name, then
whether it may be written, then the ``If-Match`` header, then the resource, then the revision. Writes find
the resource by its identifier whatever the level in the URI, as Orthanc's ``SetMetadata``/``DeleteMetadata``
do; reads check the level.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model

from archive.errors import (
    ForbiddenAccess,
    InexistentItem,
    ParameterOutOfRange,
    RevisionMismatch,
    UnknownResource,
)
from archive.levels import Level
from archive.models import Change, ChangeType, Metadata, MetadataType, Resource
from archive.selectors import metadata_of, resource_get, resource_get_any_level
from archive.settings import archive_settings
from archive.timeutil import iso, utcnow

USER_FIRST, USER_LAST = 1024, 65535
_INT = re.compile(r"[+-]?[0-9]+")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = 2**63 - 1
MISSING_IF_MATCH = 'HTTP header "If-Match" is missing, as "CheckRevisions" is "true"'


class SystemMetadataReadOnly(ForbiddenAccess):
    """Only user metadata (1024-65535) can be written over REST. Orthanc answers a bare 403, without the
    JSON error body, so ``bare`` tells the REST adapter to send the status alone."""

    bare = True


# Orthanc keeps a metadata value as any bytes; the index holds text, and PostgreSQL text cannot hold NUL. A
# value that is not UTF-8 or holds a NUL (a client's binary metadata) is kept as base64 behind this prefix,
# which begins with a Unicode noncharacter no client text carries: a UTF-8 value that does begin with it is
# kept the same way, so that the stored text always gives back the bytes that were put.
_BYTES_PREFIX = "\uffffbase64:"


def metadata_text(data: bytes) -> str:
    """The stored text of a metadata value put as ``data``."""
    try:
        text = data.decode("utf-8")
        if "\x00" not in text and not text.startswith(_BYTES_PREFIX):
            return text
    except UnicodeDecodeError:
        pass
    return _BYTES_PREFIX + base64.b64encode(data).decode("ascii")


def metadata_bytes(text: str) -> bytes:
    """The bytes of a stored metadata value, as they were put."""
    if text.startswith(_BYTES_PREFIX):
        return base64.b64decode(text[len(_BYTES_PREFIX):])
    return text.encode("utf-8")


def metadata_display(text: str) -> str:
    """A stored value in a JSON answer: its bytes read as UTF-8 (what cannot be read is replaced)."""
    return metadata_bytes(text).decode("utf-8", "replace") if text.startswith(_BYTES_PREFIX) else text


@dataclass(frozen=True)
class MetadataValue:
    value: str        # as stored (metadata_text)
    revision: int

    @property
    def data(self) -> bytes:
        return metadata_bytes(self.value)

    @property
    def etag(self) -> str:
        return etag_of(self.revision, self.data)

    def matches(self, if_none_match: str | None) -> bool:
        """Whether If-None-Match names this very revision and value (Orthanc then answers 304)."""
        if if_none_match is None:
            return False
        return etag_parse(if_none_match, header="If-None-Match") == (self.revision, _md5(self.value))


def etag_of(revision: int, content: bytes | None = None, *, md5: str | None = None) -> str:
    """Orthanc's ETag of a revisioned value: ``"<revision>-<md5>"`` (quotes included)."""
    digest = md5 if md5 is not None else hashlib.md5(content or b"").hexdigest()
    return f'"{revision}-{digest}"'


def etag_parse(value: str, *, header: str) -> tuple[int, str]:
    """An If-Match/If-None-Match value -> (revision, md5), as Orthanc's GetRevisionHeader reads it.

    Spaces and surrounding quotes are dropped; the revision is what precedes the first ``-``. Anything
    else is ParameterOutOfRange, with Orthanc's message (which names the header as the caller spells it).
    """
    text = value.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    dash = text.find("-")
    if dash >= 0:
        revision = text[:dash]
        if re.fullmatch(r"\+?[0-9]+", revision) and int(revision) <= _INT64:
            return int(revision), text[dash + 1:]
    raise ParameterOutOfRange(f'The "{header}" HTTP header should contain the ETag (revision followed by '
                              f"MD5 hash), but found: {text}")


def _user_metadata() -> dict[str, int]:
    out = {}
    for name, number in (settings.ORTHANC.get("UserMetadata") or {}).items():
        try:
            out[str(name)] = int(number)
        except (TypeError, ValueError):
            continue
    return out


def metadata_number(name: str) -> int:
    """A metadata name -> its number, as Orthanc's StringToMetadata: an integer is taken as is (even one
    no dictionary knows), else a system or ``UserMetadata`` name; anything else is InexistentItem (404)."""
    if _INT.fullmatch(name) and _INT32[0] <= int(name) <= _INT32[1]:
        return int(name)
    if name in MetadataType.__members__:
        return int(MetadataType[name])
    user = _user_metadata()
    if name in user:
        return user[name]
    raise InexistentItem()


def metadata_name(number: int) -> str:
    """A metadata number -> the name Orthanc shows (system, then UserMetadata, else the number)."""
    try:
        return MetadataType(number).name
    except ValueError:
        pass
    for name, value in _user_metadata().items():
        if value == number:
            return name
    return str(number)


def metadata_is_user(number: int) -> bool:
    return USER_FIRST <= number <= USER_LAST


def revision_expected(if_match: str | None, *, required: bool = False) -> tuple[int, str] | None:
    """The (revision, md5) that a write or delete of a revisioned value (metadata, attachment) must find,
    or None when it may go blindly. Without If-Match but with CheckRevisions, a delete (``required``) is
    RevisionMismatch with Orthanc's message; a write gets a dummy expectation that only an absent value
    satisfies (the first write needs no If-Match, as in Orthanc)."""
    if if_match is not None:
        return etag_parse(if_match, header="if-match")
    if archive_settings().check_revisions:
        if required:
            raise RevisionMismatch(MISSING_IF_MATCH)
        return (-1, "")
    return None


def _log(resource: Resource) -> None:
    Change.objects.create(change_type=ChangeType.UpdatedMetadata, level=resource.level,
                          public_id=resource.public_id, date=iso(utcnow()))


def metadata_list(*, level: Level, public_id: str, numeric: bool = False,
                  expand: bool = False) -> list[str] | list[int] | dict[str, str]:
    """The metadata of a resource in Orthanc's answer shape: names (numbers with ``numeric``) in number
    order, or with ``expand`` an object name -> value whose keys come sorted, as Orthanc's JSON writer
    sorts them. UnknownResource if the resource is not at that level."""
    resource = resource_get(level=level, public_id=public_id)
    found = metadata_of(resource=resource)
    if expand:
        pairs = {(str(n) if numeric else metadata_name(n)): metadata_display(value)
                 for n, (value, _rev) in found.items()}
        return dict(sorted(pairs.items()))  # code point order is UTF-8 byte order
    if numeric:
        return list(found)
    return [metadata_name(n) for n in found]


def metadata_get(*, level: Level, public_id: str, name: str) -> MetadataValue | None:
    """One metadata value with its revision, or None when the resource does not carry it (Orthanc then
    answers a bare 404). InexistentItem for an unknown name, UnknownResource for a resource not at that
    level."""
    number = metadata_number(name)
    resource = resource_get(level=level, public_id=public_id)
    found = metadata_of(resource=resource).get(number)
    if found is None:
        return None
    return MetadataValue(value=found[0], revision=found[1])


def metadata_set(*, public_id: str, name: str, value: str, if_match: str | None) -> MetadataValue:
    """Set a user metadata and log UpdatedMetadata; returns the stored value and its new revision.

    A first write starts at revision 0 and ignores If-Match; a later one adds 1, and with If-Match (or
    CheckRevisions) must find the revision and MD5 it names, else RevisionMismatch (409)."""
    number = metadata_number(name)
    if not metadata_is_user(number):
        raise SystemMetadataReadOnly()
    expected = revision_expected(if_match)
    with transaction.atomic():
        resource = resource_get_any_level(public_id=public_id)
        row, created = revisioned_row(Metadata, lookup={"resource": resource, "type": number},
                                      create={"value": value})
        if not created:
            if expected is not None and expected != (row.revision, _md5(row.value)):
                raise RevisionMismatch()
            row.value, row.revision = value, row.revision + 1
            row.save(update_fields=["value", "revision"])
        _log(resource)
    return MetadataValue(value=row.value, revision=row.revision)


def revisioned_row(model: type[Model], *, lookup: dict, create: dict | None) -> tuple[Model | None, bool]:
    """The row of a revisioned value (Metadata, Attachment) locked for update, and whether it is new: with
    ``create``, an absent row is created at revision 0 from ``lookup`` and ``create``; without, it is None.
    Two first writes may race: the loser of the unique constraint then gets the winner's row, as if it
    had come second. A resource deleted meanwhile fails the foreign key instead: UnknownResource."""
    row = model.objects.select_for_update().filter(**lookup).first()
    if row is not None or create is None:
        return row, False
    try:
        with transaction.atomic():
            return model.objects.create(**lookup, **create, revision=0), True
    except IntegrityError:
        row = model.objects.select_for_update().filter(**lookup).first()
        if row is None:
            raise UnknownResource() from None
        return row, False


def metadata_delete(*, public_id: str, name: str, if_match: str | None) -> None:
    """Delete a user metadata and log UpdatedMetadata. UnknownResource when it is absent; with
    CheckRevisions, If-Match is mandatory (RevisionMismatch with Orthanc's message otherwise)."""
    number = metadata_number(name)
    if not metadata_is_user(number):
        raise SystemMetadataReadOnly()
    expected = revision_expected(if_match, required=True)
    with transaction.atomic():
        resource = resource_get_any_level(public_id=public_id)
        row = Metadata.objects.select_for_update().filter(resource=resource, type=number).first()
        if row is None:
            raise UnknownResource()
        if expected is not None and expected != (row.revision, _md5(row.value)):
            raise RevisionMismatch()
        row.delete()
        _log(resource)


def _md5(value: str) -> str:
    return hashlib.md5(metadata_bytes(value)).hexdigest()
