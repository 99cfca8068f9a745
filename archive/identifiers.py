"""Orthanc's resource identifiers: SHA-1 of the DICOM identifiers of a resource and its ancestors.

patient: PatientID; study: PatientID|StudyInstanceUID; series: ...|SeriesInstanceUID;
instance: ...|SOPInstanceUID; the hex digest cut into five dash-separated groups of 8 digits.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

_PUBLIC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def hash_to_public_id(text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def is_public_id(text: str) -> bool:
    return bool(_PUBLIC_ID.match(text))


class ResourceIds(NamedTuple):
    patient: str
    study: str
    series: str
    instance: str


def resource_ids(*, patient_id: str, study_uid: str, series_uid: str, sop_uid: str) -> ResourceIds:
    """The four Orthanc identifiers of an instance and its ancestors."""
    study_key = f"{patient_id}|{study_uid}"
    series_key = f"{study_key}|{series_uid}"
    return ResourceIds(
        patient=hash_to_public_id(patient_id),
        study=hash_to_public_id(study_key),
        series=hash_to_public_id(series_key),
        instance=hash_to_public_id(f"{series_key}|{sop_uid}"),
    )
