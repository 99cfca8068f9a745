"""Orthanc's /series/{id}/ordered-slices: instances sorted in 3D when their geometry allows it,
else by their index in the series; multi-frame instances contribute one slice per frame."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset


def _floats(value, n: int) -> list[float] | None:
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _normal(orientation: list[float]) -> tuple[float, float, float]:
    ax, ay, az, bx, by, bz = orientation
    return (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)


def _frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _index(ds: Dataset) -> int | None:
    for keyword in ("InstanceNumber", "ImageIndex"):
        try:
            return int(str(ds.get(keyword)).strip())
        except (TypeError, ValueError):
            continue
    return None


def ordered_slices(items: Sequence[tuple[str, Dataset]]) -> dict:
    """Sort (public_id, dataset) pairs as Orthanc's SliceOrdering and describe the result."""
    geometry = []
    for public_id, ds in items:
        position = _floats(ds.get("ImagePositionPatient"), 3)
        orientation = _floats(ds.get("ImageOrientationPatient"), 6)
        geometry.append((public_id, ds, position, orientation))

    ordered: list[tuple[str, Dataset]]
    kind = "Sequence"
    normals = {tuple(round(c, 4) for c in _normal(o)) for _, _, p, o in geometry if o is not None}
    if (len(items) > 1 and all(p is not None and o is not None for _, _, p, o in geometry)
            and len(normals) == 1):
        n = _normal(geometry[0][3])
        keyed = [(sum(a * b for a, b in zip(n, p, strict=True)), pid, ds) for pid, ds, p, _ in geometry]
        distances = [k[0] for k in keyed]
        if len(set(round(d, 6) for d in distances)) == len(distances):
            keyed.sort(key=lambda k: k[0])
            ordered = [(pid, ds) for _, pid, ds in keyed]
            kind = "Volume"
        else:
            ordered = _by_index(items)
    else:
        ordered = _by_index(items)

    dicom, slices, short = [], [], []
    for public_id, ds in ordered:
        frames = _frames(ds)
        dicom.append(f"/instances/{public_id}/file")
        slices.extend(f"/instances/{public_id}/frames/{i}" for i in range(frames))
        short.append([public_id, 0, frames])
    return {"Dicom": dicom, "Slices": slices, "SlicesShort": short, "Type": kind}


def _by_index(items: Sequence[tuple[str, Dataset]]) -> list[tuple[str, Dataset]]:
    indexed = [(_index(ds), pid, ds) for pid, ds in items]
    if all(i is not None for i, _, _ in indexed):
        indexed.sort(key=lambda k: k[0])
    return [(pid, ds) for _, pid, ds in indexed]
