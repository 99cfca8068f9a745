"""Pixel routes bench: preview, rendered (PNG and JPEG), image-uint16 and series numpy, ours against real Orthanc.

    .venv/bin/python bench/pixels.py                                  # both servers, ~5-10 minutes
    .venv/bin/python bench/pixels.py --no-orthanc --runs 10 --cold-copies 4
    .venv/bin/python bench/pixels.py --kinds ct,jls --numpy-count 20

Five synthetic images, made here with pydicom and numpy from ``--seed`` (CT-like content with structure and
noise, never constant): ``ct`` 512x512 CT, 16-bit signed, explicit VR little endian, rescale and window;
``cr`` 2000x2500 CR (Columns 2000, Rows 2500), 16 allocated / 12 stored, MONOCHROME1, uncompressed; ``j2k``
the CT slice in JPEG 2000 lossless (1.2.840.10008.1.2.4.90, pydicom + pylibjpeg-openjpeg); ``jls`` the CT
slice in JPEG-LS lossless (1.2.840.10008.1.2.4.80, DCMTK's dcmcjpls); ``mf`` 100 frames of 256x256, 16-bit,
uncompressed, requested at frame 50.

Routes, for each image (frame 0, or frame 50 of ``mf``, whose routes are all frame-level):
``/instances/{id}/preview``, ``/instances/{id}/rendered``, ``/instances/{id}/frames/{n}/rendered?quality=90``
with ``Accept: image/jpeg``, ``/instances/{id}/frames/{n}/image-uint16``.

- cold: ``--cold-copies`` copies of the image (another SOPInstanceUID each) per route, each requested once:
  every request is on an instance no route has read or decoded before (ours keeps decoded frames per process,
  Orthanc parsed files: a copy shared between routes would be warm from the second route on);
- warm: one instance, one warm-up request, then ``--runs`` requests.
Before the cold requests each route is asked once on the warm instance, so code loading (a worker's first
JPEG 2000 decode, say) is not counted as cold. Requests alternate between the servers, one keep-alive
connection each (http.client), so both see the same background load; times are the client's wall time.

Then ``/series/{id}/numpy`` on a series of ``--numpy-count`` 512x512 CT instances (bench/synth.py): MB/s
(MB = 10^6 bytes of answer body), the first request and the median of ``--numpy-runs`` more.

Real Orthanc 1.10.1 runs with its GDCM plugin (``--gdcm``, Debian package orthanc-gdcm) so that it decodes
JPEG 2000 as well. Answers are checked (status 200, PNG or JPEG as asked) and, at the end, the decoded
answers of both servers are compared on the warm instances. Exit status 1 when a request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import KeepAliveClient, Server, orthanc_server, ours_server  # noqa: E402
from synth import generate  # noqa: E402

GDCM_PLUGIN = "/usr/share/orthanc/plugins/libOrthancGdcm.so"
DCMCJPLS = shutil.which("dcmcjpls") or "/usr/bin/dcmcjpls"
PNG, JPEG = "image/png", "image/jpeg"
GOAL_WARM, GOAL_COLD = 1.0, 1.5
MF_FRAME = 50

# Every copy gets a SOPInstanceUID of the placeholder's exact length, patched into the encoded bytes (meta
# header and dataset): no re-encoding per copy, and the files stay valid.
UID_PLACEHOLDER = "2.25." + "9" * 38


@dataclass(frozen=True)
class Route:
    name: str
    instance_path: str  # {id}, {n}
    frame_path: str     # for the multi-frame instance
    accept: str | None
    expect: str         # Content-Type of the answer


ROUTES = [
    Route("preview", "/instances/{id}/preview", "/instances/{id}/frames/{n}/preview", None, PNG),
    Route("rendered", "/instances/{id}/rendered", "/instances/{id}/frames/{n}/rendered", None, PNG),
    Route("rendered q90 jpeg", "/instances/{id}/frames/{n}/rendered?quality=90",
          "/instances/{id}/frames/{n}/rendered?quality=90", JPEG, JPEG),
    Route("image-uint16", "/instances/{id}/frames/{n}/image-uint16", "/instances/{id}/frames/{n}/image-uint16",
          None, PNG),
]


@dataclass
class Kind:
    key: str
    label: str
    template: bytes  # a Part 10 file whose SOPInstanceUID is UID_PLACEHOLDER
    frame: int
    multiframe: bool

    def path(self, route: Route, instance_id: str) -> str:
        pattern = route.frame_path if self.multiframe else route.instance_path
        return pattern.format(id=instance_id, n=self.frame)


# ---------------------------------------------------------------------------------------------- synthesis


def ct_hu(rows: int, cols: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """A chest-like slice in Hounsfield units: air, an elliptic body of soft tissue with fat, two lungs with
    vessels, a spine, ribs, a contrast-filled aorta, noise. ``shift`` moves the inner structures (frames)."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y = (y - rows / 2) / (rows / 2)
    x = (x - cols / 2) / (cols / 2)
    hu = np.full((rows, cols), -1000.0, dtype=np.float32)
    body = (x / 0.85) ** 2 + (y / 0.62) ** 2 < 1
    hu[body] = -90  # fat
    inner = (x / 0.78) ** 2 + (y / 0.55) ** 2 < 1
    hu[inner] = 40 + 8 * y[inner]  # soft tissue, with a gentle gradient
    for cx in (-0.38, 0.38):
        lung = ((x - cx) / 0.3) ** 2 + ((y + 0.05 + shift) / 0.42) ** 2 < 1
        hu[lung] = -850
        # vessels: small bright blobs inside the lungs
        for _ in range(25):
            vx, vy = cx + rng.uniform(-0.22, 0.22), rng.uniform(-0.35, 0.3) - shift
            r = rng.uniform(0.006, 0.02)
            hu[lung & ((x - vx) ** 2 + (y - vy) ** 2 < r * r)] = rng.uniform(-100, 60)
    hu[(x ** 2 + (y - 0.38) ** 2) < 0.09 ** 2] = 700  # vertebra
    hu[(x ** 2 + (y - 0.38) ** 2) < 0.05 ** 2] = 250  # its marrow
    hu[((x - 0.12) ** 2 + (y - 0.12 + shift) ** 2) < 0.07 ** 2] = 220  # aorta with contrast
    ring = np.abs(np.hypot(x / 0.8, y / 0.57) - 1) < 0.02
    ribs = ring & (np.sin(np.arctan2(y, x) * 14) > 0.3)
    hu[ribs] = 900
    hu += rng.normal(0, 12, size=hu.shape).astype(np.float32)
    return hu


