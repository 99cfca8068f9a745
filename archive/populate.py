"""Synthetic archives for benches and trials: N small instances (no pixel data) through the real ingest path.

The shape follows issue 4: per 1,000,000 instances, 20,000 patients, 100,000 studies, 250,000 series
(so 5 studies per patient, 2-3 series per study, 4 instances per series), scaled down proportionally.
Every instance is a pure function of ``(seed, index)``: the same seed gives the same files, byte for byte,
whichever worker builds them, so ours and real Orthanc can be filled with identical data and a run that was
cut short can be resumed (stored instances answer AlreadyStored).

Workers split the archive by patient (``patient % workers``), so no two processes ever create the same
patient, study or series: concurrent writers only meet on the database's write lock, never on a row.

The files are written by a small explicit-VR-little-endian encoder instead of pydicom: pydicom takes
milliseconds per dataset, which would dominate a million-instance build; the encoder takes microseconds and
the ingest path parses the result with pydicom like any other upload.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

# pydicom's registered root: fine for synthetic data that never leaves a test archive.
UID_ROOT = "1.2.826.0.1.3680043.8.498"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# (weight, name): SMITH and names containing it (GOLDSMITH, SMITHSON) are there for the *SMITH* wildcard.
SURNAMES = [
    (30, "SMITH"), (4, "GOLDSMITH"), (3, "SMITHSON"), (25, "JOHNSON"), (22, "WILLIAMS"), (20, "BROWN"),
    (19, "JONES"), (18, "GARCIA"), (17, "MILLER"), (16, "DAVIS"), (15, "RODRIGUEZ"), (14, "MARTINEZ"),
    (13, "HERNANDEZ"), (12, "LOPEZ"), (12, "GONZALEZ"), (11, "WILSON"), (11, "ANDERSON"), (10, "THOMAS"),
    (10, "TAYLOR"), (10, "MOORE"), (9, "JACKSON"), (9, "MARTIN"), (9, "LEE"), (8, "PEREZ"), (8, "THOMPSON"),
    (8, "WHITE"), (8, "HARRIS"), (7, "SANCHEZ"), (7, "CLARK"), (7, "RAMIREZ"), (7, "LEWIS"), (7, "ROBINSON"),
    (6, "WALKER"), (6, "YOUNG"), (6, "ALLEN"), (6, "KING"), (6, "WRIGHT"), (6, "SCOTT"), (5, "TORRES"),
    (5, "NGUYEN"), (5, "HILL"), (5, "FLORES"), (5, "GREEN"), (5, "ADAMS"), (5, "NELSON"), (5, "BAKER"),
    (4, "MÜLLER"), (4, "SCHMIDT"), (4, "DUBOIS"), (4, "LEFÈVRE"), (4, "ROSSI"), (4, "JANSSENS"),
    (3, "PEETERS"), (3, "O'BRIEN"), (3, "KOWALSKI"), (3, "NOVAK"), (3, "SILVA"), (3, "SANTOS"), (3, "KIM"),
    (3, "PARK"), (3, "CHEN"), (3, "WANG"), (3, "SATO"), (3, "SUZUKI"), (2, "ÅBERG"), (2, "NIELSEN"),
]
FEMALE = ["MARY", "PATRICIA", "JENNIFER", "LINDA", "ELIZABETH", "BARBARA", "SUSAN", "JESSICA", "SARAH",
          "KAREN", "MARIE", "ANNA", "SOPHIE", "LAURA", "EMMA", "CHLOÉ", "INGRID", "YUKI", "MEI", "ELENA"]
MALE = ["JAMES", "ROBERT", "JOHN", "MICHAEL", "DAVID", "WILLIAM", "RICHARD", "JOSEPH", "THOMAS", "CHARLES",
        "PIERRE", "HANS", "LUCA", "JAN", "PIOTR", "JOÃO", "KENJI", "WEI", "LARS", "ANDRÉ"]

# modality: (weight, SOP class, [(study description, body part)], [series descriptions])
MODALITIES: dict[str, tuple[int, str, list[tuple[str, str]], list[str]]] = {
    "CT": (30, "1.2.840.10008.5.1.4.1.1.2",
           [("CT CHEST W/O CONTRAST", "CHEST"), ("CT ABDOMEN PELVIS W CONTRAST", "ABDOMEN"),
            ("CT HEAD W/O CONTRAST", "HEAD"), ("CTA CHEST PE PROTOCOL", "CHEST"), ("CT SPINE LUMBAR", "LSPINE")],
           ["AXIAL 5MM", "AXIAL 1.25MM", "CORONAL MPR", "SAGITTAL MPR", "SCOUT", "BONE WINDOW"]),
    "MR": (22, "1.2.840.10008.5.1.4.1.1.4",
           [("MR BRAIN W/WO CONTRAST", "BRAIN"), ("MR KNEE LEFT", "KNEE"), ("MR LUMBAR SPINE", "LSPINE"),
            ("MR SHOULDER RIGHT", "SHOULDER"), ("MR PROSTATE MULTIPARAMETRIC", "PELVIS")],
           ["T1 SAG", "T2 AX", "FLAIR AX", "DWI", "T1 POST GAD AX", "STIR COR", "LOCALIZER"]),
    "US": (10, "1.2.840.10008.5.1.4.1.1.6.1",
           [("US ABDOMEN COMPLETE", "ABDOMEN"), ("US THYROID", "NECK"), ("US OB 2ND TRIMESTER", "PELVIS")],
           ["B-MODE", "DOPPLER", "CINE"]),
    "CR": (10, "1.2.840.10008.5.1.4.1.1.1",
           [("XR CHEST 2 VIEWS", "CHEST"), ("XR HAND LEFT", "HAND"), ("XR PELVIS AP", "PELVIS")],
           ["PA", "LATERAL", "AP"]),
    "DX": (10, "1.2.840.10008.5.1.4.1.1.1.1",
           [("DX CHEST PA", "CHEST"), ("DX KNEE RIGHT 3 VIEWS", "KNEE"), ("DX ANKLE LEFT", "ANKLE")],
           ["PA", "LATERAL", "OBLIQUE"]),
    "PT": (5, "1.2.840.10008.5.1.4.1.1.128",
           [("PET/CT WHOLE BODY FDG", "WHOLEBODY"), ("PET BRAIN AMYLOID", "BRAIN")],
           ["PET AC", "PET NAC", "MIP"]),
    "MG": (6, "1.2.840.10008.5.1.4.1.1.1.2",
           [("MG SCREENING BILATERAL", "BREAST"), ("MG DIAGNOSTIC LEFT", "BREAST")],
           ["L CC", "R CC", "L MLO", "R MLO"]),
    "NM": (3, "1.2.840.10008.5.1.4.1.1.20",
           [("NM BONE SCAN WHOLE BODY", "WHOLEBODY"), ("NM THYROID UPTAKE", "NECK")],
           ["ANTERIOR", "POSTERIOR", "SPECT"]),
    "XA": (4, "1.2.840.10008.5.1.4.1.1.12.1",
           [("XA CORONARY ANGIOGRAPHY", "HEART"), ("XA CEREBRAL ANGIOGRAPHY", "HEAD")],
           ["LAO 30", "RAO 30", "RUN 1", "RUN 2"]),
}
_MODALITY_NAMES = list(MODALITIES)
_MODALITY_WEIGHTS = [MODALITIES[m][0] for m in _MODALITY_NAMES]
_SURNAME_NAMES = [name for _, name in SURNAMES]
_SURNAME_WEIGHTS = [weight for weight, _ in SURNAMES]

# (probability that a study carries it, label): valid Orthanc labels ([A-Za-z0-9_-]).
LABELS = [(0.05, "teaching"), (0.03, "research"), (0.02, "urgent"), (0.08, "reviewed"), (0.01, "follow-up")]

FIRST_DAY, STUDY_DAYS = date(2005, 1, 1), 21 * 365  # studies from 2005 to 2025


@dataclass(frozen=True)
class Shape:
    """How N instances split into patients, studies and series; resources are numbered from 0 and each
    level is spread evenly over its parents (``parent = child * parents // children``)."""

    instances: int
    patients: int
    studies: int
    series: int

    @classmethod
    def for_count(cls, count: int) -> Shape:
        """Issue 4's proportions: 1,000,000 -> 20,000 / 100,000 / 250,000, at least one of each."""
        if count < 1:
            raise ValueError("count must be at least 1")
        series = min(count, max(1, round(count / 4)))
        studies = min(series, max(1, round(count / 10)))
        patients = min(studies, max(1, round(count / 50)))
        return cls(count, patients, studies, series)

    def chain(self, index: int) -> tuple[int, int, int]:
        """(patient, study, series) numbers of instance ``index``."""
        series = index * self.series // self.instances
        study = series * self.studies // self.series
        return study * self.patients // self.studies, study, series

    def worker_indexes(self, worker: int, workers: int) -> Iterator[int]:
        """The instance numbers a worker stores: those of the patients ``p % workers == worker``, in order."""
        for index in range(self.instances):
            if self.chain(index)[0] % workers == worker:
                yield index


@dataclass(frozen=True)
class PatientInfo:
    patient_id: str
    name: str
    birth_date: str
    sex: str


@dataclass(frozen=True)
class StudyInfo:
    uid: str
    date: str
    time: str
    accession: str
    description: str
    body_part: str
    modalities: tuple[str, ...]
    labels: tuple[str, ...]
    study_id: str


@dataclass(frozen=True)
class SeriesInfo:
    uid: str
    modality: str
    description: str
    number: int


def _rng(seed: int, level: str, number: int) -> random.Random:
    # A string seed is hashed with SHA-512 (random.seed version 2): stable across runs and processes.
    return random.Random(f"{seed}:{level}:{number}")


@lru_cache(maxsize=64)
def patient_info(seed: int, patient: int) -> PatientInfo:
    rng = _rng(seed, "patient", patient)
    sex = rng.choice("FM")
    first = rng.choice(FEMALE if sex == "F" else MALE)
    surname = rng.choices(_SURNAME_NAMES, _SURNAME_WEIGHTS)[0]
    middle = f"^{rng.choice('ABCDEFGHJKLMNPRSTW')}" if rng.random() < 0.3 else ""
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(75 * 365))
    # Multiplying by a number prime to 10**8 scrambles the order but keeps PatientIDs unique.
    return PatientInfo(f"{(patient * 7919 + seed * 1_000_003) % 10**8:08d}", f"{surname}^{first}{middle}",
                       birth.strftime("%Y%m%d"), sex)


