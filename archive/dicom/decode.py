"""Frames of pixel data as Orthanc decodes them: stored values, no rescale, no window, no inversion.

Orthanc (DicomImageDecoder, DicomImageInformation) turns a frame into one of six pixel formats, or refuses it;
every image route starts from that. The rules are kept here because clients compare pixels byte for byte:

- Uncompressed frames are read straight from the stored bytes. Unpacked (not planar) frames are reinterpreted as
  the target type and, for unsigned grey, shifted right by HighBit + 1 - BitsStored, with no masking of the bits
  above BitsStored (Orthanc's fast path: overlay bits in the high bits stay). Planar and 1-bit frames are read
  sample by sample, masked, sign-extended and clamped.
- Compressed frames (JPEG, JPEG-LS, JPEG 2000, RLE, deflate) go through pydicom's decoders (pylibjpeg-openjpeg,
  pylibjpeg-rle, pyjpegls, python-gdcm, Pillow); their photometric interpretation no longer decides the format
  (DCMTK has already turned YBR JPEG into RGB), only samples, bits and signedness.
- PALETTE COLOR is expanded through its lookup tables to RGB (8-bit indices) or RGB48 (16-bit).

What Orthanc refuses is refused here too, with the reason, so that the routes answer as Orthanc does (415 on
the image routes): signed 8-bit, signed 32-bit, uncompressed YBR, multi-frame palette images (1.13 only),
geometry beyond 65,535 rows or columns, a frame larger than MAX_FRAME_BYTES, pixel data shorter than the
frames it declares, no pixel data at all.
"""

from __future__ import annotations

import dataclasses
import enum
import io
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import UID

from archive.errors import ArchiveError, BadFileFormat, NotImplementedYet, ParameterOutOfRange

# Orthanc 1.12.11 refuses frames over 1 GB (CVE fixes on oversized images); memory stays bounded.
MAX_FRAME_BYTES = 1 << 30
MAX_DIMENSION = 65535

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
# PS3.5 A.4.12-A.4.14: a video stream is one frame whatever NumberOfFrames says (Orthanc DicomFrameIndex).
VIDEO_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101",
    "1.2.840.10008.1.2.4.101.1", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.102.1",
    "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.103.1", "1.2.840.10008.1.2.4.104",
    "1.2.840.10008.1.2.4.104.1", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.105.1",
    "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.106.1", "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108",
})


class PixelFormat(enum.Enum):
    """Orthanc's decoded formats (PixelFormat_*), with the numpy type of one sample and the samples per pixel."""

    GRAYSCALE8 = ("u1", 1)
    GRAYSCALE16 = ("<u2", 1)
    SIGNED_GRAYSCALE16 = ("<i2", 1)
    GRAYSCALE32 = ("<u4", 1)
    RGB24 = ("u1", 3)
    RGB48 = ("<u2", 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.value[0])

    @property
    def channels(self) -> int:
        return self.value[1]

    @property
    def is_color(self) -> bool:
        return self.channels == 3


class CannotDecode(ArchiveError):
    """The frame cannot be decoded: 415 on the image routes; matlab and numpy pass Orthanc's error on (its
    decoder's: NotImplemented for what it does not support, BadFileFormat for a broken or pixel-less file)."""

    orthanc_error = NotImplementedYet.orthanc_error


def _bad_file(details: str) -> CannotDecode:
    return CannotDecode(details, orthanc_error=BadFileFormat.orthanc_error)


@dataclass(frozen=True)
class DecodedFrame:
    pixels: np.ndarray   # (rows, columns) or (rows, columns, 3), of format.dtype
    format: PixelFormat

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


