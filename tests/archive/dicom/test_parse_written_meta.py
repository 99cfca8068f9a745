"""dicom_parse with ``written_meta`` (a C-STORE's file meta, written by the SCP, not read back) reads what the
plain parse reads: same elements, encoding, transfer syntax, pixel data position, main tags, same refusals."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filereader import _read_file_meta_info, read_preamble

from archive.dicom.parse import dicom_parse
from archive.dicom.tags import main_dicom_sequences, main_dicom_tags
from archive.errors import BadFileFormat
from archive.levels import Level
from archive.network.scp import part10_bytes
from tests.samples import samples_dir

# pydicom's own test files that ship with it (get_testdata_file works offline for these): explicit and
# implicit little endian, big endian and deflated (the plain parse is kept for those), encapsulated, RLE,
# sequences, a waveform
_PYDICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtdose.dcm", "JPEG2000.dcm", "JPEG-lossy.dcm",
                  "SC_rgb_small_odd.dcm", "SC_rgb_rle.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                  "ExplVR_BigEnd.dcm", "image_dfl.dcm", "waveform_ecg.dcm"]


def _as_received(path) -> tuple[bytes, tuple[int, str, str, str]] | None:
    """The Part 10 file the SCP would write for this file's dataset, and its written_meta; None for a file
    without file meta or UIDs (not something a C-STORE carries)."""
    raw = open(path, "rb").read()
    stream = io.BytesIO(raw)
    try:
        read_preamble(stream, False)
        meta = _read_file_meta_info(stream)
    except Exception:
        return None
    ts = str(meta.get("TransferSyntaxUID", "") or "")
    try:
        head = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True, force=True)
    except RecursionError:      # the deeply nested sample: its UIDs are not to be had this way
        return None
    sop_class, sop_instance = str(head.get("SOPClassUID", "") or ""), str(head.get("SOPInstanceUID", "") or "")
    if not ts or not sop_class or not sop_instance:
        return None
    dataset = raw[stream.tell():]
    data = part10_bytes(dataset, sop_class=sop_class, sop_instance=sop_instance, transfer_syntax=ts)
    return data, (len(data) - len(dataset), ts, sop_class, sop_instance)


def _summary(data: bytes, **kwargs):
    try:
        parsed = dicom_parse(data, **kwargs)
    except BadFileFormat as error:
        return ("refused", str(error))
    ds = parsed.dataset
    elements = [(int(tag), elem.VR, getattr(elem, "value_tell", None), getattr(elem, "length", None),
                 bytes(elem.value or b"")
                 if isinstance(elem.value, bytes) else repr(elem.value))
                for tag, elem in ds._dict.items()]
    tags = [main_dicom_tags(ds, level) for level in Level]
    sequences = [main_dicom_sequences(ds, level) for level in Level]
    return (parsed.transfer_syntax, parsed.pixel_data_offset, parsed.pixel_data_vr, ds.original_encoding,
            ds.original_character_set, str(ds.file_meta.get("TransferSyntaxUID", "")), elements, tags, sequences)


def _check(path) -> bool:
    received = _as_received(path)
    if received is None:
        return False
    data, written_meta = received
    assert _summary(data, written_meta=written_meta) == _summary(data), path
    return True


@pytest.mark.parametrize("name", _PYDICOM_FILES)
def test_pydicom_files(name):
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not among pydicom's bundled test files"
    assert _check(path)


def test_sample_corpus():
    checked = sum(_check(path) for path in sorted(samples_dir().rglob("*.dcm")))
    assert checked > 100


def test_truncated_and_malformed_are_refused_alike():
    data, written_meta = _as_received(get_testdata_file("CT_small.dcm"))
    offset = written_meta[0]
    for cut in (offset + 3, offset + 200, len(data) - 100, len(data) - 3):
        assert _summary(data[:cut], written_meta=written_meta) == _summary(data[:cut])
    garbage = data[:offset] + b"\x08\x00\x18\x00UI\xff\xff" + b"1.2.3" * 10
    assert _summary(garbage, written_meta=written_meta) == _summary(garbage)


def test_the_meta_is_not_read_back():
    """The fast path is taken: the meta comes from written_meta, not from the bytes (altered here)."""
    data, written_meta = _as_received(get_testdata_file("CT_small.dcm"))
    sop_instance = written_meta[3]
    altered = sop_instance[:-1] + ("1" if sop_instance[-1] != "1" else "2")
    meta_end = written_meta[0]
    data = data[:meta_end].replace(sop_instance.encode(), altered.encode()) + data[meta_end:]
    assert dicom_parse(data).dataset.file_meta.MediaStorageSOPInstanceUID == altered
    parsed = dicom_parse(data, written_meta=written_meta)
    assert parsed.dataset.file_meta.MediaStorageSOPInstanceUID == sop_instance
    assert parsed.transfer_syntax == written_meta[1]
