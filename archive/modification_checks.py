"""The checks Orthanc (1.11.3 and later) makes before it starts a modification job, so that a /modify keeps the
DICOM model whole: a refused request is a 400 before any job, whether synchronous or not.

1. At the patient or study level, a request that keeps the StudyInstanceUID, SeriesInstanceUID and
   SOPInstanceUID of the instances (and the PatientID) modifies them in place: it needs KeepSource (or the
   job would delete what it made) and OverwriteInstances (or the modified instances would be refused as
   already stored).
2. At the study level, a request that replaces a patient main tag may move the study to another patient
   (PatientID) or change patient tags that the patient's other studies share. When the target patient exists
   and has other studies, every patient main tag it has must be replaced by the value it has (the study joins
   that patient as it is), and none it lacks may be replaced: patient tags are changed with
   /patients/{id}/modify. The patient's only study may change them freely. Not with PatientLevelEnabled false
   (1.12.11), where one PatientID may name several patients.

An anonymization is set up at the patient level whatever the resource (Orthanc's SetupAnonymization, and
anonymization_parse here), its new PatientID a generated identifier rather than a replacement: of these checks
only the first can refuse it, when the request keeps the three UIDs.
"""

from __future__ import annotations

from archive.dicom.tags import level_tags, tag_key, tag_name
from archive.errors import BadRequest, UnknownResource
from archive.identifiers import hash_to_public_id
from archive.levels import Level
from archive.models import Resource
from archive.modification import PATIENT_ID, SERIES_UID, SOP_UID, STUDY_UID, Modification
from archive.settings import archive_settings


def modification_sanity_check(mod: Modification, *, resources: list[str]) -> None:
    """Raise BadRequest when Orthanc refuses to start the modification job of ``resources`` (the resources
    named in the request) that ``mod`` describes."""
    cfg = archive_settings()
    if mod.level in (Level.PATIENT, Level.STUDY) and PATIENT_ID not in mod.replace \
            and {STUDY_UID, SERIES_UID, SOP_UID} <= mod.keep:
        if not mod.keep_source:
            raise BadRequest("When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must set "
                             "KeepSource to true to avoid deleting the modified files at the end of the process")
        if not cfg.overwrite_instances:
            raise BadRequest("When keeping StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID tag, you must have "
                             "the 'OverwriteInstances' Orthanc configuration set to true in order to replace the "
                             "modified resources")
    if mod.level is not Level.STUDY or not cfg.patient_level_enabled:
        return      # PatientLevelEnabled false (1.12.11): no patient-level checks, patients being unreliable
    patient_tags = sorted(int(tag) for tag in level_tags(Level.PATIENT, cfg.extra_main_tags(Level.PATIENT)))
    if not any(tag in mod.replace for tag in patient_tags):
        return
    for study_id in resources:
        _check_study_patient_tags(mod, study_id, patient_tags)


def _check_study_patient_tags(mod: Modification, study_id: str, patient_tags: list[int]) -> None:
    study = Resource.objects.filter(level=Level.STUDY.depth, public_id=study_id).select_related("parent").first()
    if study is None:
        raise UnknownResource("Study not found")
    if PATIENT_ID in mod.replace:
        target_id = _text(mod.replace[PATIENT_ID]) or ""
    else:
        target_id = study.main_tags.get("PatientID", study.parent.main_tags.get("PatientID", ""))
    patient = Resource.objects.filter(level=Level.PATIENT.depth, public_id=hash_to_public_id(target_id)).first()
    if patient is None:
        return      # a new patient: the study takes the tags it is given
    studies = list(Resource.objects.filter(parent=patient).values_list("public_id", flat=True)[:2])
    if studies == [study_id] or not studies:
        return      # the patient's only study
    existing = patient.main_tags
    for tag in patient_tags:
        name = tag_name(tag)
        if name in existing:
            if tag not in mod.replace or _text(mod.replace[tag]) != existing[name]:
                raise BadRequest(
                    "Trying to change patient tags in a study.  The Patient already exists and has other studies.  "
                    "All the 'Replace' tags should match the existing patient main dicom tags and you should specify "
                    "all Patient MainDicomTags in your query.  Try using /patients/../modify instead to modify the "
                    f"patient. Failing tag: {tag_key(tag)}")
        elif tag in mod.replace:
            raise BadRequest(
                "Trying to change patient tags in a study.  The Patient already exists and has other studies.  You "
                "are trying to replace a tag that is not defined yet in this patient. Try using "
                f"/patients/../modify instead to modify the patient. Failing tag: {tag_key(tag)}")


def _text(value) -> str | None:
    return value if isinstance(value, str) else None