@dataclass(frozen=True)
class ImageInfo:
    """The image pixel module as Orthanc validates it (DicomImageInformation)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool
    planar: bool
    photometric: str

    @property
    def frame_bytes(self) -> int:
        if self.bits_allocated == 1:
            return self.rows * self.columns // 8
        return self.rows * self.columns * self.samples * (self.bits_allocated // 8)


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CannotDecode(f"Bad value for {keyword}") from None


def transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def frames_count(ds: Dataset) -> int:
    """How many frames Orthanc lists (DicomFrameIndex::GetFramesCount): 1 for video and when NumberOfFrames is
    absent (even without pixel data); a NumberOfFrames that is not a number is a bad file."""
    if transfer_syntax(ds) in VIDEO_SYNTAXES:
        return 1
    value = ds.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise BadFileFormat() from None
    if count < 0:
        raise BadFileFormat()
    return count


def image_info(ds: Dataset, *, pixel_data: bool = True) -> ImageInfo:
    """The geometry, validated as Orthanc does before it decodes anything; CannotDecode otherwise. Orthanc's
    order shows in its errors: no BitsAllocated (not an image) is NotImplemented, then missing pixel data
    (``pixel_data``: required) is a bad file, then any other bad geometry is NotImplemented again."""
    bits_allocated = _int(ds, "BitsAllocated")
    if bits_allocated is None:
        raise CannotDecode("Not an image: no BitsAllocated")
    if pixel_data and "PixelData" not in ds and not is_psmct_rle1(ds):
        raise _bad_file("No pixel data")
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples = _int(ds, "SamplesPerPixel", 1)
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    high_bit = _int(ds, "HighBit", bits_stored - 1)
    planar = _int(ds, "PlanarConfiguration", 0)
    frames = frames_count(ds)
    if rows > MAX_DIMENSION or columns > MAX_DIMENSION:
        raise _bad_file(f"Image size {columns}x{rows} out of range")  # 1.12.11's fix: a bad file
    if rows <= 0 or columns <= 0:
        raise CannotDecode(f"Image size {columns}x{rows}")
    if bits_allocated not in (1, 8, 16, 24, 32) or not 0 < bits_stored <= bits_allocated:
        raise CannotDecode(f"Unsupported bit depth: {bits_stored} stored in {bits_allocated}")
    if frames == 0 or planar not in (0, 1) or samples == 0:
        raise CannotDecode("Bad image pixel module")
    info = ImageInfo(rows=rows, columns=columns, frames=frames, samples=samples, bits_allocated=bits_allocated,
                     bits_stored=bits_stored, high_bit=high_bit, signed=_int(ds, "PixelRepresentation", 0) == 1,
                     planar=planar == 1, photometric=str(ds.get("PhotometricInterpretation", "")).strip().upper())
    if info.frame_bytes > MAX_FRAME_BYTES:
        raise _bad_file(f"Frame of {info.frame_bytes} bytes is too large")
    return info


def pixel_format(info: ImageInfo, *, ignore_photometric: bool) -> PixelFormat:
    """Orthanc's DicomImageInformation::ExtractPixelFormat: the format a frame decodes to, or CannotDecode."""
    pi = info.photometric
    if pi == "PALETTE COLOR" and info.samples == 1 and not info.signed:
        if info.bits_stored == 8:
            return PixelFormat.RGB24
        if info.bits_stored == 16:
            return PixelFormat.RGB48
    if info.samples == 1 and (ignore_photometric or pi in ("MONOCHROME1", "MONOCHROME2")):
        if info.bits_stored == 8 and not info.signed:
            return PixelFormat.GRAYSCALE8
        if info.bits_allocated == 16:
            return PixelFormat.SIGNED_GRAYSCALE16 if info.signed else PixelFormat.GRAYSCALE16
        if info.bits_allocated == 32 and not info.signed:
            return PixelFormat.GRAYSCALE32
        if info.bits_stored == 1 and not info.signed:
            return PixelFormat.GRAYSCALE8
    if info.samples == 3 and not info.signed and (ignore_photometric or pi == "RGB"):
        if info.bits_stored == 8:
            return PixelFormat.RGB24
        if info.bits_stored == 16:
            return PixelFormat.RGB48
    raise CannotDecode(f"Unsupported image: {pi}, {info.samples} sample(s), {info.bits_stored} bits stored in "
                       f"{info.bits_allocated}, {'signed' if info.signed else 'unsigned'}")


PSMCT_COMPRESSION_TYPE = 0x07A11011   # ELSCINT1 private: "Tamar Compression Type"
PSMCT_CONTENT = 0x07A1100A            # ELSCINT1 private: "Tamar Compressed Pixel Data"


def is_psmct_rle1(ds: Dataset) -> bool:
    """Philips/Elscint CT without Pixel Data but with its private PMSCT_RLE1 compression, which Orthanc reads."""
    element = ds.get(PSMCT_COMPRESSION_TYPE)
    if element is None or PSMCT_CONTENT not in ds:
        return False
    value = element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip(" \0") == "PMSCT_RLE1"


