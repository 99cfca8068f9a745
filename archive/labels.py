"""Labels on resources (Orthanc 1.12.0): free names, 1 to 64 of ``[A-Za-z0-9_-]``, at every level.

Adding and removing are idempotent and log no change, as in Orthanc. A label is checked before the
resource is looked up, so a bad label on an unknown resource is a 400, as Orthanc answers it.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from archive.errors import ParameterOutOfRange, UnknownResource
from archive.levels import Level
from archive.models import Label, Resource
from archive.selectors import resource_get

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")


def label_validate(name: str) -> str:
    """Orthanc's rule (ServerToolbox::CheckValidLabel): non-empty, at most 64 characters, ASCII letters,
    digits, ``_`` and ``-``; ParameterOutOfRange with Orthanc's message otherwise."""
    if not _LABEL.fullmatch(name):
        raise ParameterOutOfRange("A label must be a non-empty, alphanumeric string, possibly with '_' or "
                                  f"'-' characters, with maximum 64 characters, but got: {name}")
    return name


def labels_get(*, level: Level, public_id: str) -> list[str]:
    """The labels of a resource, sorted. UnknownResource if it is not at that level."""
    resource = resource_get(level=level, public_id=public_id)
    return sorted(Label.objects.filter(resource=resource).values_list("name", flat=True))


def label_test(*, level: Level, public_id: str, name: str) -> bool:
    """Whether the resource carries the label (any text: Orthanc does not validate when testing)."""
    resource = resource_get(level=level, public_id=public_id)
    return Label.objects.filter(resource=resource, name=name).exists()


def label_add(*, level: Level, public_id: str, name: str) -> None:
    """Add a label; idempotent. ParameterOutOfRange for an invalid label, then UnknownResource."""
    label_validate(name)
    resource = resource_get(level=level, public_id=public_id)
    try:
        with transaction.atomic():
            Label.objects.get_or_create(resource=resource, name=name)
    except IntegrityError:
        # Added concurrently by another request (the label is there, which is what was asked), or the
        # resource was deleted meanwhile (its foreign key failed): then it is unknown, as it would be now.
        if not Resource.objects.filter(id=resource.id).exists():
            raise UnknownResource() from None


def label_remove(*, level: Level, public_id: str, name: str) -> None:
    """Remove a label; idempotent. ParameterOutOfRange for an invalid label, then UnknownResource."""
    label_validate(name)
    resource = resource_get(level=level, public_id=public_id)
    Label.objects.filter(resource=resource, name=name).delete()


def labels_all() -> list[str]:
    """Every label in use, sorted and unique (GET /tools/labels). Sorted here, byte-wise as Orthanc's
    std::set, not by the database's collation (PostgreSQL's may ignore case)."""
    return sorted(Label.objects.values_list("name", flat=True).distinct())
