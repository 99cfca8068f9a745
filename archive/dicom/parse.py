"""Parse an incoming DICOM file just enough to index it: the header, never the pixels.

The rules of what is accepted follow Orthanc (DCMTK's auto-detect read): a Part 10 file, or a raw dataset
without preamble; a file whose pixel data is cut short is refused as DCMTK refuses it; the four identifying
UIDs must be present (PatientID may be empty).
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from archive.errors import BadFileFormat

logger = logging.getLogger(__name__)

_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"


@dataclass
class ParsedDicom:
    dataset: Dataset            # header up to (excluding) the pixel data
    transfer_syntax: str
    pixel_data_offset: int | None
    pixel_data_vr: str | None


def _invalid(data: bytes) -> BadFileFormat:
    return BadFileFormat(f"Cannot parse an invalid DICOM file (size: {len(data)} bytes)")


def dicom_parse(data: bytes) -> ParsedDicom:
    """Read the header of a DICOM file; raises BadFileFormat as Orthanc does on what DCMTK cannot read."""
    stream = io.BytesIO(data)
    try:
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True)
        except InvalidDicomError:
            # No preamble: DCMTK still reads a raw dataset, as long as it parses.
            if not _looks_like_raw_dataset(data):
                raise _invalid(data) from None
            stream.seek(0)
            ds = pydicom.dcmread(stream, stop_before_pixels=True, force=True)
            if len(ds) == 0 or "SOPInstanceUID" not in ds:
                raise _invalid(data) from None
        offset = stream.tell()
        _check_complete(ds, len(data), data)
    except BadFileFormat:
        raise
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        logger.info("refused a DICOM file: %s", exc)
        raise _invalid(data) from exc

    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not ts:
        ts = pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else pydicom.uid.ExplicitVRLittleEndian

    pixel_offset, pixel_vr = _check_pixel_data(data, offset, ds)
    if pixel_offset is None:
        _check_no_partial_tail(ds, data)
    return ParsedDicom(dataset=ds, transfer_syntax=ts, pixel_data_offset=pixel_offset, pixel_data_vr=pixel_vr)


def _check_complete(ds: Dataset, size: int, data: bytes) -> None:
    """pydicom keeps a value cut short by the end of the file; DCMTK refuses the file. Compare each
    element's declared end with the size, without decoding any value (cheap: raw elements only)."""
    for elem in ds._dict.values():
        tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", 0)
        if tell is not None and length != 0xFFFFFFFF and tell + length > size:
            raise _invalid(data)


def _check_no_partial_tail(ds: Dataset, data: bytes) -> None:
    """A file cut inside the header of its last element: pydicom drops those bytes silently."""
    if not ds._dict:
        return
    last = ds._dict[max(ds._dict)]
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", 0xFFFFFFFF)
    if tell is not None and length != 0xFFFFFFFF and 0 < len(data) - (tell + length) < 12:
        raise _invalid(data)


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A dataset without preamble starts with a tag of group 0002 or 0008 (as DCMTK's guess requires)."""
    if len(data) < 8:
        return False
    group = struct.unpack("<H", data[:2])[0]
    return group in (0x0002, 0x0008)


def _check_pixel_data(data: bytes, offset: int, ds: Dataset) -> tuple[int | None, str | None]:
    """Where the pixel data starts, and a check that it is complete (DCMTK refuses a truncated file)."""
    if offset + 8 > len(data):
        return None, None
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    fmt = "<HH" if little else ">HH"
    group, element = struct.unpack(fmt, data[offset:offset + 4])
    if ((group << 16) | element) not in _PIXEL_TAGS:
        return None, None
    if ds.is_implicit_VR:
        (length,) = struct.unpack("<I" if little else ">I", data[offset + 4:offset + 8])
        header, vr = 8, ("OW" if ds.get("BitsAllocated", 16) > 8 else "OB")
    else:
        vr = data[offset + 4:offset + 6].decode("ascii", "replace")
        if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ", "UT", "UC", "UR"):
            if offset + 12 > len(data):
                raise _invalid(data)
            (length,) = struct.unpack("<I" if little else ">I", data[offset + 8:offset + 12])
            header = 12
        else:
            (length,) = struct.unpack("<H" if little else ">H", data[offset + 6:offset + 8])
            header = 8
    if length == 0xFFFFFFFF:
        if data.rfind(_SEQUENCE_DELIMITER, offset + header) < 0:
            raise _invalid(data)
    elif offset + header + length > len(data):
        raise _invalid(data)
    return offset, vr