@lru_cache(maxsize=64)
def study_info(seed: int, study: int) -> StudyInfo:
    rng = _rng(seed, "study", study)
    modality = rng.choices(_MODALITY_NAMES, _MODALITY_WEIGHTS)[0]
    description, body_part = rng.choice(MODALITIES[modality][2])
    # PET studies carry a CT for attenuation correction, as PET/CT scanners send them.
    modalities = (modality, "CT") if modality == "PT" else (modality,)
    day = FIRST_DAY + timedelta(days=rng.randrange(STUDY_DAYS))
    time = f"{rng.randrange(7, 20):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
    labels = tuple(name for probability, name in LABELS if rng.random() < probability)
    return StudyInfo(f"{UID_ROOT}.{seed}.1.{study + 1}", day.strftime("%Y%m%d"), time,
                     f"A{(study * 104729 + seed) % 10**9:09d}", description, body_part, modalities, labels,
                     str(rng.randrange(1, 100000)))


@lru_cache(maxsize=64)
def series_info(seed: int, series: int, study: StudyInfo, number: int) -> SeriesInfo:
    rng = _rng(seed, "series", series)
    modality = study.modalities[number % len(study.modalities)]
    return SeriesInfo(f"{UID_ROOT}.{seed}.2.{series + 1}", modality, rng.choice(MODALITIES[modality][3]),
                      number + 1)


