"""Decoded frames to the images Orthanc answers: preview, rendered, image-uint8/16/int16, matlab, numpy.

The arithmetic follows Orthanc's (ImageProcessing, DicomImageDecoder, OrthancRestResources), including its
float32 steps and rounding, because clients and tests compare the pixels exactly:

- preview: min/max stretch of the frame's stored values to 0..255 (float32, rounded half away from zero), then
  MONOCHROME1 inverted; no rescale, no window. Colour as decoded (RGB48 shifted to 8 bits).
- rendered: rescale then window, ``floor(255 * (slope * x + intercept - (wc - ww / 2)) / ww)`` clamped to 0..255
  (float32), window from the file (first value, then the per-frame VOI LUT, else 2^BitsStored), or the
  caller's; nearest-neighbour resize keeping the aspect ratio, with a 5x5 Gaussian first when ``smooth``
  shrinks it; MONOCHROME1 inverted last.
- image-uint8/16/int16: the stored values clamped to the type, no rescale, no inversion; colour refused.
"""

from __future__ import annotations

import enum
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.datadict import tag_for_keyword

from archive.dicom.decode import CannotDecode, DecodedFrame, PixelFormat
from archive.errors import ArchiveError, OrthancError

F32 = np.float32
FLT_EPSILON = float(np.finfo(np.float32).eps)
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"


class Mode(enum.Enum):
    PREVIEW = "preview"
    UINT8 = "image-uint8"
    UINT16 = "image-uint16"
    INT16 = "image-int16"
    RENDERED = "rendered"


@dataclass(frozen=True)
class Image8or16:
    """A frame ready to encode: uint8 grey or RGB, or 16-bit grey (``signed``: int16 written as its bit pattern)."""

    pixels: np.ndarray
    signed: bool = False


def _iround(values: np.ndarray) -> np.ndarray:
    """boost::math::iround: to nearest, halves away from zero, exact on float32."""
    magnitude = np.abs(values)
    floor = np.floor(magnitude)
    rounded = floor + (magnitude - floor >= F32(0.5))
    return np.copysign(rounded, values)


def _shift_scale_round(x: np.ndarray, a: np.float32, b: np.float32, low: int, high: int) -> np.ndarray:
    v = (a * x.astype(F32)) + b  # float32 throughout, no fused multiply-add, as Orthanc's build
    out = _iround(np.clip(v, low, high))
    return out


def preview(frame: DecodedFrame, *, monochrome1: bool) -> np.ndarray:
    """Orthanc's /preview pixels: uint8 (H, W) or (H, W, 3)."""
    fmt, pixels = frame.format, frame.pixels
    if fmt is PixelFormat.RGB24:
        return pixels
    if fmt is PixelFormat.RGB48:
        return (pixels >> 8).astype(np.uint8)
    if fmt is PixelFormat.GRAYSCALE32:
        raise CannotDecode("No preview of 32-bit images")
    low, high = int(pixels.min()), int(pixels.max())
    if low == high:
        out = np.zeros(pixels.shape, dtype=np.uint8)
    else:
        a = F32(F32(255.0) / F32(high - low))
        b = F32(F32(-low) * a)
        if abs(float(b)) <= 10 * FLT_EPSILON and abs(float(a) - 1) <= 10 * FLT_EPSILON:
            out = pixels.astype(np.uint8)
        else:
            limits = np.iinfo(pixels.dtype)
            out = _shift_scale_round(pixels, a, b, limits.min, limits.max).astype(np.uint8)
    return 255 - out if monochrome1 else out


def truncated(frame: DecodedFrame, mode: Mode) -> Image8or16:
    """image-uint8 / image-uint16 / image-int16: the stored values clamped to the type (ImageProcessing::Convert)."""
    if frame.format.is_color or frame.format is PixelFormat.GRAYSCALE32:
        raise CannotDecode(f"No {mode.value} of {frame.format.name} images")
    target = {Mode.UINT8: np.uint8, Mode.UINT16: np.uint16, Mode.INT16: np.int16}[mode]
    limits = np.iinfo(target)
    pixels = np.clip(frame.pixels, limits.min, limits.max).astype(target)
    return Image8or16(pixels, signed=mode is Mode.INT16)


