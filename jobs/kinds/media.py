"""DICOMDIR media (PS3.10 file-set in a ZIP), built with pydicom's FileSet and records filled as Orthanc's
DicomDirWriter fills them.

The records are Orthanc's, not pydicom's strict PS3.3 F.5 ones, which refused common files (no PatientID, no
StudyID: the whole media failed): PATIENT (PatientID, PatientName), STUDY (StudyDate and StudyTime, from the
series, acquisition or content ones when absent, else now; StudyDescription, StudyInstanceUID, StudyID,
AccessionNumber), SERIES (Modality, SeriesInstanceUID, SeriesNumber; SeriesDescription for the extended media
of /tools/create-media-extended), IMAGE (InstanceNumber), each with the file's SpecificCharacterSet. Type 2 keys
are written empty when the file lacks them, type 1C ones left out; a missing PatientID is an empty one (Orthanc's
issue 124). Values are copied as the file holds them, in its character set (Orthanc converts them to ASCII).

The layout is pydicom's (``PT000000/ST000000/SE000000/IM000000`` beside ``DICOMDIR``), where Orthanc writes
``IMAGES/IM0``...: both are valid file-sets, and readers follow the DICOMDIR's ReferencedFileID, not names.
FileSet needs a staging folder, so media are built on disk, then zipped (streamed from the file when the
request is synchronous).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet, RecordNode

from archive.errors import ArchiveError, OrthancError
from jobs.kinds.archive import COMPRESS_LEVEL, Entry, _read, zip_job
from jobs.models import Job

# (keyword, DICOM type) of each record, as Orthanc's DicomDirWriter (FillPatient, FillStudy, FillSeries...)
_PATIENT = (("PatientID", "1C"), ("PatientName", "2"))
_STUDY = (("StudyDescription", "2"), ("StudyInstanceUID", "1"), ("StudyID", "1C"), ("AccessionNumber", "2"))
_SERIES = (("Modality", "1"), ("SeriesInstanceUID", "1"), ("SeriesNumber", "1C"))
_SERIES_EXTENDED = (("SeriesDescription", "3"),)
_IMAGE = (("InstanceNumber", "1"),)


def _copy(record: Dataset, ds: Dataset, keys: tuple[tuple[str, str], ...]) -> None:
    """Type 1 and 2: always (empty when absent); 1C: when the file has a value; 3: when the file has it."""
    for keyword, kind in keys:
        elem = ds.data_element(keyword) if keyword in ds else None
        has_value = elem is not None and not elem.is_empty
        if kind == "1C" and not has_value or kind == "3" and elem is None:
            continue
        tag = pydicom.datadict.tag_for_keyword(keyword)
        record.add(DataElement(tag, dictionary_VR(tag), elem.value if elem is not None else None))


def _first(ds: Dataset, keywords: tuple[str, ...], default: str) -> str:
    for keyword in keywords:
        value = ds.get(keyword)
        if value:
            return str(value)
    return default


def _record(kind: str, ds: Dataset, keys: tuple[tuple[str, str], ...]) -> Dataset:
    record = Dataset()
    record.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    _copy(record, ds, keys)
    return record


def media_leaf(ds: Dataset, *, extended: bool = False) -> RecordNode:
    """The IMAGE record of ``ds`` under its SERIES, STUDY and PATIENT records (FileSet merges equal ones)."""
    patient = _record("PATIENT", ds, _PATIENT)
    if "PatientID" not in patient:
        patient.PatientID = ""   # FileSet keys patients by PatientID; Orthanc takes a missing one as empty
    study = _record("STUDY", ds, ())
    now = dt.datetime.now(dt.UTC)
    study.StudyDate = _first(ds, ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"), now.strftime("%Y%m%d"))
    study.StudyTime = _first(ds, ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"), now.strftime("%H%M%S"))
    _copy(study, ds, _STUDY)
    series = _record("SERIES", ds, _SERIES + (_SERIES_EXTENDED if extended else ()))
    image = _record("IMAGE", ds, _IMAGE)
    image.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID   # the node's key (add_custom sets the others)
    nodes = [RecordNode(r) for r in (patient, study, series, image)]
    for parent, child in zip(nodes, nodes[1:], strict=False):
        child.parent = parent
    return nodes[-1]


def media_build(entries: list[Entry], target: Path, *, extended: bool = False) -> Iterator[float]:
    """Write the media ZIP of ``entries`` to ``target``, yielding progress (percent) per instance."""
    with tempfile.TemporaryDirectory(prefix="media-") as staging:
        fileset = FileSet()
        fileset.ID = "ORTHANC_MEDIA"
        for done, entry in enumerate(entries, start=1):
            ds = pydicom.dcmread(io.BytesIO(_read(entry)), force=True)
            uids = (ds.get("SOPClassUID"), ds.get("SOPInstanceUID"), getattr(ds.file_meta, "TransferSyntaxUID", None)
                    if hasattr(ds, "file_meta") else None)
            if not all(uids) or not ds.get("StudyInstanceUID") or not ds.get("SeriesInstanceUID"):
                # Orthanc's DicomDirWriter: BadFileFormat without the UIDs that key the records
                raise ArchiveError(f"Cannot add {entry.name} to a DICOMDIR: an identifier is missing",
                                   orthanc_error=OrthancError.BAD_FILE_FORMAT)
            fileset.add_custom(ds, media_leaf(ds, extended=extended))
            yield 90.0 * done / max(1, len(entries))
        fileset.write(staging)
        root = Path(staging)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as out:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                out.write(path, path.relative_to(root).as_posix())
    yield 99.0


def media_job(job: Job) -> Iterator[float]:
    """The Media job: the DICOMDIR ZIP."""
    return zip_job(job, functools.partial(media_build, extended=bool(job.parameters.get("extended"))))