def _element(tag: int, vr: str, value: str | bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 7.1.2); text padded to even length (PS3.5 6.2)."""
    raw = value if isinstance(value, bytes) else value.encode("latin-1")
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    group, element = tag >> 16, tag & 0xFFFF
    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR"):
        return struct.pack("<HH2s2xI", group, element, vr.encode(), len(raw)) + raw
    return struct.pack("<HH2sH", group, element, vr.encode(), len(raw)) + raw


def instance_bytes(*, shape: Shape, seed: int, index: int) -> bytes:
    """The Part 10 file of instance ``index``: patient, study, series and instance tags, no pixel data."""
    p, s, r = shape.chain(index)
    patient, study = patient_info(seed, p), study_info(seed, s)
    first_series = -(-s * shape.series // shape.studies)  # ceil: the lowest series of study s
    series = series_info(seed, r, study, r - first_series)
    first_instance = -(-r * shape.instances // shape.series)  # ceil: lowest instance of series r
    number = index - first_instance + 1
    sop_class = MODALITIES[series.modality][1]
    sop_uid = f"{UID_ROOT}.{seed}.3.{index + 1}"
    elements = [
        (0x00080005, "CS", "ISO_IR 100"),
        (0x00080008, "CS", "ORIGINAL\\PRIMARY"),
        (0x00080016, "UI", sop_class),
        (0x00080018, "UI", sop_uid),
        (0x00080020, "DA", study.date),
        (0x00080021, "DA", study.date),
        (0x00080030, "TM", study.time),
        (0x00080031, "TM", study.time),
        (0x00080050, "SH", study.accession),
        (0x00080060, "CS", series.modality),
        (0x00080070, "LO", "SYNTH MEDICAL"),
        (0x00080080, "LO", "POPULATE GENERAL HOSPITAL"),
        (0x00080090, "PN", "REFERRER^SYNTH"),
        (0x00081030, "LO", study.description),
        (0x0008103E, "LO", series.description),
        (0x00100010, "PN", patient.name),
        (0x00100020, "LO", patient.patient_id),
        (0x00100030, "DA", patient.birth_date),
        (0x00100040, "CS", patient.sex),
        (0x00180015, "CS", study.body_part),
        (0x0020000D, "UI", study.uid),
        (0x0020000E, "UI", series.uid),
        (0x00200010, "SH", study.study_id),
        (0x00200011, "IS", str(series.number)),
        (0x00200013, "IS", str(number)),
    ]
    dataset = b"".join(_element(tag, vr, value) for tag, vr, value in elements)
    meta = b"".join([
        _element(0x00020001, "OB", b"\x00\x01"),
        _element(0x00020002, "UI", sop_class),
        _element(0x00020003, "UI", sop_uid),
        _element(0x00020010, "UI", EXPLICIT_VR_LITTLE_ENDIAN),
        _element(0x00020012, "UI", f"{UID_ROOT}.0.0"),
        _element(0x00020013, "SH", "POPULATE"),
    ])
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
    return b"\0" * 128 + b"DICM" + group_length + meta + dataset


def study_labels(*, shape: Shape, seed: int, index: int) -> tuple[str, ...]:
    """The labels of the study of instance ``index`` (added once its first instance is stored)."""
    return study_info(seed, shape.chain(index)[1]).labels


def _bulk_load_session() -> None:
    """On PostgreSQL, commit without waiting for the WAL flush, for this connection only: each instance is
    its own transaction, and waiting for the disk on each commit halved the build rate (274 -> 436
    instances/s with 2 workers). A crash can lose the last instants of commits, never consistency, and
    running populate again restores them (it resumes)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


