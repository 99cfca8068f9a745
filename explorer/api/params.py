"""Orthanc's GET arguments: presence flags, expand, since/limit, tag format, requested tags."""

from __future__ import annotations

from django.http import HttpRequest

from archive.dicom.tags import parse_tag
from archive.errors import ParameterOutOfRange


def flag(request: HttpRequest, name: str) -> bool:
    """Orthanc's boolean arguments: present and not 'false' (1.12: expand=true/false)."""
    if name not in request.GET:
        return False
    return request.GET.get(name, "").lower() not in ("false", "0")


def tag_format(request: HttpRequest, default: str = "full") -> str:
    for name in ("simplify", "short", "full"):
        if name in request.GET:
            return name
    return default


def non_negative_int(request: HttpRequest, name: str, default: int = 0) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParameterOutOfRange(f"Argument \"{name}\" must be a non-negative integer: {raw}") from None
    if value < 0:
        raise ParameterOutOfRange(f"Argument \"{name}\" must be a non-negative integer: {raw}")
    return value


def requested_tags(request: HttpRequest) -> list | None:
    """The ``requested-tags`` argument (or ``requestedTags`` of Orthanc <= 1.12.3), as tags."""
    raw = request.GET.get("requested-tags", request.GET.get("requestedTags"))
    if raw is None:
        return None
    from archive.errors import BadRequest

    tags = []
    for item in raw.split(";"):
        item = item.strip()
        if not item:
            continue
        try:
            tags.append(parse_tag(item))
        except ValueError:
            raise BadRequest(f"Unknown DICOM tag: {item}") from None
    return tags
