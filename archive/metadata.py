"""Metadata of resources: system metadata written by the archive, user metadata (1024-65535) by clients,
with revisions for optimistic concurrency (ETag / If-Match) as Orthanc 1.9.2+."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from archive.errors import ParameterOutOfRange, RevisionMismatch, UnknownResource
from archive.models import Change, ChangeType, Metadata, MetadataType, Resource
from archive.selectors import metadata_of
from archive.settings import archive_settings
from archive.timeutil import iso, utcnow

USER_FIRST, USER_LAST = 1024, 65535


def _user_metadata() -> dict[str, int]:
    return {str(k): int(v) for k, v in (settings.ORTHANC.get("UserMetadata") or {}).items()}


def metadata_number(name: str) -> int:
    """A metadata name (system, UserMetadata, or a number) -> its number; ParameterOutOfRange otherwise."""
    if name in MetadataType.__members__:
        return int(MetadataType[name])
    user = _user_metadata()
    if name in user:
        return user[name]
    if name.isdigit() and 0 < int(name) <= USER_LAST:
        return int(name)
    raise ParameterOutOfRange(f"Unknown metadata: {name}")


def metadata_name(number: int) -> str:
    try:
        return MetadataType(number).name
    except ValueError:
        pass
    for name, value in _user_metadata().items():
        if value == number:
            return name
    return str(number)


def metadata_list(*, resource: Resource, numeric: bool = False) -> dict[str, str]:
    """The metadata of a resource, name (or number) -> value, in Orthanc's order (by number)."""
    return {(str(n) if numeric else metadata_name(n)): value for n, (value, _rev) in metadata_of(resource=resource).items()}


def metadata_get(*, resource: Resource, name: str) -> tuple[str, int]:
    """(value, revision) of one metadata, or UnknownResource."""
    number = metadata_number(name)
    found = metadata_of(resource=resource).get(number)
    if found is None:
        raise UnknownResource(f"No metadata {name} on this resource")
    return found


def parse_revision(header: str | None) -> int | None:
    if header is None or header == "":
        return None
    try:
        return int(header.strip().strip('"'))
    except ValueError:
        raise ParameterOutOfRange(f"Bad revision: {header}") from None


def _check_user(number: int, name: str) -> None:
    if not USER_FIRST <= number <= USER_LAST:
        raise ParameterOutOfRange(f"Only user-defined metadata can be modified: {name}")


def _log(resource: Resource) -> None:
    Change.objects.create(change_type=ChangeType.UpdatedMetadata, level=resource.level,
                          public_id=resource.public_id, date=iso(utcnow()))


def metadata_set(*, resource: Resource, name: str, value: str, if_match: int | None) -> int:
    """Set a user metadata; returns its new revision. With CheckRevisions, a change needs the current
    revision in If-Match (409 otherwise)."""
    number = metadata_number(name)
    _check_user(number, name)
    with transaction.atomic():
        row = Metadata.objects.select_for_update().filter(resource=resource, type=number).first()
        if row is None:
            Metadata.objects.create(resource=resource, type=number, value=value, revision=0)
            revision = 0
        else:
            if archive_settings().check_revisions and (if_match is None or if_match != row.revision):
                raise RevisionMismatch()
            row.value, row.revision = value, row.revision + 1
            row.save(update_fields=["value", "revision"])
            revision = row.revision
        _log(resource)
    return revision


def metadata_delete(*, resource: Resource, name: str, if_match: int | None) -> None:
    """Delete a user metadata (404 if absent; with CheckRevisions, If-Match is mandatory)."""
    number = metadata_number(name)
    _check_user(number, name)
    with transaction.atomic():
        row = Metadata.objects.select_for_update().filter(resource=resource, type=number).first()
        if row is None:
            raise UnknownResource(f"No metadata {name} on this resource")
        if archive_settings().check_revisions and (if_match is None or if_match != row.revision):
            raise RevisionMismatch()
        row.delete()
        _log(resource)
