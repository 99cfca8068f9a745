"""Values of "requested tags": from the index when the tag is a main tag of the resource or an ancestor,
computed for the C-FIND counters, and read from a stored file otherwise (as Orthanc does)."""

from __future__ import annotations

from typing import Any

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.tag import BaseTag

from archive.levels import Level
from archive.models import Resource
from archive.selectors import instance_dicom, instance_first

LEVELS = list(Level)


def _key(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"{tag.group:04x},{tag.element:04x}"


def _computed(resource: Resource, keyword: str) -> Any:
    """Orthanc's computed tags (PS3.4 C.3.4 additional query keys)."""
    level = LEVELS[resource.level]
    descendants = {
        "NumberOfPatientRelatedStudies": (Level.PATIENT, Level.STUDY),
        "NumberOfPatientRelatedSeries": (Level.PATIENT, Level.SERIES),
        "NumberOfPatientRelatedInstances": (Level.PATIENT, Level.INSTANCE),
        "NumberOfStudyRelatedSeries": (Level.STUDY, Level.SERIES),
        "NumberOfStudyRelatedInstances": (Level.STUDY, Level.INSTANCE),
        "NumberOfSeriesRelatedInstances": (Level.SERIES, Level.INSTANCE),
    }
    if keyword in descendants:
        at, below = descendants[keyword]
        if level is not at:
            return None
        qs = Resource.objects.filter(id=resource.id)
        for _ in range(at.depth, below.depth):
            qs = Resource.objects.filter(parent__in=qs.values("id"))
        return str(qs.count())
    if keyword == "ModalitiesInStudy" and level is Level.STUDY:
        modalities = sorted({s.get("Modality", "") for s in Resource.objects.filter(parent_id=resource.id)
                             .values_list("main_tags", flat=True)} - {""})
        return "\\".join(modalities)
    if keyword == "SOPClassesInStudy" and level is Level.STUDY:
        from archive.models import Metadata, MetadataType
        series = Resource.objects.filter(parent_id=resource.id).values("id")
        instances = Resource.objects.filter(parent__in=series).values("id")
        classes = sorted(set(Metadata.objects.filter(resource__in=instances, type=MetadataType.SopClassUid)
                             .values_list("value", flat=True)))
        return "\\".join(classes)
    return None


_COMPUTED = {"NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
             "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances",
             "ModalitiesInStudy", "SOPClassesInStudy"}


def requested_values(resource: Resource, tags: list[BaseTag]) -> dict[str, Any]:
    """Requested tag values of one resource, keyed by keyword (or gggg,eeee for unknown tags)."""
    out: dict[str, Any] = {}
    missing: list[BaseTag] = []
    chain = [resource]
    while chain[-1].parent_id is not None:
        parent = chain[-1].parent if chain[-1].parent_id == getattr(chain[-1].parent, "id", None) else None
        if parent is None:
            parent = Resource.objects.get(id=chain[-1].parent_id)
        chain.append(parent)
    for tag in tags:
        key = _key(tag)
        if key in _COMPUTED:
            value = _computed(resource, key)
            if value is not None:
                out[key] = value
            continue
        for r in chain:
            if key in r.main_tags:
                out[key] = r.main_tags[key]
                break
        else:
            missing.append(tag)
    if missing:
        from archive.dicom.json import dataset_to_json

        try:
            ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(instance_dicom(instance=instance_first(
                resource=resource))), stop_before_pixels=True)
        except Exception:
            ds = None
        if ds is not None:
            values = dataset_to_json(ds, fmt="simplify")
            for tag in missing:
                key = _key(tag)
                if key in values:
                    out[key] = values[key]
    return out
