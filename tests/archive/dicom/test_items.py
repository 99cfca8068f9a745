"""archive.dicom.items reads sequence items as pydicom 3.0 does, without a Dataset per item: compared with
pydicom's own reading (convert_SQ) on nested sequences in every little/big endian, implicit/explicit form, on
data cut short and on corrupted bytes."""

from __future__ import annotations

import io
import random
import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.values import convert_SQ

from archive.dicom.items import RawItem, sequence_items


def _item(rng: random.Random, depth: int) -> Dataset:
    ds = Dataset()
    ds.CodeValue = "X" * rng.randint(0, 9)
    ds.CodeMeaning = rng.choice(["Meaning", "Ärger", "", "a\\b"])
    if rng.random() < 0.4:
        ds.NumericValue = [1.5, 2]
    if rng.random() < 0.3:
        ds.add_new(0x00091010, "LO", "CREATOR")
        ds.add_new(0x00091011, "SQ", Sequence([Dataset()]))
    if depth < 4 and rng.random() < 0.6:
        seq = Sequence([_item(rng, depth + 1) for _ in range(rng.randint(0, 3))])
        seq.is_undefined_length = rng.random() < 0.5
        ds.ContentSequence = seq
    ds.is_undefined_length_sequence_item = rng.random() < 0.5
    return ds


def _sequence_value(seed: int, *, implicit: bool, little: bool) -> bytes:
    """The value of a ContentSequence of defined length, as a file holds it."""
    rng = random.Random(seed)
    top = Dataset()
    top.ContentSequence = Sequence([_item(rng, 0) for _ in range(rng.randint(1, 4))])
    out = io.BytesIO()
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(out)
    fp.is_little_endian, fp.is_implicit_VR = little, implicit
    write_dataset(fp, top)
    data = out.getvalue()
    header = 8 if implicit else 12
    return data[header:]


def _shape(items) -> list:
    """Items as comparable values: tag -> (VR, length, value bytes or nested items)."""
    out = []
    for item in items:
        row = {}
        for tag, elem in item._dict.items():
            value = elem.value
            if elem.VR == "SQ" and isinstance(value, bytes):     # defined length: read when asked for
                value = item[tag].value if isinstance(item, Dataset) else sequence_items(
                    value, implicit=elem.is_implicit_VR, little=elem.is_little_endian)
            if isinstance(value, list | Sequence):
                value = _shape(value)
            row[int(tag)] = (elem.VR, elem.length if not isinstance(value, list) else None, value)
        out.append(row)
    return out


def _pydicom(data: bytes, implicit: bool, little: bool):
    try:
        return "ok", _shape(convert_SQ(data, implicit, little))
    except Exception as exc:
        return "error", type(exc)


def _ours(data: bytes, implicit: bool, little: bool):
    try:
        return "ok", _shape(sequence_items(data, implicit=implicit, little=little))
    except Exception as exc:
        return "error", type(exc)


SYNTAXES = [(True, True), (False, True), (False, False)]


@pytest.mark.parametrize(("implicit", "little"), SYNTAXES, ids=["implicit-le", "explicit-le", "explicit-be"])
def test_same_items_as_pydicom(implicit: bool, little: bool) -> None:
    for seed in range(20):
        data = _sequence_value(seed, implicit=implicit, little=little)
        ours = sequence_items(data, implicit=implicit, little=little)
        assert all(type(item) is RawItem for item in ours)
        assert _ours(data, implicit, little) == _pydicom(data, implicit, little)


@pytest.mark.parametrize(("implicit", "little"), SYNTAXES, ids=["implicit-le", "explicit-le", "explicit-be"])
def test_same_as_pydicom_on_cut_and_corrupted_data(implicit: bool, little: bool) -> None:
    rng = random.Random(7)
    compared = 0
    for seed in range(8):
        data = _sequence_value(seed, implicit=implicit, little=little)
        variants = [data[:rng.randint(0, len(data))] for _ in range(30)]
        for _ in range(30):
            corrupted = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
            variants.append(bytes(corrupted))
        for variant in variants:
            assert _ours(variant, implicit, little) == _pydicom(variant, implicit, little)
            compared += 1
    assert compared == 480


