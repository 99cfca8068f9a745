"""ZIP archives of patients, studies, series and instances, laid out as Orthanc 1.12 lays them out:

    {PatientID} {PatientName}/{AccessionNumber} {StudyDescription}/{Modality} {SeriesDescription}/MR000001.dcm

Names keep ASCII letters, digits, spaces, '_' and '.', a person name's '^' becoming a space, runs of spaces one
space (Orthanc drops the rest: accents, '/', ',', '-', brackets, tabs; checked on real Orthanc), so DICOM text never
becomes a path. With Utf8 (Orthanc 1.12.11: the request's "Utf8", else ZipUseUtf8), letters and digits of every
script stay too ("Müller", "山田"), written as UTF-8 with the ZIP's UTF-8 flag; the rest goes as before.
Two folders of the same name in one folder (two series "CT Axial" of a study) become "CT Axial"
and "CT Axial-2", in the order of their Orthanc identifiers, as Orthanc's HierarchicalZipWriter names them:
no file of one overwrites a file of the other when the archive is extracted; a folder without a name is
"Unknown Patient", "Unknown Study" or "Unknown Series". Files are named by the first two letters of the modality
in upper case and 6 digits (one letter: 7 digits; no modality: 8). A file is numbered by its InstanceNumber when the series' numbers are distinct integers
(1.12.5), else by its rank in the series. The same layout serves the streamed answer of a synchronous request
(zipstream-ng: the ZIP is sent while it is built, never held whole) and the file of an asynchronous job.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zipstream import ZipStream

from archive import selectors
from archive.levels import Level
from archive.models import Attachment, ContentType, Resource
from archive.storage import dicom_storage, uncompress
from jobs.models import Job

_UNSAFE = re.compile(r"[^A-Za-z0-9 _.]")
_UNSAFE_UTF8 = re.compile(r"[^\w .]")     # \w: the letters, digits and '_' of every script
COMPRESS_LEVEL = 1  # deflate: fast, and DICOM compresses little better at higher levels


@dataclass(frozen=True)
class Entry:
    name: str         # path inside the ZIP
    uuid: str         # the stored file
    compressed: bool  # stored with StorageCompression
    size: int         # uncompressed size in bytes


def _folder(*values: str, utf8: bool = False) -> str:
    # Tabs and other control characters go like the rest (real Orthanc 1.10.1: "Knee\tleft" -> "Kneeleft")
    text = " ".join(v or "" for v in values).replace("^", " ")
    if utf8:    # composed first: an accent sent as a combining mark is no letter of its own
        return " ".join(_UNSAFE_UTF8.sub("", unicodedata.normalize("NFC", text)).split()).strip(".")
    return " ".join(_UNSAFE.sub("", text).split()).strip(".")


def _named(name: str, level: str) -> str:
    """A folder without a name is "Unknown Patient", "Unknown Study" or "Unknown Series", as Orthanc names it."""
    return name or f"Unknown {level}"


def _file_name(modality: str, number: int) -> str:
    """Orthanc's file names: the first two letters of the modality in upper case and 6 digits, one letter and 7,
    none and 8 ("CT000001.dcm", "M0000001.dcm", "00000001.dcm")."""
    prefix = modality.replace(" ", "")[:2].upper()
    return f"{prefix}{number:0{8 - len(prefix)}d}.dcm"


def _unique(used: dict[str, int], name: str) -> str:
    """``name``, or ``name-N`` for its N-th use among the entries of one folder (Orthanc's EnsureUniqueFilename;
    '-' never comes out of _folder, so a suffixed name cannot meet a plain one)."""
    used[name] = used.get(name, 0) + 1
    return name if used[name] == 1 else f"{name}-{used[name]}"


def _series_folders(series: dict[int, Resource], utf8: bool = False) -> dict[int, str]:
    """The folder of each series, patient/study/series, unique within their parent folder; siblings are named
    in the order of their Orthanc identifiers, as Orthanc walks them."""
    tree: dict[int, tuple[Resource, dict[int, tuple[Resource, list[Resource]]]]] = {}
    for s in series.values():
        study, patient = s.parent, s.parent.parent
        studies = tree.setdefault(patient.id, (patient, {}))[1]
        studies.setdefault(study.id, (study, []))[1].append(s)
    folders: dict[int, str] = {}
    patient_names: dict[str, int] = {}
    for patient, studies in sorted(tree.values(), key=lambda item: item[0].public_id):
        study_names: dict[str, int] = {}
        patient_folder = None
        for study, members in sorted(studies.values(), key=lambda item: item[0].public_id):
            if patient_folder is None:
                patient_folder = _unique(patient_names, _named(_folder(
                    patient.main_tags.get("PatientID", ""),
                    # the patient's own name, as Orthanc: its studies may carry others (same PatientID)
                    patient.main_tags.get("PatientName", "") or study.main_tags.get("PatientName", ""), utf8=utf8),
                    "Patient"))
            study_folder = _unique(study_names, _named(_folder(study.main_tags.get("AccessionNumber", ""),
                                                               study.main_tags.get("StudyDescription", ""),
                                                               utf8=utf8), "Study"))
            series_names: dict[str, int] = {}
            for s in sorted(members, key=lambda r: r.public_id):
                series_folder = _unique(series_names, _named(_folder(_folder(s.main_tags.get("Modality", "")),
                                                                     s.main_tags.get("SeriesDescription", ""),
                                                                     utf8=utf8), "Series"))
                folders[s.id] = f"{patient_folder}/{study_folder}/{series_folder}"
    return folders


def _number(value) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 1_000_000 else None


def archive_entries(*, resources: Iterable[tuple[Level, str]], utf8: bool = False) -> list[Entry]:
    """The files of the resources, each once, with their path in the archive (``utf8``: names keep the letters
    of every script). A few queries per series."""
    instances: list[Resource] = []
    seen: set[int] = set()
    for level, public_id in resources:
        root = selectors.resource_get(level=level, public_id=public_id)
        for instance in selectors.resource_descendants(resource=root, level=Level.INSTANCE):
            if instance.id not in seen:
                seen.add(instance.id)
                instances.append(instance)
    files = {rid: (uuid, compression == 2, size) for rid, uuid, compression, size in
             Attachment.objects.filter(resource_id__in=list(seen), content_type=ContentType.Dicom)
             .values_list("resource_id", "uuid", "compression", "uncompressed_size")}
    series_ids = {i.parent_id for i in instances}
    series = {s.id: s for s in Resource.objects.filter(id__in=series_ids).select_related("parent__parent")}
    by_series: dict[int, list[Resource]] = {}
    for instance in instances:
        by_series.setdefault(instance.parent_id, []).append(instance)
    folders = _series_folders(series, utf8)
    entries = []
    for series_id, members in by_series.items():
        s = series[series_id]
        modality = _folder(s.main_tags.get("Modality", ""))
        folder = folders[series_id]
        numbers = [_number(i.main_tags.get("InstanceNumber")) for i in members]
        if None in numbers or len(set(numbers)) != len(numbers):
            numbers = list(range(len(members)))
        for instance, number in zip(members, numbers, strict=True):
            if instance.id in files:
                uuid, compressed, size = files[instance.id]
                entries.append(Entry(f"{folder}/{_file_name(modality, number)}", uuid, compressed, size))
    return entries


def _read(entry: Entry, transcode: str | None = None, quality: int = 90) -> bytes:
    data = dicom_storage().read(entry.uuid)
    data = uncompress(data) if entry.compressed else data
    if transcode:
        from archive.dicom.transcode import TranscodingFailed, file_transcode

        try:
            return file_transcode(data, syntax=transcode, quality=quality)
        except TranscodingFailed:
            return data  # a file no codec can write in that syntax goes in as stored
    return data


def archive_stream(entries: list[Entry], *, transcode: str | None = None, quality: int = 90) -> Iterator[bytes]:
    """The ZIP, chunk by chunk, each file read (and transcoded, if asked) when its turn comes."""
    stream = ZipStream(compress_type=zipfile.ZIP_DEFLATED, compress_level=COMPRESS_LEVEL)
    for entry in entries:
        stream.add(_lazy(entry, transcode, quality), entry.name)
    yield from stream


def _lazy(entry: Entry, transcode: str | None, quality: int) -> Iterator[bytes]:
    yield _read(entry, transcode, quality)


def zip_job(job: Job, build: Callable[[list[Entry], Path], Iterator[float]]) -> Iterator[float]:
    """An Archive or Media job: the entries of the job's resources, ``build`` writing the ZIP to the job's
    "archive" output (Orthanc's key for both), Orthanc's Content before and after."""
    from jobs.outputs import output_path, output_register

    resources = [(Level(level), public_id) for level, public_id in job.parameters["resources"]]
    entries = archive_entries(resources=resources, utf8=bool(job.parameters.get("utf8")))
    total = sum(e.size for e in entries)
    job.content = {"Description": job.parameters.get("description", "REST API"),
                   "InstancesCount": len(entries), "UncompressedSize": str(total),
                   "UncompressedSizeMB": total // (1024 * 1024)}
    path = output_path(job, "archive")
    yield from build(entries, path)
    size = path.stat().st_size
    job.content.update({"ArchiveSize": str(size), "ArchiveSizeMB": size // (1024 * 1024)})
    output_register(job, "archive", content_type="application/zip",
                    filename=job.parameters.get("filename") or "archive.zip")


def archive_job(job: Job) -> Iterator[float]:
    """The Archive job: the ZIP written one instance a step."""
    transcode, quality = job.parameters.get("transcode"), job.parameters.get("quality", 90)

    def build(entries: list[Entry], path: Path) -> Iterator[float]:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as out:
            for done, entry in enumerate(entries, start=1):
                out.writestr(entry.name, _read(entry, transcode, quality))
                yield 99.0 * done / max(1, len(entries))

    return zip_job(job, build)