def cr_values(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A radiograph-like 12-bit image (higher = more attenuation): a smooth exposure field, a thorax-like
    shape, bones, a collimation border, noise."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y /= rows
    x /= cols
    v = 600 + 300 * x + 200 * y  # exposure field
    torso = ((x - 0.5) / 0.38) ** 2 + ((y - 0.55) / 0.45) ** 2 < 1
    v[torso] += 1200
    for cx in (0.33, 0.67):
        lung = ((x - cx) / 0.12) ** 2 + ((y - 0.45) / 0.25) ** 2 < 1
        v[lung] -= 700
    v[np.abs(x - 0.5) < 0.035] += 900  # spine
    for k in range(10):  # ribs: arcs
        yy = 0.25 + 0.045 * k
        rib = (np.abs(y - yy - 0.08 * ((x - 0.5) / 0.3) ** 2) < 0.006) & (np.abs(x - 0.5) < 0.3)
        v[rib] += 500
    v[(x < 0.03) | (x > 0.97) | (y < 0.02) | (y > 0.98)] = 3900  # collimation
    v += rng.normal(0, 25, size=v.shape).astype(np.float32)
    return np.clip(v, 0, 4095).astype(np.uint16)


def _base(modality: str, sop_class: str, uids: random.Random) -> Dataset:
    def uid() -> str:
        return "2.25." + str(uids.randrange(10**37, 10**38))

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = UID_PLACEHOLDER
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = "PIXBENCH"
    ds.Modality = modality
    ds.Manufacturer = "BenchScanner"
    ds.PatientName = "Pixels^Bench"
    ds.PatientID = "PIXBENCH"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid()
    ds.SeriesInstanceUID = uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    return ds


def _part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_ct(rng: np.random.Generator, uids: random.Random) -> Dataset:
    ds = _base("CT", "1.2.840.10008.5.1.4.1.1.2", uids)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    stored = np.clip(ct_hu(512, 512, rng) + 1024, -2000, 4000).astype("<i2")
    ds.PixelData = stored.tobytes()
    return ds


def make_cr(rng: np.random.Generator, uids: random.Random) -> Dataset:
    ds = _base("CR", "1.2.840.10008.5.1.4.1.1.1", uids)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Rows, ds.Columns = 2500, 2000
    ds.PixelSpacing = ["0.15", "0.15"]
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2000", "3000"
    ds.PixelData = cr_values(2500, 2000, rng).astype("<u2").tobytes()
    return ds


def make_multiframe(rng: np.random.Generator, uids: random.Random, frames: int = 100) -> Dataset:
    # Multi-frame Grayscale Word Secondary Capture: no functional groups needed.
    ds = _base("OT", "1.2.840.10008.5.1.4.1.1.7.3", uids)
    ds.Rows = ds.Columns = 256
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.FrameTime = "40"
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "1064", "400"
    stack = np.empty((frames, 256, 256), dtype="<u2")
    for f in range(frames):
        stack[f] = np.clip(ct_hu(256, 256, rng, shift=0.1 * np.sin(f / 8)) + 1024, 0, 4095)
    ds.PixelData = stack.tobytes()
    return ds


def encode_jls(uncompressed: bytes, folder: Path) -> bytes:
    src, dst = folder / "in.dcm", folder / "out.dcm"
    src.write_bytes(uncompressed)
    run = subprocess.run([DCMCJPLS, "--encode-lossless", str(src), str(dst)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"dcmcjpls failed ({run.returncode}): {run.stderr or run.stdout}")
    data = dst.read_bytes()
    src.unlink()
    dst.unlink()
    return data


def make_kinds(seed: int, wanted: list[str]) -> list[Kind]:
    rng = np.random.default_rng(seed)
    uids = random.Random(seed)
    kinds: list[Kind] = []
    ct = make_ct(rng, uids)
    ct_bytes = _part10(ct)
    if "ct" in wanted:
        kinds.append(Kind("ct", "CT 512 s16", ct_bytes, 0, False))
    if "cr" in wanted:
        kinds.append(Kind("cr", "CR 2000x2500", _part10(make_cr(rng, uids)), 0, False))
    if "j2k" in wanted:
        j2k = pydicom.dcmread(io.BytesIO(ct_bytes))
        j2k.SeriesInstanceUID = "2.25." + str(uids.randrange(10**37, 10**38))
        j2k.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
        buf = io.BytesIO()
        j2k.save_as(buf, enforce_file_format=True)
        kinds.append(Kind("j2k", "J2K lossless", buf.getvalue(), 0, False))
    if "jls" in wanted:
        jls = pydicom.dcmread(io.BytesIO(ct_bytes))
        jls.SeriesInstanceUID = "2.25." + str(uids.randrange(10**37, 10**38))
        with tempfile.TemporaryDirectory(prefix="bench-pixels-") as tmp:
            data = encode_jls(_part10(jls), Path(tmp))
        if pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID != JPEGLSLossless:
            raise RuntimeError("dcmcjpls did not write JPEG-LS lossless")
        kinds.append(Kind("jls", "JPEG-LS lossless", data, 0, False))
    if "mf" in wanted:
        kinds.append(Kind("mf", "MF 100x256", _part10(make_multiframe(rng, uids)), MF_FRAME, True))
    for kind in kinds:
        found = kind.template.count(UID_PLACEHOLDER.encode())
        if found != 2:
            raise RuntimeError(f"{kind.key}: SOPInstanceUID placeholder found {found} times, expected 2")
    return kinds


def copy_with_uid(template: bytes, uid: str) -> bytes:
    assert len(uid) == len(UID_PLACEHOLDER)
    return template.replace(UID_PLACEHOLDER.encode(), uid.encode())


# ---------------------------------------------------------------------------------------------- client


Client = KeepAliveClient


@dataclass
class Side:
    """One server under test."""

    name: str
    srv: Server
    client: Client
    errors: list[str] = field(default_factory=list)

    def upload(self, data: bytes) -> tuple[str, str]:
        """(instance ID, series ID)."""
        status, _, body, _ = self.client.call("POST", "/instances", body=data,
                                              headers={"Content-Type": "application/dicom"})
        if status != 200:
            raise RuntimeError(f"{self.name}: upload: HTTP {status}: {body[:300]!r}\n{self.srv.log_tail(20)}")
        answer = json.loads(body)
        return answer["ID"], answer["ParentSeries"]

    def get(self, what: str, path: str, accept: str | None, expect: str | None) -> tuple[float | None, bytes]:
        """Seconds (None on a failed request, reported) and the body."""
        try:
            status, ctype, body, seconds = self.client.call("GET", path,
                                                            headers={"Accept": accept} if accept else None)
        except (http.client.HTTPException, OSError) as exc:
            self._error(f"{what}: GET {path}: {type(exc).__name__}: {exc}")
            return None, b""
        if status != 200:
            self._error(f"{what}: GET {path}: HTTP {status} {ctype}: {body[:200]!r}")
            return None, body
        if expect and not ctype.startswith(expect):
            self._error(f"{what}: GET {path}: Content-Type {ctype!r}, expected {expect}")
        return seconds, body

    def _error(self, text: str) -> None:
        self.errors.append(text)
        if len(self.errors) <= 20:
            print(f"  ERROR {self.name}: {text}", flush=True)


# ---------------------------------------------------------------------------------------------- measures


@dataclass
class Cell:
    times: list[float] = field(default_factory=list)  # ms
    failed: int = 0
    cpu: float = 0.0  # server CPU seconds over the block
    requests: int = 0

    def add(self, seconds: float | None) -> None:
        self.requests += 1
        if seconds is None:
            self.failed += 1
        else:
            self.times.append(seconds * 1000)

    def q(self, p: int) -> float | None:
        if not self.times:
            return None
        if len(self.times) == 1:
            return self.times[0]
        return statistics.quantiles(self.times, n=100, method="inclusive")[p - 1]


@dataclass
class Row:
    kind: Kind
    route: Route
    mode: str  # cold, warm
    cells: dict[str, Cell]


def measure_route(sides: list[Side], kind: Kind, route: Route, warm_ids: dict[str, str],
                  cold_ids: dict[str, list[str]], runs: int) -> list[Row]:
    what = f"{kind.key} {route.name}"
    # Warm-up on the warm instance: code loading and the first decode are not part of any figure.
    for side in sides:
        side.get(what + " warm-up", kind.path(route, warm_ids[side.name]), route.accept, route.expect)
    rows = []
    for mode, count in (("cold", len(next(iter(cold_ids.values())))), ("warm", runs)):
        cells = {side.name: Cell() for side in sides}
        cpu0 = {side.name: side.srv.cpu_seconds() for side in sides}
        for i in range(count):
            order = sides if i % 2 == 0 else sides[::-1]  # alternate who goes first
            for side in order:
                instance = cold_ids[side.name][i] if mode == "cold" else warm_ids[side.name]
                seconds, _ = side.get(f"{what} {mode}", kind.path(route, instance), route.accept, route.expect)
                cells[side.name].add(seconds)
        for side in sides:
            cells[side.name].cpu = side.srv.cpu_seconds() - cpu0[side.name]
        rows.append(Row(kind, route, mode, cells))
    return rows


def upload_kind(sides: list[Side], kind: Kind, copies: int, uids: random.Random
                ) -> tuple[dict[str, str], dict[str, dict[str, list[str]]]]:
    """The warm instance and ``copies`` cold instances per route, on every server."""
    warm: dict[str, str] = {}
    cold: dict[str, dict[str, list[str]]] = {r.name: {s.name: [] for s in sides} for r in ROUTES}

    def one() -> dict[str, str]:
        data = copy_with_uid(kind.template, "2.25." + str(uids.randrange(10**37, 10**38)))
        return {side.name: side.upload(data)[0] for side in sides}

    t = time.perf_counter()
    warm = one()
    for route in ROUTES:
        for _ in range(copies):
            for name, instance in one().items():
                cold[route.name][name].append(instance)
    n = 1 + copies * len(ROUTES)
    print(f"  {kind.label}: {n} instances of {len(kind.template) / 1e6:.2f} MB uploaded to "
          f"{'+'.join(s.name for s in sides)} in {time.perf_counter() - t:.1f} s", flush=True)
    return warm, cold


def numpy_bench(sides: list[Side], count: int, runs: int, seed: int) -> dict[str, dict]:
    """Upload a series of ``count`` CT instances, then time ``/series/{id}/numpy``."""
    instances = list(generate(instances_per_series=count, seed=seed + 1, prefix="NUMPY"))
    series: dict[str, str] = {}
    t = time.perf_counter()
    for inst in instances:
        data = inst.to_bytes()
        for side in sides:
            series[side.name] = side.upload(data)[1]
    print(f"  numpy series: {count} CT instances uploaded in {time.perf_counter() - t:.1f} s", flush=True)
    out: dict[str, dict] = {side.name: {"times": [], "first": None, "bytes": 0, "shape": None} for side in sides}
    for i in range(runs + 1):
        for side in sides if i % 2 == 0 else sides[::-1]:
            seconds, body = side.get("series numpy", f"/series/{series[side.name]}/numpy", None, None)
            if seconds is None:
                continue
            res = out[side.name]
            res["bytes"] = len(body)
            if i == 0:
                res["first"] = seconds
                try:
                    res["shape"] = np.load(io.BytesIO(body)).shape
                    res["array"] = np.load(io.BytesIO(body))
                except ValueError as exc:
                    side._error(f"series numpy: not a .npy answer: {exc}")
            else:
                res["times"].append(seconds)
    return out


def compare_answers(sides: list[Side], kinds: list[Kind], warm: dict[str, dict[str, str]]) -> list[str]:
    """Decode the answers of both servers on the warm instances and compare them (ours against Orthanc)."""
    from PIL import Image

    notes: list[str] = []
    if len(sides) < 2:
        return notes
    for kind in kinds:
        for route in ROUTES:
            arrays = []
            for side in sides:
                seconds, body = side.get(f"{kind.key} {route.name} compare", kind.path(route, warm[kind.key][side.name]),
                                         route.accept, None)
                if seconds is None:
                    break
                try:
                    arrays.append(np.asarray(Image.open(io.BytesIO(body))).astype(np.int64))
                except OSError as exc:
                    notes.append(f"{kind.key} {route.name}: {side.name} answer is not an image: {exc}")
                    break
            if len(arrays) != 2:
                continue
            a, b = arrays
            if a.shape != b.shape:
                notes.append(f"{kind.key} {route.name}: shapes differ: ours {a.shape}, Orthanc {b.shape}")
                continue
            diff = np.abs(a - b)
            if route.expect == JPEG:
                ok = diff.mean() < 2
            else:
                ok = diff.max() <= 1
            if not ok or diff.max():
                notes.append(f"{kind.key} {route.name}: {'DIFFERENT' if not ok else 'close'}: max |diff| "
                             f"{diff.max()}, mean {diff.mean():.3f}, {np.count_nonzero(diff) / diff.size:.1%} "
                             f"of pixels differ")
    return notes


# ---------------------------------------------------------------------------------------------- report


def _f(v: float | None) -> str:
    return f"{v:8.1f}" if v is not None else f"{'-':>8}"


def print_table(rows: list[Row], names: list[str]) -> None:
    both = "orthanc" in names
    head = (f"{'image':<17} {'route':<18} {'mode':<4} {'n':>3} {'ours p50':>8} {'p95':>8} {'cpu/req':>7}")
    if both:
        head += f" {'orth p50':>8} {'p95':>8} {'cpu/req':>7} {'ratio':>6} {'goal':>5} {'met':>4}"
    head += " errors"
    print(head)
    print("-" * len(head))
    for row in rows:
        ours = row.cells["ours"]
        line = (f"{row.kind.label:<17} {row.route.name:<18} {row.mode:<4} {ours.requests:>3} {_f(ours.q(50))} "
                f"{_f(ours.q(95))} {_cpu(ours):>7}")
        errors = [f"ours {ours.failed}"] if ours.failed else []
        if both:
            orth = row.cells["orthanc"]
            goal = GOAL_WARM if row.mode == "warm" else GOAL_COLD
            ratio = ours.q(50) / orth.q(50) if ours.q(50) and orth.q(50) else None
            met = "-" if ratio is None else ("yes" if ratio <= goal else "NO")
            shown = f"{ratio:.2f}" if ratio is not None else "-"
            line += f" {_f(orth.q(50))} {_f(orth.q(95))} {_cpu(orth):>7} {shown:>6} {goal:>5.1f} {met:>4}"
            if orth.failed:
                errors.append(f"orthanc {orth.failed}")
        print(line + " " + (", ".join(errors) or "-"))
    print("ms: client wall time (p50, p95); cpu/req: server CPU ms per request over the block (10 ms clock "
          "ticks); ratio: ours p50 / Orthanc p50, goal <= 1.0 warm, <= 1.5 cold")


def _cpu(cell: Cell) -> str:
    return f"{cell.cpu * 1000 / cell.requests:.1f}" if cell.requests else "-"


def print_numpy(result: dict[str, dict], count: int) -> None:
    line = []
    rates: dict[str, float] = {}
    for name, res in result.items():
        if res["first"] is None or not res["times"]:
            line.append(f"{name} failed")
            continue
        mb = res["bytes"] / 1e6
        rates[name] = mb / statistics.median(res["times"])
        line.append(f"{name} {mb:.1f} MB, first {mb / res['first']:.0f} MB/s ({res['first'] * 1000:.0f} ms), "
                    f"then median {rates[name]:.0f} MB/s ({statistics.median(res['times']) * 1000:.0f} ms) "
                    f"shape {res['shape']}")
    print(f"/series/{{id}}/numpy, {count} x 512x512 CT: " + "; ".join(line))
    if "ours" in rates and "orthanc" in rates:
        print(f"  throughput ours/Orthanc: {rates['ours'] / rates['orthanc']:.2f} (higher is better)")
        a, b = result["ours"].get("array"), result["orthanc"].get("array")
        if a is not None and b is not None:
            same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
            print(f"  answers: {'identical' if same else f'DIFFER (ours {a.dtype}{a.shape}, Orthanc {b.dtype}{b.shape})'}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--runs", type=int, default=30, help="warm requests per route, after one warm-up")
    ap.add_argument("--cold-copies", type=int, default=8, help="distinct instances per route for the cold figures")
    ap.add_argument("--kinds", default="ct,cr,j2k,jls,mf", help="comma-separated: ct, cr, j2k, jls, mf")
    ap.add_argument("--numpy-count", type=int, default=100, help="instances in the numpy series (0: skip)")
    ap.add_argument("--numpy-runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-orthanc", action="store_true")
    ap.add_argument("--gdcm", default=GDCM_PLUGIN, help="Orthanc's GDCM plugin ('' for none)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background

    wanted = [k.strip() for k in args.kinds.split(",") if k.strip()]
    t = time.perf_counter()
    kinds = make_kinds(args.seed, wanted)
    print(f"synthesized {len(kinds)} images in {time.perf_counter() - t:.1f} s: "
          + ", ".join(f"{k.label} {len(k.template) / 1e6:.2f} MB" for k in kinds))
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")

    extra: dict = {}
    if args.gdcm:
        if os.path.exists(args.gdcm):
            extra["Plugins"] = [args.gdcm]
        else:
            print(f"WARNING: {args.gdcm} not found (apt-get install orthanc-gdcm): Orthanc may not decode JPEG 2000")
    rows: list[Row] = []
    sides: list[Side] = []
    try:
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(ours_server())
            sides.append(Side("ours", ours, Client(ours)))
            if not args.no_orthanc:
                orth = stack.enter_context(orthanc_server(extra=extra))
                sides.append(Side("orthanc", orth, Client(orth)))
                _, _, body, _ = sides[-1].client.call("GET", "/system")
                _, _, plugins, _ = sides[-1].client.call("GET", "/plugins")
                print(f"Orthanc {json.loads(body).get('Version')}, plugins {json.loads(plugins)}")
            for side in sides:
                stack.callback(side.client.close)

            print(f"\nuploading: per image 1 warm instance + {args.cold_copies} cold copies x {len(ROUTES)} routes",
                  flush=True)
            uids = random.Random(f"{args.seed}:copies")
            warm: dict[str, dict[str, str]] = {}
            cold: dict[str, dict[str, dict[str, list[str]]]] = {}
            for kind in kinds:
                warm[kind.key], cold[kind.key] = upload_kind(sides, kind, args.cold_copies, uids)

            print(f"\nmeasuring: {args.cold_copies} cold and {args.runs} warm requests per route", flush=True)
            for kind in kinds:
                t = time.perf_counter()
                for route in ROUTES:
                    rows.extend(measure_route(sides, kind, route, warm[kind.key], cold[kind.key][route.name],
                                              args.runs))
                print(f"  {kind.label}: {time.perf_counter() - t:.1f} s", flush=True)

            numpy_result = None
            if args.numpy_count:
                numpy_result = numpy_bench(sides, args.numpy_count, args.numpy_runs, args.seed)
            notes = compare_answers(sides, kinds, warm)

            print()
            print_table(rows, [s.name for s in sides])
            if numpy_result:
                print()
                print_numpy(numpy_result, args.numpy_count)
            if len(sides) == 2:
                print("\nanswers of ours against Orthanc (warm instances, decoded):")
                for note in notes or ["all identical (JPEG: mean |diff| < 2)"]:
                    print("  " + note)
            print("\nRSS at the end: " + ", ".join(
                f"{s.name} {s.srv.rss_mb():.0f} MB (PSS {s.srv.pss_mb():.0f} MB)" for s in sides))
            for side in sides:
                if side.client.reconnects:
                    print(f"  {side.name}: {side.client.reconnects} keep-alive reconnection(s)")
            for side in sides:
                if side.errors:
                    print(f"\n{side.name}: {len(side.errors)} failed request(s); first ones:")
                    for e in side.errors[:5]:
                        print("  " + e)
                    print(f"  server log tail:\n{side.srv.log_tail(20)}")
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    return 1 if any(s.errors for s in sides) else 0


if __name__ == "__main__":
    sys.exit(main())