def populate_worker(*, shape: Shape, seed: int, worker: int, workers: int,
                    progress: Callable[[int], None] | None = None, every: int = 500) -> tuple[int, int]:
    """Store this worker's slice through ``instance_store`` and label its studies; resumable (instances
    already there answer AlreadyStored). Returns (stored, already stored); ``progress(n)`` is called with
    the number of instances handled since the last call, every ``every`` instances and at the end."""
    # Imported here so that the generator above needs no Django: bench/find.py feeds real Orthanc with it.
    from archive.ingest import Origin, StoreStatus, instance_store
    from archive.labels import label_add
    from archive.levels import Level

    _bulk_load_session()
    origin = Origin()  # Orthanc's "Unknown" origin: neither REST nor DICOM
    stored = already = pending = 0
    last_study = -1
    for index in shape.worker_indexes(worker, workers):
        result = instance_store(data=instance_bytes(shape=shape, seed=seed, index=index), origin=origin)
        if result.status is StoreStatus.SUCCESS:
            stored += 1
        else:
            already += 1
        study = shape.chain(index)[1]
        if study != last_study:
            last_study = study
            for name in study_labels(shape=shape, seed=seed, index=index):
                label_add(level=Level.STUDY, public_id=result.ids.study, name=name)
        pending += 1
        if progress is not None and pending >= every:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    return stored, already