def psmct_rle1_pixels(ds: Dataset) -> bytes:
    """The 16-bit little-endian pixels of a PMSCT_RLE1 image: a run-length pass (0xA5 count value: the value
    count + 1 times), then a delta pass (0x5A low high: an absolute value; any other byte: a signed step
    from the previous value). The scheme is GDCM's rle2img example; Orthanc decodes it the same way."""
    data = ds[PSMCT_CONTENT].value
    runs = bytearray()
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0xA5 and i + 2 < n:
            runs += bytes([data[i + 2]]) * (data[i + 1] + 1)
            i += 3
        else:
            runs.append(data[i])
            i += 1
    values = []
    previous = 0
    i, n = 0, len(runs)
    while i < n:
        if runs[i] == 0x5A and i + 2 < n:
            value = runs[i + 1] | (runs[i + 2] << 8)
            i += 3
        else:
            step = runs[i] - 256 if runs[i] >= 128 else runs[i]
            value = (previous + step) & 0xFFFF
            i += 1
        values.append(value)
        previous = value
    return np.array(values, dtype="<u2").tobytes()


def _native_pixels(ds: Dataset) -> bytes:
    return ds.PixelData if "PixelData" in ds else psmct_rle1_pixels(ds)


def frame_decode(ds: Dataset, frame: int) -> DecodedFrame:
    """Frame ``frame`` (0-based) of ``ds``, in Orthanc's format; CannotDecode (or ParameterOutOfRange for a frame
    beyond NumberOfFrames) otherwise. Never raises anything else: codecs fail in many ways on bad files."""
    info = image_info(ds)
    compressed = "PixelData" in ds and ds["PixelData"].is_undefined_length
    if not 0 <= frame < info.frames:
        # Orthanc's uncompressed path checks the index itself (ParameterOutOfRange); compressed data and
        # uncompressed YBR go to DCMTK's codecs or the GDCM plugin, which just fail.
        if compressed or info.photometric == "YBR_FULL":
            raise _bad_file(f"Frame {frame} out of range (the instance has {info.frames})")
        raise ParameterOutOfRange(f"Frame {frame} out of range (the instance has {info.frames})")
    try:
        if compressed:
            return _decode_compressed(ds, info, frame)
        return _decode_native(ds, info, frame)
    except ArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - a codec's error on a bad file is "cannot decode", never a 500
        raise CannotDecode(f"Cannot decode frame {frame}: {type(exc).__name__}: {exc}") from None


# -- uncompressed ---------------------------------------------------------------------------------------------

def _decode_native(ds: Dataset, info: ImageInfo, frame: int) -> DecodedFrame:
    data = _native_pixels(ds)
    if info.photometric == "PALETTE COLOR":
        return _palette(ds, info, data)
    if info.photometric == "YBR_FULL" and info.samples == 3 and info.bits_stored == 8 and not info.signed:
        # DCMTK refuses it, Orthanc's GDCM plugin converts it (PS3.3 C.7.6.3.1.2); so do we, as GDCM does.
        stored = _decode_native(ds, dataclasses.replace(info, photometric="RGB"), frame)
        return DecodedFrame(ybr_full_to_rgb(stored.pixels), PixelFormat.RGB24)
    fmt = pixel_format(info, ignore_photometric=False)
    size = info.frame_bytes
    if len(data) < info.frames * size:
        raise _bad_file("The pixel data is shorter than the frames it declares")
    raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=frame * size)
    if info.bits_allocated == 1:
        bits = np.unpackbits(raw, bitorder="little")[:info.rows * info.columns]
        return DecodedFrame((bits * np.uint8(255)).reshape(info.rows, info.columns), fmt)
    if not info.planar:
        # Orthanc's fast path: the bytes as the target type, grey shifted down to its stored bits, unmasked.
        sample = np.dtype(f"<{'i' if info.signed else 'u'}{info.bits_allocated // 8}")
        values = raw.view(sample)
        shift = info.high_bit + 1 - info.bits_stored
        if fmt in (PixelFormat.GRAYSCALE8, PixelFormat.GRAYSCALE16) and shift > 0:
            values = values >> shift
        pixels = values.astype(fmt.dtype, copy=False)
        shape = (info.rows, info.columns, 3) if fmt.is_color else (info.rows, info.columns)
        return DecodedFrame(pixels.reshape(shape), fmt)
    return DecodedFrame(_planar(raw, info, fmt), fmt)


def _planar(raw: np.ndarray, info: ImageInfo, fmt: PixelFormat) -> np.ndarray:
    """Orthanc's sample-by-sample accessor: shift, mask, sign-extend from BitsStored, clamp; planes interleaved."""
    words = raw.view(f"<u{info.bits_allocated // 8}").astype(np.int64)
    words >>= info.high_bit + 1 - info.bits_stored
    if info.signed:
        mask = (1 << (info.bits_stored - 1)) - 1
        negative = (words >> (info.bits_stored - 1)) & 1
        values = np.where(negative == 1, -mask + (words & mask) - 1, words & mask)
    else:
        values = words & ((1 << info.bits_stored) - 1)
    limits = np.iinfo(fmt.dtype)
    values = np.clip(values, limits.min, limits.max).astype(fmt.dtype)
    planes = values.reshape(info.samples, info.rows, info.columns)
    return np.ascontiguousarray(planes.transpose(1, 2, 0)) if info.samples == 3 else planes[0]