def test_implicit_vr_item_inside_explicit_vr_sequence() -> None:
    # PS3.5 6.2.2: an item whose first element has no VR is read in implicit VR (pydicom does so too)
    element = struct.pack("<HHL", 0x0008, 0x0100, 4) + b"CODE"
    data = struct.pack("<HHL", 0xFFFE, 0xE000, len(element)) + element
    (item,) = sequence_items(data, implicit=False, little=True)
    assert item._dict[0x00080100].VR is None and item._dict[0x00080100].value == b"CODE"
    assert _ours(data, False, True) == _pydicom(data, False, True)


def test_a_value_never_delimited_as_in_pydicom() -> None:
    # An OB of undefined length whose sequence delimiter never comes: pydicom's read_dataset drops the
    # whole item of undefined length (and keeps what it read of one of defined length), and its
    # read_sequence then finds no next item header where the search for the delimiter left the data
    unterminated = struct.pack("<HH2sHL", 0x0009, 0x1012, b"OB", 0, 0xFFFFFFFF) + b"\x01\x02\x03\x04"
    body = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 4) + b"CODE" + unterminated
    data = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + body
    assert _ours(data, False, True) == _pydicom(data, False, True) == ("error", OSError)
    defined = struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    assert _ours(defined, False, True) == _pydicom(defined, False, True)


def test_a_header_cut_short_raises_as_pydicom() -> None:
    data = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)[:6]
    with pytest.raises(OSError):
        sequence_items(data, implicit=True, little=True)
    assert _pydicom(data, True, True) == ("error", OSError)


def _file(undefined_length: bool, *, implicit: bool = False) -> bytes:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    rng = random.Random(3)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientName = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.3.4", "Ärger^Jörg"
    ds.ContentSequence = Sequence([_item(rng, 0) for _ in range(6)])
    ds.add_new(0x7FE00010, "OB", b"\x00\x01" * 8)

    def mark(dataset: Dataset) -> None:
        for element in dataset:
            if element.VR == "SQ":
                element.is_undefined_length = undefined_length
                for item in element.value:
                    item.is_undefined_length_sequence_item = undefined_length
                    mark(item)

    mark(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_read_for_json_reads_top_level_sequences_of_undefined_length_as_raw_items(implicit: bool) -> None:
    import pydicom
    from pydicom.filebase import DicomBytesIO

    from archive.dicom.json import dataset_to_full, read_for_json

    undefined, defined = _file(True, implicit=implicit), _file(False, implicit=implicit)
    assert undefined != defined
    ds = read_for_json(undefined)
    assert all(type(item) is RawItem for item in ds._dict[0x0040A730].value)
    expected = dataset_to_full(pydicom.dcmread(DicomBytesIO(undefined), defer_size=4096, force=True), whole=True)
    assert dataset_to_full(ds, whole=True) == expected
    if not implicit:    # in implicit VR, a private sequence of defined length is no sequence to the dictionary
        assert expected == dataset_to_full(read_for_json(defined), whole=True)
    assert expected["0040,a730"]["Type"] == "Sequence" and len(expected["0040,a730"]["Value"]) == 6
    header = read_for_json(undefined, header_only=True)
    assert 0x7FE00010 not in header._dict and 0x0040A730 in header._dict


def test_ingest_parse_reads_top_level_sequences_of_undefined_length_as_raw_items() -> None:
    from archive.dicom.parse import dicom_parse
    from archive.dicom.tags import main_dicom_tags
    from archive.errors import BadFileFormat
    from archive.levels import Level

    undefined, defined = _file(True), _file(False)
    parsed, reference = dicom_parse(undefined), dicom_parse(defined)
    assert all(type(item) is RawItem for item in parsed.dataset._dict[0x0040A730].value)
    for level in Level:
        assert main_dicom_tags(parsed.dataset, level) == main_dicom_tags(reference.dataset, level)
    assert undefined[parsed.pixel_data_offset:parsed.pixel_data_offset + 4] == b"\xe0\x7f\x10\x00"
    # cut inside the sequence: refused, as pydicom's own reading makes it refused
    with pytest.raises(BadFileFormat):
        dicom_parse(undefined[:parsed.pixel_data_offset - 40])
