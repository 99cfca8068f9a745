"""Labels on resources (Orthanc 1.12.0)."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from archive.errors import ParameterOutOfRange, UnknownResource
from archive.models import Label, Resource

_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def label_validate(name: str) -> str:
    """Orthanc's rule: 1 to 64 characters among letters, digits, '_' and '-'."""
    if not _LABEL.match(name):
        raise ParameterOutOfRange(f"A label must be 1 to 64 letters, digits, '_' or '-': {name!r}")
    return name


def labels_get(*, resource: Resource) -> list[str]:
    return list(Label.objects.filter(resource=resource).order_by("name").values_list("name", flat=True))


def label_add(*, resource: Resource, name: str) -> None:
    """Add a label; idempotent."""
    label_validate(name)
    try:
        with transaction.atomic():
            Label.objects.get_or_create(resource=resource, name=name)
    except IntegrityError:
        pass  # added concurrently by another request


def label_remove(*, resource: Resource, name: str) -> None:
    """Remove a label; idempotent."""
    label_validate(name)
    Label.objects.filter(resource=resource, name=name).delete()


def label_test(*, resource: Resource, name: str) -> None:
    """Raise UnknownResource unless the resource carries the label."""
    label_validate(name)
    if not Label.objects.filter(resource=resource, name=name).exists():
        raise UnknownResource(f"The resource has no label {name}")


def labels_all() -> list[str]:
    """Every label in use, sorted (GET /tools/labels)."""
    return list(Label.objects.order_by("name").values_list("name", flat=True).distinct())
