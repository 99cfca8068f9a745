"""Transcoding to each transfer syntax: the pixels survive (exactly when lossless) and the instance stays the
same instance (SOP Instance UID kept)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from archive.dicom import decode, transcode
from archive.errors import ArchiveError
from tests.dicom_factory import make_dicom
from tests.samples import sample_path

SOURCE = make_dicom(Rows=64, Columns=64, PixelData=(np.arange(4096, dtype="<u2") % 4000).tobytes())
LOSSLESS = [transcode.EXPLICIT_LE, transcode.IMPLICIT_LE, transcode.DEFLATED, transcode.RLE,
            transcode.J2K_LOSSLESS, transcode.JPEG_LOSSLESS_SV1, transcode.JPEG_LOSSLESS, transcode.JPEG_LS_LOSSLESS]
NEEDS_DCMTK = {transcode.JPEG_LOSSLESS_SV1, transcode.JPEG_LOSSLESS, transcode.JPEG_LS_LOSSLESS,
               transcode.JPEG_BASELINE}


def _pixels(data: bytes) -> np.ndarray:
    return decode.frame_decode(decode.dataset_read(data), 0).pixels


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_lossless_transcoding_keeps_every_pixel_and_the_uid(syntax: str) -> None:
    if syntax in NEEDS_DCMTK and shutil.which("dcmcjpeg") is None:
        pytest.skip("DCMTK is not installed (apt-get install dcmtk)")
    out = transcode.file_transcode(SOURCE, syntax=syntax)
    ds = decode.dataset_read(out)
    assert str(ds.file_meta.TransferSyntaxUID) == syntax
    assert ds.SOPInstanceUID == decode.dataset_read(SOURCE).SOPInstanceUID
    assert np.array_equal(_pixels(out), _pixels(SOURCE))


def test_lossy_jpeg_2000_is_close_and_marked_lossy() -> None:
    out = transcode.file_transcode(SOURCE, syntax=transcode.J2K, quality=90)
    assert decode.dataset_read(out).LossyImageCompression == "01"
    difference = np.abs(_pixels(out).astype(int) - _pixels(SOURCE).astype(int))
    assert difference.max() < 100


def test_same_syntax_is_the_same_bytes_and_unknown_syntax_an_error() -> None:
    assert transcode.file_transcode(SOURCE, syntax=transcode.EXPLICIT_LE) is SOURCE
    with pytest.raises(ArchiveError):
        transcode.file_transcode(SOURCE, syntax="1.2.3.4")


@pytest.mark.parametrize("target", [transcode.EXPLICIT_LE, transcode.IMPLICIT_LE, transcode.J2K_LOSSLESS,
                                    transcode.RLE])
@pytest.mark.parametrize("source", [transcode.RLE, transcode.J2K_LOSSLESS])
def test_compressed_to_another_syntax_keeps_the_pixels_and_the_uid(source: str, target: str) -> None:
    # pydicom's decompress() gives a new SOP Instance UID unless told not to: a decoded file was a new
    # instance, and a peer receiving our C-STORE filed it under another instance.
    compressed = transcode.file_transcode(SOURCE, syntax=source)
    out = transcode.file_transcode(compressed, syntax=target)
    ds = decode.dataset_read(out)
    assert str(ds.file_meta.TransferSyntaxUID) == target
    assert ds.SOPInstanceUID == decode.dataset_read(SOURCE).SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(_pixels(out), _pixels(SOURCE))


EIGHT_BITS = make_dicom(Rows=64, Columns=64, BitsAllocated=8, BitsStored=8, HighBit=7,
                        PixelData=(np.arange(4096) % 200).astype("u1").tobytes())


def test_jpeg_baseline_takes_8_bit_images_only() -> None:
    """As Orthanc's DcmtkTranscoder (BitsStored == 8): DCMTK would write a 12-bit image rescaled to 8 bits."""
    if shutil.which("dcmcjpeg") is None:
        pytest.skip("DCMTK is not installed (apt-get install dcmtk)")
    assert decode.dataset_read(SOURCE).BitsStored != 8
    with pytest.raises(transcode.TranscodingFailed):
        transcode.file_transcode(SOURCE, syntax=transcode.JPEG_BASELINE)
    out = transcode.file_transcode(EIGHT_BITS, syntax=transcode.JPEG_BASELINE, quality=95)
    ds = decode.dataset_read(out)
    assert ds.SOPInstanceUID == decode.dataset_read(EIGHT_BITS).SOPInstanceUID       # kept unless allowed
    difference = np.abs(_pixels(out).astype(int) - _pixels(EIGHT_BITS).astype(int))
    assert difference.max() < 20


@pytest.mark.parametrize("syntax", [transcode.JPEG_BASELINE, transcode.J2K])
def test_a_lossy_copy_may_be_a_new_instance(syntax: str) -> None:
    """``new_uid_if_lossy`` (Orthanc's allowNewSopInstanceUid, its peer store job): a new SOP Instance UID, in
    the dataset and the file meta; a lossless syntax keeps it."""
    if syntax == transcode.JPEG_BASELINE and shutil.which("dcmcjpeg") is None:
        pytest.skip("DCMTK is not installed (apt-get install dcmtk)")
    original = decode.dataset_read(EIGHT_BITS).SOPInstanceUID
    ds = decode.dataset_read(transcode.file_transcode(EIGHT_BITS, syntax=syntax, new_uid_if_lossy=True))
    assert ds.SOPInstanceUID != original
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.LossyImageCompression == "01"
    kept = decode.dataset_read(transcode.file_transcode(EIGHT_BITS, syntax=transcode.RLE, new_uid_if_lossy=True))
    assert kept.SOPInstanceUID == original


@pytest.mark.parametrize("name, tool", [("1.2.840.10008.1.2.2.dcm", "dcmconv"), ("1.2.840.10008.1.2.4.51.dcm", "dcmdjpeg")])
@pytest.mark.parametrize("target", [transcode.EXPLICIT_LE, transcode.IMPLICIT_LE])
def test_big_endian_and_12_bit_jpeg_are_written_uncompressed_through_dcmtk(name: str, tool: str, target: str) -> None:
    """pydicom writes no big endian dataset in little endian and none of our decoders reads 12-bit JPEG: DCMTK's
    tools do both, as in Orthanc (a C-GET of these files to DCMTK's getscu sent nothing before)."""
    if shutil.which(tool) is None:
        pytest.skip("DCMTK is not installed (apt-get install dcmtk)")
    source = sample_path(f"TransferSyntaxes/{name}").read_bytes()
    out = transcode.file_transcode(source, syntax=target)
    ds = decode.dataset_read(out)
    assert str(ds.file_meta.TransferSyntaxUID) == target
    assert ds.SOPInstanceUID == decode.dataset_read(source).SOPInstanceUID
    assert np.array_equal(_pixels(out), _pixels(source))