def _palette(ds: Dataset, info: ImageInfo, indexes: bytes) -> DecodedFrame:
    """PALETTE COLOR through its three lookup tables (Orthanc's DecodeLookupTable, PS3.3 C.7.6.3.1.5)."""
    fmt = pixel_format(info, ignore_photometric=False)
    if info.frames != 1:
        raise CannotDecode("Multi-frame palette images are not supported (Orthanc 1.13 adds them)")
    if info.planar:
        raise CannotDecode("Planar palette image")
    colours = ("Red", "Green", "Blue")
    descriptors = [ds.get(f"{c}PaletteColorLookupTableDescriptor") for c in colours]
    tables = [ds.get(f"{c}PaletteColorLookupTableData") for c in colours]
    if any(d is None for d in descriptors) or any(t is None for t in tables):
        raise CannotDecode("Missing palette lookup tables")
    if len({tuple(d) for d in descriptors}) != 1 or len(descriptors[0]) != 3:
        raise CannotDecode("The three palette descriptors differ")
    size, first, bits = (int(v) for v in descriptors[0])
    pixels = info.rows * info.columns
    if fmt is PixelFormat.RGB24:
        size = size or 65536
        if first != 0 or bits < 8 or any(len(t) != 2 * size for t in tables):
            raise CannotDecode("Unsupported palette lookup table")
        index = np.frombuffer(indexes, dtype=np.uint8)
        if len(index) < pixels:
            raise CannotDecode("Fewer palette indexes than pixels")
        index = index[:pixels]  # an odd number of pixels has a padding byte
        if int(index.max(initial=0)) >= size:
            raise CannotDecode("Palette index beyond the lookup table")
        luts = [(np.frombuffer(t, dtype="<u2") >> (bits - 8)).astype(np.uint8) for t in tables]
        rgb = np.stack([lut[index] for lut in luts], axis=-1)
        return DecodedFrame(rgb.reshape(info.rows, info.columns, 3), fmt)
    if (size, first, bits) != (0, 0, 16) or any(len(t) != 2 * 65536 for t in tables):
        raise CannotDecode("Unsupported 16-bit palette lookup table")
    index = np.frombuffer(indexes, dtype="<u2", count=pixels)
    luts = [np.frombuffer(t, dtype="<u2") for t in tables]
    rgb = np.stack([lut[index] for lut in luts], axis=-1)
    return DecodedFrame(rgb.reshape(info.rows, info.columns, 3).astype("<u2"), fmt)


# -- compressed -----------------------------------------------------------------------------------------------

def _decode_compressed(ds: Dataset, info: ImageInfo, frame: int) -> DecodedFrame:
    from pydicom.pixels import pixel_array

    syntax = UID(transfer_syntax(ds))
    if not syntax.is_compressed:
        raise CannotDecode(f"Encapsulated pixel data in the uncompressed transfer syntax {syntax}")
    rle = syntax == pydicom.uid.RLELossless
    if syntax == JPEG_EXTENDED_12 and info.bits_stored > 8:
        array = _dcmtk_decode_jpeg(ds, info, frame)
    else:
        # JPEG: YBR comes back as RGB (DCMTK converts it too); RLE: kept as stored, converted below as Orthanc does.
        array = pixel_array(ds, index=frame, raw=rle)
    if info.photometric == "PALETTE COLOR":
        return _palette(ds, info, np.ascontiguousarray(array).astype(np.uint8).tobytes())
    fmt = pixel_format(info, ignore_photometric=True)
    expected = (info.rows, info.columns, 3) if fmt.is_color else (info.rows, info.columns)
    if array.shape != expected:
        raise CannotDecode(f"The codec returned {array.shape}, expected {expected}")
    if fmt is PixelFormat.SIGNED_GRAYSCALE16 or fmt is PixelFormat.GRAYSCALE16:
        limits = np.iinfo(fmt.dtype)
        array = np.clip(array, limits.min, limits.max)
    pixels = np.ascontiguousarray(array.astype(fmt.dtype, copy=False))
    if rle and fmt is PixelFormat.RGB24 and info.photometric == "YBR_FULL" and info.planar:
        pixels = ybr_full_to_rgb(pixels)
    return DecodedFrame(pixels, fmt)


