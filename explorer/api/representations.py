"""Orthanc-shaped dicts for resources, built from selector results without further queries per row."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

from archive.dicom.json import convert_full
from archive.dicom.tags import MAIN_DICOM_TAGS
from archive.levels import Level
from archive.models import Resource
from archive.selectors import Details, series_status_from
from archive.settings import archive_settings
from archive.timeutil import iso

LEVELS = list(Level)
_CHILDREN_KEY = {Level.PATIENT: "Studies", Level.STUDY: "Series", Level.SERIES: "Instances"}
_PARENT_KEY = {Level.STUDY: "ParentPatient", Level.SERIES: "ParentStudy", Level.INSTANCE: "ParentSeries"}


def level_keywords(level: Level) -> tuple[str, ...]:
    """Keywords of the main DICOM tags of a level, ExtraMainDicomTags included."""
    return _level_keywords(level, archive_settings().extra_main_tags(level))


@cache  # keyed on the extra tags too, so a change of the options (tests) is never answered from the cache
def _level_keywords(level: Level, extra: tuple) -> tuple[str, ...]:
    tags = list(MAIN_DICOM_TAGS[level]) + list(extra)
    return tuple(keyword_for_tag(t) or f"{t.group:04x},{t.element:04x}" for t in tags)


@cache
def _hex_key(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    tag = Tag(tag)
    return f"{tag.group:04x},{tag.element:04x}"


def format_tags(values: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Keyword -> value dicts in Orthanc's three formats (simplify: keywords; short: hex; full: objects)."""
    if fmt == "simplify":
        return dict(values)
    if fmt == "short":
        return {_hex_key(k): v for k, v in values.items()}
    out = {}
    for keyword, value in values.items():
        kind = "Sequence" if isinstance(value, list) else ("Null" if value is None else "String")
        out[_hex_key(keyword)] = {"Name": keyword, "Type": kind, "Value": value}
    return out


def main_tags_of(resource: Resource, level: Level) -> dict[str, Any]:
    tags = resource.main_tags
    return {k: tags[k] for k in level_keywords(level) if k in tags}


def resource_json(resource: Resource, details: Details, *, fmt: str = "simplify",
                  requested: dict[str, Any] | None = None) -> dict[str, Any]:
    """Orthanc's legacy expanded description of a resource."""
    level = LEVELS[resource.level]
    out: dict[str, Any] = {"ID": resource.public_id, "Type": level.value}
    out["MainDicomTags"] = format_tags(main_tags_of(resource, level), fmt)
    if resource.id in details.sequences:   # main tags that are sequences (1.11.1), e.g. RequestAttributesSequence
        out["MainDicomTags"].update(convert_full(details.sequences[resource.id], fmt))
    if level is Level.STUDY:
        out["PatientMainDicomTags"] = format_tags(main_tags_of(resource, Level.PATIENT), fmt)
    if level in _PARENT_KEY:
        out[_PARENT_KEY[level]] = resource.parent.public_id
    if level in _CHILDREN_KEY:
        out[_CHILDREN_KEY[level]] = list(details.children.get(resource.id, []))
        out["IsStable"] = resource.is_stable
        out["LastUpdate"] = iso(resource.last_update)
    if level is Level.SERIES:
        expected = details.expected.get(resource.id)
        status = series_status_from(details.indexes.get(resource.id, []), expected)
        # Orthanc 1.12.5 derives both fields from one status computation: no count once it is Unknown.
        out["ExpectedNumberOfInstances"] = None if status == "Unknown" else expected
        out["Status"] = status
    if level is Level.INSTANCE:
        size, uuid = details.files.get(resource.id, (0, ""))
        out["FileSize"] = size
        out["FileUuid"] = uuid
        out["IndexInSeries"] = _index_in_series(resource.index_in_series)
    out["Labels"] = list(details.labels.get(resource.id, []))
    out.update(details.sources.get(resource.id, {}))  # "ModifiedFrom" / "AnonymizedFrom" of a copy
    if requested is not None:
        out["RequestedTags"] = format_tags(requested, fmt)
    return out


def _index_in_series(index: int | None) -> int | None:
    """Orthanc shows IndexInSeries only when it parses as an unsigned 32-bit integer, else null (absent,
    not an integer, or negative)."""
    return index if index is not None and 0 <= index <= 0xFFFFFFFF else None


def tag_vr(keyword: str) -> str:
    try:
        return dictionary_VR(tag_for_keyword(keyword))
    except (KeyError, TypeError):
        return "UN"
