"""Values of "requested tags": from the index when the tag is a main tag of the resource or an ancestor up to
the study (which holds its copy of the patient's main tags), computed for the C-FIND counters, and read from a
stored file otherwise (as Orthanc does).

Lists ask for many resources at once: ``requested_values_many`` loads the ancestors and computes each
counter for the whole list in one query per level or tag (not per resource); only the tags that must be
read from a file cost one read per resource, as in Orthanc.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Count
from pydicom.datadict import keyword_for_tag
from pydicom.tag import BaseTag

from archive.levels import Level
from archive.models import MainDicomTag, Metadata, MetadataType, Resource
from archive.selectors import instance_dicom_header, instance_first

LEVELS = list(Level)
MODALITY = 0x00080060
_CHUNK = 900  # SQLite limits the number of bound parameters of one statement

# Orthanc's computed tags (PS3.4 C.3.4 additional query keys): keyword -> (level it applies to, level counted)
_COUNTERS = {
    "NumberOfPatientRelatedStudies": (Level.PATIENT, Level.STUDY),
    "NumberOfPatientRelatedSeries": (Level.PATIENT, Level.SERIES),
    "NumberOfPatientRelatedInstances": (Level.PATIENT, Level.INSTANCE),
    "NumberOfStudyRelatedSeries": (Level.STUDY, Level.SERIES),
    "NumberOfStudyRelatedInstances": (Level.STUDY, Level.INSTANCE),
    "NumberOfSeriesRelatedInstances": (Level.SERIES, Level.INSTANCE),
}
_COMPUTED = frozenset(_COUNTERS) | {"ModalitiesInStudy", "SOPClassesInStudy"}


def _key(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"{tag.group:04x},{tag.element:04x}"


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def _computed(keyword: str, resources: list[Resource]) -> dict[int, str]:
    """A computed tag for every resource it applies to, in one query per 900 resources."""
    out: dict[int, str] = {}
    if keyword in _COUNTERS:
        at, below = _COUNTERS[keyword]
        ids = [r.id for r in resources if r.level == at.depth]
        up = "parent__" * (below.depth - at.depth - 1) + "parent_id"  # descendant -> the ancestor counted for
        for chunk in _chunks(ids):
            out.update(Resource.objects.filter(**{f"{up}__in": chunk}).values(up).annotate(n=Count("id"))
                       .values_list(up, "n"))
        return {rid: str(out.get(rid, 0)) for rid in ids}
    studies = [r.id for r in resources if r.level == Level.STUDY.depth]
    # Down to the study's series (or instances) by the parent index, then their values by the (resource,
    # tag/type) unique index. Ids, not a join: joined, PostgreSQL hashes every Modality row of the archive.
    study_of = _children(studies)
    if keyword == "SOPClassesInStudy":
        series_study = study_of
        study_of = {rid: series_study[parent] for rid, parent in _children(list(series_study)).items()}
        table = Metadata.objects.filter(type=MetadataType.SopClassUid)
    else:
        table = MainDicomTag.objects.filter(tag=MODALITY)
    values: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(list(study_of)):
        for rid, value in table.filter(resource_id__in=chunk).values_list("resource_id", "value"):
            values[study_of[rid]].add(value)
    return {rid: "\\".join(sorted(values[rid] - {""})) for rid in studies}


def _children(parents: list[int]) -> dict[int, int]:
    """child id -> parent id for the children of ``parents``."""
    out: dict[int, int] = {}
    for chunk in _chunks(parents):
        out.update(Resource.objects.filter(parent_id__in=chunk).values_list("id", "parent_id"))
    return out


def _ancestors(resources: list[Resource]) -> dict[int, Resource]:
    """The ancestors of the resources up to their studies, by id: parents loaded by select_related are used as
    they are, the others are read in one query per level."""
    known: dict[int, Resource] = {}
    frontier = resources
    while frontier:
        following: list[Resource] = []
        missing: set[int] = set()
        for r in frontier:
            if r.parent_id is None or r.parent_id in known or r.level <= Level.STUDY.depth:
                continue
            if Resource.parent.is_cached(r):
                known[r.parent_id] = r.parent
                following.append(r.parent)
            else:
                missing.add(r.parent_id)
        for chunk in _chunks(sorted(missing)):
            for parent in Resource.objects.filter(id__in=chunk):
                known[parent.id] = parent
                following.append(parent)
        frontier = following
    return known


def requested_values_many(resources: Iterable[Resource], tags: list[BaseTag], *,
                          file_of: Callable[..., Resource] = instance_first) -> dict[int, dict[str, Any]]:
    """Requested tag values of many resources (resource id -> keyword, or gggg,eeee for unknown tags ->
    value), in a number of queries that does not grow with the list, besides one file read per resource
    for the tags that are neither main tags nor computed: the file of ``file_of(resource=...)``."""
    resources = list(resources)
    keys = [(tag, _key(tag)) for tag in tags]
    computed = {key: _computed(key, resources) for _tag, key in keys if key in _COMPUTED}
    ancestors = _ancestors(resources) if any(key not in _COMPUTED for _tag, key in keys) else {}
    answers: dict[int, dict[str, Any]] = {}
    for resource in resources:
        out: dict[str, Any] = {}
        missing: list[BaseTag] = []
        chain = [resource]
        # Up to the study: a study holds a copy of its patient's main tags, the ones its first instance had,
        # and Orthanc answers those (GetAllMainDicomTags reads instance, series and study; 1.12's
        # ResourceFinder asks for patient tags at the study level). The patient's own may come from another
        # instance: a study whose files lack PatientSex is answered without one, whatever the patient has.
        while chain[-1].parent_id is not None and chain[-1].level > Level.STUDY.depth \
                and chain[-1].parent_id in ancestors:
            chain.append(ancestors[chain[-1].parent_id])
        for tag, key in keys:
            if key in _COMPUTED:
                if resource.id in computed[key]:
                    out[key] = computed[key][resource.id]
                continue
            for r in chain:
                if key in r.main_tags:
                    out[key] = r.main_tags[key]
                    break
            else:
                missing.append(tag)
        if missing:
            out.update(_from_file(resource, missing, file_of))
        answers[resource.id] = out
    return answers


def _from_file(resource: Resource, tags: list[BaseTag], file_of: Callable[..., Resource]) -> dict[str, Any]:
    from archive.dicom.json import dataset_to_json, read_for_json

    try:
        # forced: a file stored without preamble and file meta (a raw dataset, as Orthanc accepts) reads too
        ds = read_for_json(instance_dicom_header(instance=file_of(resource=resource)), header_only=True)
    except Exception:
        return {}
    values = dataset_to_json(ds, fmt="simplify")
    out = {key: values[key] for key in map(_key, tags) if key in values}
    # Private tags (and private creators) bear their private dictionary's name in the simplified format;
    # asked for by number ("0009,1001"), they are found by number in the full format. A public tag missing
    # from the simplified format is missing from the file: no second conversion for it.
    numbered = [key for key in map(_key, tags) if key not in out and "," in key]
    if numbered:
        full = dataset_to_json(ds, fmt="full")
        for key in numbered:
            item = full.get(key)
            if isinstance(item, dict) and item.get("Type") == "String":
                out[key] = item["Value"]
    return out


def requested_values(resource: Resource, tags: list[BaseTag]) -> dict[str, Any]:
    """Requested tag values of one resource, keyed by keyword (or gggg,eeee for unknown tags)."""
    return requested_values_many([resource], tags)[resource.id]