@dataclass(frozen=True)
class Windowing:
    center: float
    width: float
    slope: float = 1.0
    intercept: float = 0.0


def _first_double(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _per_frame_item(ds, frame: int, sequence: str):
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups or frame >= len(groups):
        return None
    inner = groups[frame].get(sequence)
    return inner[0] if inner else None


def default_windowing(ds, frame: int) -> Windowing:
    """Orthanc's window and rescale of a frame (ParsedDicomFile::GetDefaultWindowing and GetRescale); elements
    the file encodes as UN do not count (DCMTK does not parse them)."""
    unknown = getattr(ds, "_un_tags", frozenset())

    def top(keyword: str):
        tag = tag_for_keyword(keyword)
        return None if tag in unknown else ds.get(keyword)

    slope, intercept = 1.0, 0.0
    if str(ds.get("SOPClassUID", "")) != RT_DOSE:
        s, i = _first_double(top("RescaleSlope")), _first_double(top("RescaleIntercept"))
        if s is None or i is None:
            item = _per_frame_item(ds, frame, "PixelValueTransformationSequence")
            if item is not None:
                s, i = _first_double(item.get("RescaleSlope")), _first_double(item.get("RescaleIntercept"))
        if s is not None and i is not None:
            slope, intercept = s, i
    center, width = _first_double(top("WindowCenter")), _first_double(top("WindowWidth"))
    if center is None or width is None:
        item = _per_frame_item(ds, frame, "FrameVOILUTSequence")
        if item is not None:
            center, width = _first_double(item.get("WindowCenter")), _first_double(item.get("WindowWidth"))
    if center is None or width is None:
        try:
            bits = int(ds.get("BitsStored") or 8)
        except (TypeError, ValueError):
            bits = 8
        width = float(2 ** bits)
        center = width / 2
    return Windowing(center=center, width=width, slope=slope, intercept=intercept)


def target_size(width: int, height: int, *, want_width: int, want_height: int) -> tuple[int, int]:
    """The size /rendered answers: the aspect ratio kept, upscaling allowed, 0 meaning not given."""
    if not width or not height:
        return width, height
    ratio = F32(1)
    if want_width and want_height:
        ratio = min(F32(want_width) / F32(width), F32(want_height) / F32(height))
    elif want_width:
        ratio = F32(want_width) / F32(width)
    elif want_height:
        ratio = F32(want_height) / F32(height)
    return int(_iround(np.array([ratio * F32(width)]))[0]), int(_iround(np.array([ratio * F32(height)]))[0])


def _resize_nearest(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    rows, columns = pixels.shape[:2]
    xs = np.floor((np.arange(width, dtype=F32) + F32(0.5)) * (F32(columns) / F32(width))).astype(np.int64)
    ys = np.floor((np.arange(height, dtype=F32) + F32(0.5)) * (F32(rows) / F32(height))).astype(np.int64)
    return pixels[np.clip(ys, 0, rows - 1)][:, np.clip(xs, 0, columns - 1)]


def _smooth(pixels: np.ndarray) -> np.ndarray:
    """Orthanc's SmoothGaussian5x5: [1 4 6 4 1] both ways, edges replicated, / 256, truncated."""
    kernel = (1, 4, 6, 4, 1)
    data = pixels.astype(F32)
    padded = np.pad(data, [(0, 0), (2, 2)] + [(0, 0)] * (data.ndim - 2), mode="edge")
    horizontal = sum(F32(k) * padded[:, i:i + data.shape[1]] for i, k in enumerate(kernel))
    padded = np.pad(horizontal, [(2, 2), (0, 0)] + [(0, 0)] * (data.ndim - 2), mode="edge")
    vertical = sum(F32(k) * padded[i:i + data.shape[0]] for i, k in enumerate(kernel)) * F32(1 / 256)
    return np.clip(vertical, 0, 255).astype(np.uint8)


def rendered(frame: DecodedFrame, *, windowing: Windowing, monochrome1: bool, width: int = 0, height: int = 0,
             smooth: bool = False) -> np.ndarray:
    """Orthanc's /rendered pixels: uint8 (H, W) or (H, W, 3)."""
    tw, th = target_size(frame.width, frame.height, want_width=width, want_height=height)
    resize = (tw, th) != (frame.width, frame.height)
    shrink = tw < frame.width or th < frame.height
    if frame.format.is_color:
        if frame.format is PixelFormat.RGB48:
            if resize or smooth:
                raise CannotDecode("Cannot resize a 48-bit colour image")
            return (frame.pixels >> 8).astype(np.uint8)
        out = frame.pixels
        if resize:
            out = _resize_nearest(_smooth(out) if smooth and shrink else out, tw, th)
        return out
    ww = max(windowing.width, 1.0)
    slope = windowing.slope if abs(windowing.slope) > 0.0001 else 0.0001
    scaling = 255.0 * slope / ww
    offset = (windowing.intercept - windowing.center + ww / 2.0) / slope
    a = F32(scaling)
    b = F32(F32(offset) * a)
    v = (a * frame.pixels.astype(F32)) + b
    out = np.floor(np.clip(v, 0, 255)).astype(np.uint8)
    if resize:
        out = _resize_nearest(_smooth(out) if smooth and shrink else out, tw, th)
    return 255 - out if monochrome1 else out


# -- encoders ------------------------------------------------------------------------------------------------

def png_encode(pixels: np.ndarray, *, signed: bool = False) -> bytes:
    """PNG (PNG spec, ISO/IEC 15948) of 8-bit grey, 8-bit RGB or 16-bit grey (int16 as its two's complement
    bit pattern), written with zlib directly: rows unfiltered, zlib level 1. Clients compare pixels, not PNG
    bytes, and Pillow's adaptive row filters made encoding 4-7 times slower for a few percent of size."""
    height, width = pixels.shape[:2]
    if pixels.dtype == np.uint8:
        rows = np.ascontiguousarray(pixels).reshape(height, -1)
        depth, colour = 8, 2 if pixels.ndim == 3 else 0
    else:
        words = pixels.view(np.uint16) if signed else pixels.astype(np.uint16, copy=False)
        rows = np.ascontiguousarray(words, dtype=">u2").view(np.uint8).reshape(height, -1)
        depth, colour = 16, 0
    scanlines = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)  # filter byte 0 (None) on each row
    scanlines[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(scanlines.data, 1)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def jpeg_encode(pixels: np.ndarray, *, quality: int) -> bytes:
    if pixels.dtype != np.uint8:
        raise ValueError("JPEG holds 8-bit images only")
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def pam_encode(pixels: np.ndarray, *, signed: bool = False) -> bytes:
    """Netpbm PAM, 16-bit samples big-endian (Orthanc's PamWriter)."""
    depth = 3 if pixels.ndim == 3 else 1
    maxval = 255 if pixels.dtype == np.uint8 else 65535
    header = (f"P7\nWIDTH {pixels.shape[1]}\nHEIGHT {pixels.shape[0]}\nDEPTH {depth}\nMAXVAL {maxval}\n"
              f"TUPLTYPE {'RGB' if depth == 3 else 'GRAYSCALE'}\nENDHDR\n").encode("ascii")
    body = pixels if pixels.dtype == np.uint8 else (pixels.view(np.uint16) if signed else pixels).astype(">u2")
    return header + np.ascontiguousarray(body).tobytes()


def matlab_text(frame: DecodedFrame) -> str:
    """Orthanc's ToMatlabString: ``double([ 1 2 ; 3 4 ])`` for grey, a permuted reshape for RGB."""
    if frame.format is PixelFormat.RGB24:
        values = " ".join(map(str, frame.pixels.reshape(-1).tolist()))
        return f"double(permute(reshape([ {values} ], [ 3 {frame.height} {frame.width} ]), [ 3 2 1 ]))"
    if frame.format is PixelFormat.RGB48:
        raise CannotDecode("No Matlab export of 48-bit colour images")
    rows = [" ".join(map(str, row)) + " " for row in frame.pixels.tolist()]
    return "double([ " + "; ".join(rows) + "])"


def numpy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """NPY 1.0 header as Orthanc writes it (NumpyWriter): padded with spaces so the data starts at a multiple
    of 64, the first dimension followed by ", ", the others by ","."""
    dims = f"{shape[0]}, " + ",".join(str(d) for d in shape[1:]) if len(shape) == 4 else ",".join(map(str, shape))
    text = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }"
    total = 10 + len(text) + 1
    text += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("ascii")


@dataclass(frozen=True)
class NumpyFrame:
    """A decoded frame and the rescale /numpy applies to it (Orthanc's GetRescale: 1 and 0 when absent)."""

    frame: DecodedFrame
    slope: float = 1.0
    intercept: float = 0.0


def _numpy_type(frame: DecodedFrame, *, rescale: bool) -> tuple[np.dtype, int]:
    """The dtype and channels Orthanc's /numpy writes a frame with: float32 slope * x + intercept for grey
    when rescaling, the stored values otherwise; RGB24 always as is."""
    if frame.format is PixelFormat.RGB24:
        return np.dtype(np.uint8), 3
    if rescale:
        if frame.format is PixelFormat.RGB48:
            raise CannotDecode("No rescale of 48-bit colour images")
        return np.dtype("<f4"), 1
    if frame.format in (PixelFormat.GRAYSCALE32, PixelFormat.RGB48):
        raise CannotDecode(f"No numpy export of {frame.format.name} images")
    return frame.format.dtype, 1


def numpy_file(frames: list[NumpyFrame], *, rescale: bool, stacked: bool) -> bytearray:
    """The .npy of one frame (H, W, C) or of frames stacked (N, H, W, C), as Orthanc writes it. Each frame is
    converted straight into the answer's buffer: a series is often a hundred megabytes."""
    if not frames:
        raise CannotDecode("Empty DICOM instance")
    first = frames[0].frame
    dtype, channels = _numpy_type(first, rescale=rescale)
    for item in frames[1:]:
        if item.frame.pixels.shape != first.pixels.shape:
            raise ArchiveError(orthanc_error=OrthancError.INCOMPATIBLE_IMAGE_SIZE)
        if item.frame.format is not first.format:
            raise ArchiveError(orthanc_error=OrthancError.INCOMPATIBLE_IMAGE_FORMAT)
    one = (first.height, first.width, channels)
    shape = ((len(frames),) + one) if stacked else one
    descr = "<u1" if dtype.itemsize == 1 else dtype.str
    header = numpy_header(descr, shape)
    size = first.height * first.width * channels
    buffer = bytearray(len(header) + len(frames) * size * dtype.itemsize)
    buffer[:len(header)] = header
    for index, item in enumerate(frames):
        target = np.frombuffer(buffer, dtype=dtype, count=size, offset=len(header) + index * size * dtype.itemsize)
        source = item.frame.pixels.reshape(-1)
        identity = abs(item.intercept) <= 10 * FLT_EPSILON and abs(item.slope - 1) <= 10 * FLT_EPSILON
        if dtype.kind == "f" and not identity:
            np.multiply(source, F32(item.slope), out=target, dtype=F32)  # float32 as Orthanc's ShiftScale2
            np.add(target, F32(item.intercept), out=target)
        else:
            target[...] = source
    return buffer


def numpy_compressed(npy: bytes | bytearray) -> bytes:
    """The .npz Orthanc writes with ?compress: a ZIP holding one entry named ``arr_0``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("arr_0", bytes(npy))
    return out.getvalue()
