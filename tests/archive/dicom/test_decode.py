"""Decoding frames as Orthanc does: one test per photometric interpretation, bit depth and failure mode.
The samples (tests/explorer/api/test_pixels_orthanc.py) check every transfer syntax against real Orthanc;
these pin each rule on a synthetic image small enough to reason about."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from archive.dicom import decode
from archive.dicom.decode import CannotDecode, PixelFormat
from archive.errors import OrthancError, ParameterOutOfRange
from tests.dicom_factory import make_dataset, make_dicom


def _read(**overrides) -> pydicom.Dataset:
    return decode.dataset_read(make_dicom(**overrides))


def test_unsigned_grey_keeps_bits_above_bits_stored() -> None:
    # Orthanc's fast path reinterprets the words without masking: an overlay bit in bit 15 stays.
    words = np.array([[0x0FFF, 0x8001]], dtype="<u2")
    frame = decode.frame_decode(_read(Rows=1, Columns=2, PixelData=words.tobytes()), 0)
    assert frame.format is PixelFormat.GRAYSCALE16
    assert frame.pixels.tolist() == [[0x0FFF, 0x8001]]


def test_unsigned_grey_is_shifted_down_to_its_high_bit() -> None:
    words = np.array([[0x0010, 0xFFF0]], dtype="<u2")
    ds = _read(Rows=1, Columns=2, BitsStored=12, HighBit=15, PixelData=words.tobytes())
    assert decode.frame_decode(ds, 0).pixels.tolist() == [[0x001, 0xFFF]]


def test_signed_grey_is_the_raw_word() -> None:
    words = np.array([[-1000, 3000]], dtype="<i2")
    ds = _read(Rows=1, Columns=2, PixelRepresentation=1, BitsStored=16, HighBit=15, PixelData=words.tobytes())
    frame = decode.frame_decode(ds, 0)
    assert frame.format is PixelFormat.SIGNED_GRAYSCALE16
    assert frame.pixels.tolist() == [[-1000, 3000]]


def test_eight_bit_grey() -> None:
    ds = _read(Rows=2, Columns=2, BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=bytes([0, 1, 2, 255]))
    frame = decode.frame_decode(ds, 0)
    assert frame.format is PixelFormat.GRAYSCALE8 and frame.pixels.tolist() == [[0, 1], [2, 255]]


def test_signed_eight_bit_is_refused_as_orthanc_does() -> None:
    ds = _read(Rows=2, Columns=2, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=1,
               PixelData=bytes(4))
    with pytest.raises(CannotDecode):
        decode.frame_decode(ds, 0)


def test_one_bit_samples_become_0_and_255() -> None:
    ds = _read(Rows=1, Columns=8, BitsAllocated=1, BitsStored=1, HighBit=0, PixelData=bytes([0b00000101]))
    frame = decode.frame_decode(ds, 0)
    assert frame.pixels.tolist() == [[255, 0, 255, 0, 0, 0, 0, 0]]


def test_thirty_two_bit_grey() -> None:
    words = np.array([[1, 70000]], dtype="<u4")
    ds = _read(Rows=1, Columns=2, BitsAllocated=32, BitsStored=32, HighBit=31, PixelData=words.tobytes())
    frame = decode.frame_decode(ds, 0)
    assert frame.format is PixelFormat.GRAYSCALE32 and frame.pixels.tolist() == [[1, 70000]]


def _rgb(planar: int) -> pydicom.Dataset:
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)
    data = rgb.transpose(2, 0, 1).tobytes() if planar else rgb.tobytes()
    return _read(Rows=1, Columns=2, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=planar,
                 BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=data)


@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_interleaved_and_planar(planar: int) -> None:
    frame = decode.frame_decode(_rgb(planar), 0)
    assert frame.format is PixelFormat.RGB24
    assert frame.pixels.tolist() == [[[10, 20, 30], [40, 50, 60]]]


def test_uncompressed_ybr_full_becomes_rgb_truncated() -> None:
    ds = _read(Rows=1, Columns=2, SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL", PlanarConfiguration=0,
               BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=bytes([128, 128, 128, 76, 85, 255]))
    frame = decode.frame_decode(ds, 0)
    assert frame.pixels[0, 0].tolist() == [128, 128, 128]
    r, g, b = (float(v) for v in frame.pixels[0, 1])
    assert (r, g, b) == (254.0, 0.0, 0.0)  # pure red, 254.81 truncated


def test_palette_colour_through_its_lookup_tables() -> None:
    lut = np.arange(256, dtype="<u2") * 256  # 16-bit entries: >> 8 gives the index back
    ds = make_dataset(Rows=1, Columns=2, BitsAllocated=8, BitsStored=8, HighBit=7,
                      PhotometricInterpretation="PALETTE COLOR", PixelData=bytes([3, 200]))
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.tobytes())
    ds = decode.dataset_read(_bytes(ds))
    frame = decode.frame_decode(ds, 0)
    assert frame.format is PixelFormat.RGB24
    assert frame.pixels.tolist() == [[[3, 3, 3], [200, 200, 200]]]


def _bytes(ds: pydicom.Dataset) -> bytes:
    import io

    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_multi_frame_reads_the_frame_asked_for() -> None:
    frames = np.arange(3 * 4, dtype="<u2").reshape(3, 2, 2)
    ds = _read(Rows=2, Columns=2, NumberOfFrames=3, PixelData=frames.tobytes())
    assert decode.frame_decode(ds, 2).pixels.tolist() == frames[2].tolist()
    with pytest.raises(ParameterOutOfRange):
        decode.frame_decode(ds, 3)


def test_rle_compressed_frame_equals_its_source() -> None:
    ds = make_dataset(Rows=4, Columns=4, PixelData=np.arange(16, dtype="<u2").tobytes())
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds = decode.dataset_read(_bytes(ds))
    assert decode.frame_decode(ds, 0).pixels.tolist() == np.arange(16).reshape(4, 4).tolist()


def test_truncated_pixel_data_is_a_bad_file() -> None:
    ds = _read(Rows=8, Columns=8, PixelData=bytes(10))
    with pytest.raises(CannotDecode) as caught:
        decode.frame_decode(ds, 0)
    assert caught.value.orthanc_error is OrthancError.BAD_FILE_FORMAT


def test_no_pixel_data_is_a_bad_file_and_no_image_module_not_implemented() -> None:
    with pytest.raises(CannotDecode) as caught:
        decode.frame_decode(_read(PixelData=None), 0)
    assert caught.value.orthanc_error is OrthancError.BAD_FILE_FORMAT
    with pytest.raises(CannotDecode) as caught:
        decode.frame_decode(_read(PixelData=None, BitsAllocated=None), 0)
    assert caught.value.orthanc_error is OrthancError.NOT_IMPLEMENTED


@pytest.mark.parametrize(("rows", "columns"), [(65535, 65535), (1, 0), (46341, 46341)])
def test_impossible_geometry_is_refused_before_allocating(rows: int, columns: int) -> None:
    # 46341 x 46341 x 2 bytes is over 4 GB: refused from the header, nothing is read or allocated.
    ds = _read(Rows=rows, Columns=columns, PixelData=bytes(16))
    with pytest.raises(CannotDecode):
        decode.frame_decode(ds, 0)


def test_a_frame_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "MAX_FRAME_BYTES", 100)
    with pytest.raises(CannotDecode):
        decode.frame_decode(_read(), 0)  # 8 x 8 x 2 = 128 bytes


def test_a_codec_error_is_cannot_decode_not_a_crash() -> None:
    ds = make_dataset(Rows=4, Columns=4, PixelData=np.arange(16, dtype="<u2").tobytes())
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.PixelData = ds.PixelData[:-20]  # a truncated last fragment
    with pytest.raises(CannotDecode):
        decode.frame_decode(decode.dataset_read(_bytes(ds)), 0)


def test_raw_frame_is_the_stored_slice() -> None:
    frames = np.arange(2 * 4, dtype="<u2").reshape(2, 2, 2)
    ds = _read(Rows=2, Columns=2, NumberOfFrames=2, PixelData=frames.tobytes())
    data, content_type = decode.frame_raw(ds, 1)
    assert data == frames[1].tobytes() and content_type == "application/octet-stream"


def test_frames_count() -> None:
    assert decode.frames_count(_read()) == 1
    assert decode.frames_count(_read(NumberOfFrames=5, PixelData=bytes(5 * 128))) == 5