JPEG_EXTENDED_12 = "1.2.840.10008.1.2.4.51"
DCMTK_TIMEOUT = 60.0


def _dcmtk_decode_jpeg(ds: Dataset, info: ImageInfo, frame: int) -> np.ndarray:
    """12-bit JPEG (process 2 & 4), which no permissively licensed Python codec decodes (python-gdcm's wheel is
    built without it; pylibjpeg-libjpeg is GPL): DCMTK's dcmdjpeg, the decoder Orthanc itself uses, run on a
    file holding only this frame's pixel module. Refused with the reason when DCMTK is not installed."""
    import shutil
    import subprocess
    import tempfile

    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate

    tool = shutil.which("dcmdjpeg")
    if tool is None:
        raise CannotDecode("12-bit JPEG needs DCMTK's dcmdjpeg (apt-get install dcmtk)")
    fragments = next(f for i, f in enumerate(generate_fragmented_frames(ds.PixelData, number_of_frames=info.frames))
                     if i == frame)
    single = Dataset()
    single.file_meta = FileMetaDataset()
    single.file_meta.TransferSyntaxUID = UID(JPEG_EXTENDED_12)
    single.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    single.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3")
    single.SOPClassUID, single.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3"
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation"):
        if keyword in ds:
            setattr(single, keyword, ds[keyword].value)
    single.PixelData = encapsulate([b"".join(fragments)])
    single["PixelData"].VR = "OB"
    with tempfile.TemporaryDirectory(prefix="dcmdjpeg-") as folder:
        source, target = f"{folder}/in.dcm", f"{folder}/out.dcm"
        single.save_as(source, enforce_file_format=True)
        done = subprocess.run([tool, source, target], capture_output=True, timeout=DCMTK_TIMEOUT)
        if done.returncode != 0:
            raise CannotDecode(f"dcmdjpeg failed: {done.stderr.decode(errors='replace').strip()[:200]}")
        decoded = pydicom.dcmread(target)
    one = dataclasses.replace(info, frames=1, photometric="MONOCHROME2" if info.samples == 1 else "RGB")
    return _decode_native(decoded, one, 0).pixels


def ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """PS3.3 C.7.6.3.1.2 YBR_FULL to RGB in float32, clamped then truncated (Orthanc's conversion after RLE)."""
    y, cb, cr = (ybr[..., k].astype(np.float32) for k in range(3))
    cb -= np.float32(128)
    cr -= np.float32(128)
    r = y + np.float32(1.402) * cr
    g = y - np.float32(0.344136) * cb - np.float32(0.714136) * cr
    b = y + np.float32(1.772) * cb
    return np.stack([np.clip(c, 0, 255).astype(np.uint8) for c in (r, g, b)], axis=-1)


# -- raw frames -----------------------------------------------------------------------------------------------

def frame_raw(ds: Dataset, frame: int) -> tuple[bytes, str]:
    """The stored bytes of one frame and their Content-Type (Orthanc's /frames/{n}/raw): a slice of native pixel
    data, or the fragments of an encapsulated frame joined."""
    info = image_info(ds, pixel_data=False)
    count = frames_count(ds)
    if not 0 <= frame < count:      # checked first, as Orthanc 1.10.1 (a file without pixels, frame 1 of 1)
        raise ParameterOutOfRange()
    if "PixelData" not in ds and not is_psmct_rle1(ds):
        raise BadFileFormat("Cannot access a raw frame")
    syntax = transfer_syntax(ds)
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        content_type = ("image/jpeg" if syntax == JPEG_BASELINE else
                        "image/jp2" if syntax in JPEG_2000 else "application/octet-stream")
        for index, fragments in enumerate(generate_fragmented_frames(ds.PixelData, number_of_frames=count)):
            if index == frame:
                return b"".join(fragments), content_type
        raise BadFileFormat("Cannot access a raw frame")
    data = _native_pixels(ds)
    if len(data) < count * info.frame_bytes:
        raise BadFileFormat("Cannot access a raw frame")
    return data[frame * info.frame_bytes:(frame + 1) * info.frame_bytes], "application/octet-stream"


def dataset_read(data: bytes) -> Dataset:
    """The whole dataset, pixel data included, from the stored file. ``ds._un_tags`` keeps which elements the
    file encodes as UN (explicit VR): pydicom gives them their dictionary VR when read, but Orthanc (DCMTK)
    leaves them unknown, so its window and rescale ignore them (see render.default_windowing)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ds._un_tags = frozenset(tag for tag, element in ds._dict.items() if getattr(element, "VR", None) == "UN")
    return ds
