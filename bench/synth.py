"""Fast synthetic CT instances for the benches.

Each instance is 512x512, 16-bit, explicit VR little endian, about 0.5 MB, with the tags a CT scanner writes
(patient, study, series, frame of reference, geometry, rescale, window). Generation is split in two so that
20,000 instances fit in memory and cost nothing while timing:

- ``head``: everything up to and including the Pixel Data element header (tag, VR, length), written by
  pydicom, ~1.5 KB, unique per instance (UIDs, InstanceNumber, position...);
- ``pixels``: the Pixel Data value, shared between instances (a handful of variants, built once).

``head + pixels`` is a valid Part 10 file: Pixel Data is the last top-level element. Senders can write the
two parts one after the other without concatenating them (see ``bench/ingest.py``).

Run ``python bench/synth.py --count 100 --out DIR`` to write files (e.g. for storescu or a manual upload).
"""

from __future__ import annotations

import argparse
import random
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROWS = COLUMNS = 512
PIXEL_BYTES = ROWS * COLUMNS * 2
# (7FE0,0010) OW, 2 reserved bytes, 32-bit length: explicit VR little endian, PS3.5 7.1.2.
PIXEL_DATA_HEADER = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXEL_BYTES)


@dataclass(frozen=True, slots=True)
class SynthInstance:
    head: bytes
    pixels: bytes
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str

    @property
    def size(self) -> int:
        return len(self.head) + len(self.pixels)

    def to_bytes(self) -> bytes:
        return self.head + self.pixels


def pixel_variants(count: int = 4, *, seed: int = 0) -> list[bytes]:
    """A few CT-like slices (a body disc of soft tissue with noise, air around it), stored values with
    RescaleIntercept -1024, 12 bits stored."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ROWS, 0:COLUMNS]
    variants = []
    for i in range(count):
        r = 200 + 10 * i
        body = (yy - ROWS / 2) ** 2 + (xx - COLUMNS / 2) ** 2 < r * r
        img = np.where(body, 1024 + 40, 24).astype(np.int16)
        img += rng.normal(0, 12, size=img.shape).astype(np.int16)
        np.clip(img, 0, 4095, out=img)
        variants.append(img.astype("<i2").tobytes())
    return variants


class _Uids:
    """UIDs under the 2.25 root (PS3.5 B.2: a UUID as a decimal integer), reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def __call__(self) -> str:
        return "2.25." + str(self._rng.randrange(10**37, 10**38))  # always 38 digits


def _head(ds: Dataset, meta: FileMetaDataset) -> bytes:
    ds.file_meta = meta
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue() + PIXEL_DATA_HEADER


# Per-instance values are patched into a per-series head written once by pydicom (pydicom takes ~6 ms per
# dataset; patching takes microseconds). Placeholders have the exact width of the values they stand for.
_SOP_PLACEHOLDER = "2.25." + "9" * 38  # _Uids makes 38-digit integers: same length
_NUMBER_PLACEHOLDER = "77777777"  # InstanceNumber, IS, space padded to 8
_Z_PLACEHOLDER = "8888888.88"  # ImagePositionPatient[2] and SliceLocation, DS, 10 wide


class _Template:
    def __init__(self, head: bytes) -> None:
        self.parts: list[bytes] = []
        self.slots: list[int] = []  # 0 SOP UID, 1 InstanceNumber, 2 z
        tokens = [_SOP_PLACEHOLDER.encode(), _NUMBER_PLACEHOLDER.encode(), _Z_PLACEHOLDER.encode()]
        pattern = re.compile(b"|".join(re.escape(t) for t in tokens))
        pos = 0
        for m in pattern.finditer(head):
            self.parts.append(head[pos:m.start()])
            self.slots.append(tokens.index(m.group()))
            pos = m.end()
        self.parts.append(head[pos:])
        # SOP UID in the meta header and the dataset, number once, z twice.
        assert sorted(self.slots) == [0, 0, 1, 2, 2], self.slots

    def fill(self, sop_uid: str, number: int, z: float) -> bytes:
        values = (sop_uid.encode(), f"{number:<8d}".encode(), f"{z:10.2f}".encode())
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return b"".join(out)


