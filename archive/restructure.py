"""Merging and splitting studies as Orthanc's /studies/{id}/merge and /split do (MergeStudyJob, SplitStudyJob),
checked live against Orthanc 1.10.1:

- merge: the instances of the given studies, series or instances get the target study's StudyInstanceUID and
  the tags of its Patient and General Study modules (PS3.3 2011 Tables C.7-1 and C.7-3, read from one
  instance of the target; module tags the target lacks are removed), a new SeriesInstanceUID per source series
  and a new SOPInstanceUID.
- split: the given series or instances go to a new study (a new StudyInstanceUID), with a new SeriesInstanceUID
  per source series and new SOPInstanceUIDs; Replace and Remove may only touch the two modules.

No ModifiedFrom metadata is written, as in Orthanc.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset

from archive import selectors
from archive.dicom.json import MODULE_TAGS
from archive.dicom.tags import parse_tag
from archive.errors import BadFileFormat, ParameterOutOfRange, UnknownDicomTag, UnknownResource
from archive.levels import Level
from archive.models import Resource

STUDY_UID, SERIES_UID, SOP_UID = 0x0020000D, 0x0020000E, 0x00080018
MODULE_TAG_NUMBERS: frozenset[int] = frozenset(
    int(t.replace(",", ""), 16) for level in (Level.PATIENT, Level.STUDY) for t in MODULE_TAGS[level])
# Split may touch the two modules except the identifiers it sets itself.
SPLIT_ALLOWED = MODULE_TAG_NUMBERS - {STUDY_UID, SERIES_UID}


@dataclass
class Restructure:
    """What is done to every instance of a merge or split; JSON-able through ``as_dict`` so a job can resume."""

    study_uid: str
    replace: dict[int, str] = field(default_factory=dict)
    remove: set[int] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {"StudyUID": self.study_uid, "Replace": {f"{t:08x}": v for t, v in self.replace.items()},
                "Remove": [f"{t:08x}" for t in sorted(self.remove)]}

    @classmethod
    def from_dict(cls, d: dict) -> Restructure:
        return cls(study_uid=d["StudyUID"], replace={int(t, 16): v for t, v in d["Replace"].items()},
                   remove={int(t, 16) for t in d["Remove"]})


def _tag_name(tag: int) -> str:
    return f"{keyword_for_tag(tag) or ''} ({tag >> 16:04x},{tag & 0xFFFF:04x})"


def _tag(text: str) -> int:
    try:
        return int(parse_tag(text))
    except ValueError:
        raise UnknownDicomTag(f"Unknown DICOM tag: {text}") from None


def string_list(body: dict, name: str, *, required: bool = False) -> list[str]:
    if name not in body and not required:
        return []
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadFileFormat(f"List of strings expected in field: {name}")
    return value


def split_parse(body: dict, *, study_uid: str) -> Restructure:
    """Replace and Remove of a split request (only Patient and General Study module tags)."""
    replace = body.get("Replace", {})
    if not isinstance(replace, dict) or not all(isinstance(v, str) for v in replace.values()):
        raise BadFileFormat("Replace must be an object of strings")
    plan = Restructure(study_uid=study_uid, replace={_tag(k): v for k, v in replace.items()},
                       remove={_tag(t) for t in string_list(body, "Remove")})
    for tag in [*plan.replace, *sorted(plan.remove)]:
        if tag not in SPLIT_ALLOWED:
            raise ParameterOutOfRange("Cannot modify the following tag while splitting a study (not in the "
                                      f"patient/study modules): {_tag_name(tag)}")
    return plan


def merge_plan(*, target: Resource) -> Restructure:
    """The target study's module tags, read from one of its instances: those with a text value replace the
    merged instances' values, the others are removed from them."""
    instance = selectors.instance_first(resource=target)
    ds = pydicom.dcmread(io.BytesIO(selectors.instance_dicom(instance=instance)), stop_before_pixels=True,
                         force=True)
    plan = Restructure(study_uid=str(ds.get("StudyInstanceUID", "")))
    for tag in MODULE_TAG_NUMBERS:
        element = ds.get(tag)
        if element is not None and element.VR not in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN"):
            value = element.value
            if value is None:
                text = ""
            elif isinstance(value, (list, pydicom.multival.MultiValue)):
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            plan.replace[tag] = text
        else:
            plan.remove.add(tag)
    plan.replace.pop(STUDY_UID, None)
    plan.remove.discard(STUDY_UID)
    return plan


def instance_restructure(data: bytes, plan: Restructure, *, series_uid: str, sop_uid: str) -> bytes:
    """The instance moved into ``plan.study_uid`` with its new series and SOP instance UIDs."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    for tag in plan.remove:
        if tag in ds:
            del ds[tag]
    for tag, value in plan.replace.items():
        _put(ds, tag, value)
    _put(ds, STUDY_UID, plan.study_uid)
    _put(ds, SERIES_UID, series_uid)
    _put(ds, SOP_UID, sop_uid)
    if hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _put(ds: Dataset, tag: int, value: str) -> None:
    if tag in ds:
        ds[tag].value = value
    else:
        ds.add_new(tag, dictionary_VR(tag), value)


def study_get(public_id: str, message: str) -> Resource:
    try:
        return selectors.resource_get(level=Level.STUDY, public_id=public_id)
    except UnknownResource:
        raise UnknownResource(message + public_id) from None


def _lookup(public_id: str) -> Resource | None:
    return Resource.objects.select_related("parent__parent").filter(public_id=public_id).first()


def merge_sources(*, target: Resource, resource_ids: list[str]) -> list[Resource]:
    """The studies, series and instances to merge into ``target``, with Orthanc's 404 for each bad one."""
    out: list[Resource] = []
    for public_id in resource_ids:
        resource = _lookup(public_id)
        if resource is None:
            raise UnknownResource(f"Cannot find this resource: {public_id}")
        level = list(Level)[resource.level]
        if level is Level.STUDY and resource.id == target.id:
            raise UnknownResource(f"Cannot merge a study into the same study: {public_id}")
        if level is Level.SERIES and resource.parent_id == target.id:
            raise UnknownResource(f"Cannot merge series {public_id} into its parent study {target.public_id}")
        if level is Level.INSTANCE and resource.parent.parent_id == target.id:
            raise UnknownResource(f"Cannot merge instance {public_id} into its parent study {target.public_id}")
        if level is Level.PATIENT:
            raise UnknownResource("This resource is neither a study, nor a series, nor an instance: "
                                  f"{public_id} is a Patient")
        out.append(resource)
    return out


def split_sources(*, study: Resource, series_ids: list[str], instance_ids: list[str]) -> list[Resource]:
    """The series and instances of ``study`` to split away, with Orthanc's 404 for one of another study."""
    out: list[Resource] = []
    for public_id in series_ids:
        resource = _lookup(public_id)
        if resource is None or resource.level != Level.SERIES.depth or resource.parent_id != study.id:
            raise UnknownResource(f"This series does not belong to the study to be split: {public_id}")
        out.append(resource)
    for public_id in instance_ids:
        resource = _lookup(public_id)
        if resource is None or resource.level != Level.INSTANCE.depth or resource.parent.parent_id != study.id:
            raise UnknownResource(f"This instance does not belong to the study to be split: {public_id}")
        out.append(resource)
    return out
