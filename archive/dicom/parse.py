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
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_partial

from archive.dicom.items import SequenceStop, read_rest
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


# Transfer syntaxes a known file meta may skip to: little endian, not deflated (pydicom reads any other
# one as explicit VR little endian, as the encapsulated ones are)
_SKIP_META_UNLESS = frozenset({pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian})


def _read_after_meta(stream: io.BytesIO, data: bytes, *, dataset_offset: int, transfer_syntax: str,
                     sop_class: str, sop_instance: str) -> Dataset | None:
    """pydicom's read_partial of a Part 10 file whose file meta this process wrote (a C-STORE): the dataset
    is read from ``dataset_offset`` and the meta made from what it was written from, instead of read back
    (a quarter of pydicom's header read). Element positions stay those in ``data``. None when the dataset
    is one that pydicom's read_partial treats differently (big endian, deflated, a command group first)."""
    if transfer_syntax in _SKIP_META_UNLESS or data[dataset_offset:dataset_offset + 2] == b"\x00\x00" \
            or len(data) < dataset_offset + 8:      # not even one element: read_partial's own quirks decide
        return None
    implicit = transfer_syntax == pydicom.uid.ImplicitVRLittleEndian
    stream.seek(dataset_offset)
    stop = SequenceStop(before_pixels=True)
    try:
        dataset = read_dataset(stream, implicit, True, stop_when=stop)
        if stop.stopped:
            read_rest(dataset._dict, stream, stop, implicit=dataset.original_encoding[0], little=True, defer_size=None)
    except EOFError:        # as read_partial, whose validation mode here is IGNORE (archive.apps)
        return None
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(stream, dataset, data[:128], meta, implicit, True)
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds


def _read_header(stream: io.BytesIO, *, force: bool) -> FileDataset:
    """pydicom's ``dcmread(stream, stop_before_pixels=True, force=force)``, except for the top-level sequences of
    undefined length, read by items.py instead of into a Dataset per item (items.read_rest): a 500-frame
    enhanced MR written so took 60-100 ms to parse, 0.1 ms with defined lengths."""
    stop = SequenceStop(before_pixels=True)
    ds = read_partial(stream, stop, defer_size=None, force=force)
    if stop.stopped:
        implicit, little = ds.original_encoding
        read_rest(ds._dict, ds.buffer, stop, implicit=implicit, little=little, defer_size=None)
    return ds


def dicom_parse(data: bytes, *, written_meta: tuple[int, str, str, str] | None = None) -> ParsedDicom:
    """Read the header of a DICOM file; raises BadFileFormat as Orthanc does on what DCMTK cannot read.
    ``written_meta``, (dataset offset, transfer syntax, SOP class, SOP instance): the file meta of ``data``
    was written here from these values (scp.part10_bytes), so it is not read back."""
    stream = io.BytesIO(data)
    try:
        ds = None
        if written_meta is not None:
            offset, transfer_syntax, sop_class, sop_instance = written_meta
            ds = _read_after_meta(stream, data, dataset_offset=offset, transfer_syntax=transfer_syntax,
                                  sop_class=sop_class, sop_instance=sop_instance)
            if ds is None:
                stream.seek(0)
        try:
            if ds is None:
                ds = _read_header(stream, force=False)
        except InvalidDicomError:
            # No preamble: DCMTK still reads a raw dataset, as long as it parses.
            if not _looks_like_raw_dataset(data):
                raise _invalid(data) from None
            stream.seek(0)
            ds = _read_header(stream, force=True)
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

    pixel_tag, pixel_vr = _check_pixel_data(data, offset, ds)
    if pixel_tag is None:
        _check_no_partial_tail(ds, data)
    # Orthanc's PixelDataOffset (and its "dicom-until-pixel-data" header) is about PixelData only: a file
    # whose pixels are FloatPixelData or DoubleFloatPixelData has neither
    pixel_offset = offset if pixel_tag == 0x7FE00010 else None
    pixel_vr = pixel_vr if pixel_tag == 0x7FE00010 else None
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
    """The tag and VR of the pixel data element (PixelData, FloatPixelData or DoubleFloatPixelData) at
    ``offset`` if there is one, checked complete (DCMTK refuses a truncated file)."""
    if offset + 8 > len(data):
        return None, None
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    fmt = "<HH" if little else ">HH"
    group, element = struct.unpack(fmt, data[offset:offset + 4])
    tag = (group << 16) | element
    if tag not in _PIXEL_TAGS:
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
    return tag, vr