def _series_template(*, patient: dict, study: dict, series: dict) -> _Template:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = _SOP_PLACEHOLDER
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study["date"]
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "BenchScanner"
    ds.InstitutionName = "Bench Hospital"
    ds.ReferringPhysicianName = "Referrer^Bench"
    ds.StationName = "CT01"
    ds.StudyDescription = study["description"]
    ds.SeriesDescription = series["description"]
    ds.ManufacturerModelName = "Synth 64"
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.25"
    ds.KVP = "120"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series["uid"]
    ds.StudyID = study["id"]
    ds.SeriesNumber = series["number"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = _NUMBER_PLACEHOLDER
    ds.ImagePositionPatient = ["-250.0", "-250.0", _Z_PLACEHOLDER]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = series["frame_uid"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _Z_PLACEHOLDER
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = ["0.976562", "0.976562"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = _SOP_PLACEHOLDER
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return _Template(_head(ds, meta))


def generate(
    *,
    patients: int = 1,
    studies_per_patient: int = 1,
    series_per_study: int = 1,
    instances_per_series: int = 100,
    seed: int = 0,
    prefix: str = "BENCH",
    pixels: list[bytes] | None = None,
) -> Iterator[SynthInstance]:
    """Yield ``patients * studies_per_patient * series_per_study * instances_per_series`` instances."""
    uid = _Uids(seed)
    variants = pixels or pixel_variants()
    rng = random.Random(seed)
    n = 0
    for p in range(patients):
        patient = {
            "id": f"{prefix}{seed:03d}-{p:06d}",
            "name": f"Bench^Patient{p:06d}",
            "birth": f"{1940 + rng.randrange(60)}{1 + rng.randrange(12):02d}{1 + rng.randrange(28):02d}",
            "sex": rng.choice("MF"),
        }
        for s in range(studies_per_patient):
            study = {
                "uid": uid(),
                "id": str(s + 1),
                "date": f"20{10 + rng.randrange(15)}{1 + rng.randrange(12):02d}{1 + rng.randrange(28):02d}",
                "time": f"{8 + rng.randrange(10):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}",
                "accession": f"A{seed:03d}{p:06d}{s:02d}",
                "description": f"CT CHEST {s}",
            }
            for r in range(series_per_study):
                series = {"uid": uid(), "frame_uid": uid(), "number": r + 1,
                          "description": f"AXIAL {r} 1.25mm"}
                template = _series_template(patient=patient, study=study, series=series)
                for i in range(instances_per_series):
                    sop_uid = uid()
                    yield SynthInstance(template.fill(sop_uid, i + 1, -i * 1.25), variants[n % len(variants)],
                                        patient["id"], study["uid"], series["uid"], sop_uid)
                    n += 1


def generate_count(count: int, *, instances_per_series: int = 100, series_per_study: int = 2,
                   seed: int = 0, prefix: str = "BENCH") -> list[SynthInstance]:
    """Exactly ``count`` instances: one study per patient, ``series_per_study`` series of
    ``instances_per_series`` instances each (the last patient may be incomplete)."""
    per_patient = instances_per_series * series_per_study
    patients = -(-count // per_patient)
    out: list[SynthInstance] = []
    for inst in generate(patients=patients, series_per_study=series_per_study,
                         instances_per_series=instances_per_series, seed=seed, prefix=prefix):
        if len(out) >= count:
            break
        out.append(inst)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--per-series", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write NNNNNN.dcm files here (otherwise only time generation)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    instances = generate_count(args.count, instances_per_series=args.per_series, seed=args.seed)
    dt = time.perf_counter() - t0
    size = sum(i.size for i in instances)
    print(f"generated {len(instances)} instances, {size / 1e6:.1f} MB, in {dt:.2f} s "
          f"({len(instances) / dt:.0f}/s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for n, inst in enumerate(instances):
            (args.out / f"{n:06d}.dcm").write_bytes(inst.to_bytes())
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
