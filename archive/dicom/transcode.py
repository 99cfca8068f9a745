"""Transcoding a stored file to another transfer syntax (``/instances/{id}/file?transcode=``, 1.12.2).

pydicom writes the uncompressed syntaxes and encodes RLE (its own encoder) and JPEG 2000 (pylibjpeg-openjpeg);
the JPEG family and JPEG-LS go through DCMTK's command-line codecs, the ones Orthanc itself transcodes with
(dcmcjpeg, dcmcjpls; apt-get install dcmtk), and so do big endian (dcmconv) and 12-bit JPEG (dcmdjpeg).
Every source the decoder reads can be transcoded. The SOP Instance UID is kept: the instance is the same, only
its encoding changes (as Orthanc does for /file), unless the caller lets a lossy syntax give it a new one
(``new_uid_if_lossy``: Orthanc's allowNewSopInstanceUid, set by its peer store job). As Orthanc's
DcmtkTranscoder, JPEG baseline takes 8-bit images only: a 12-bit image would come out rescaled to 8 bits.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from archive.errors import ArchiveError, OrthancError

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
RLE = "1.2.840.10008.1.2.5"
J2K_LOSSLESS, J2K = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"
JPEG_BASELINE, JPEG_LOSSLESS_SV1, JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                                                   "1.2.840.10008.1.2.4.57")
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_EXTENDED_12 = "1.2.840.10008.1.2.4.51"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
LOSSY = frozenset({J2K, JPEG_BASELINE})
DCMTK_TIMEOUT = 120.0


class TranscodingFailed(ArchiveError):
    """The file cannot be written in that transfer syntax (a codec refused it, or DCMTK is missing)."""

    orthanc_error = OrthancError.NOT_IMPLEMENTED


def _dataset(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


def _bytes(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _uncompressed(data: bytes, syntax: str, quality: int, new_uid: bool = False) -> bytes:
    ds = _dataset(data)
    source = ds.file_meta.get("TransferSyntaxUID", EXPLICIT_LE)
    if source == BIG_ENDIAN:
        # pydicom writes no dataset read in big endian in little endian (its OW values are not swapped)
        ds = _dataset(_dcmtk_file("dcmconv", data, "+te"))
    elif source not in (EXPLICIT_LE, IMPLICIT_LE, DEFLATED) and "PixelData" in ds:
        if source == JPEG_EXTENDED_12:
            # none of our permissively licensed decoders reads 12-bit JPEG (archive/dicom/decode.py)
            ds = _dataset(_dcmtk_file("dcmdjpeg", data))
        else:
            # pydicom's decoders; YCbCr comes out as RGB, as DCMTK's decoders give it. pydicom would also give
            # the instance a new SOP Instance UID by default: a decoded instance is the same instance.
            ds.decompress(generate_instance_uid=False)
    return _bytes(ds, syntax)


def _dcmtk_file(tool: str, data: bytes, *flags: str) -> bytes:
    """The file rewritten by one of DCMTK's tools, as Orthanc's DCMTK rewrites it: dcmconv +te (explicit VR
    little endian, every value swapped), dcmdjpeg (decompressed, in explicit VR little endian, YCbCr made
    RGB). Both keep the SOP Instance UID."""
    binary = shutil.which(tool)
    if binary is None:
        raise TranscodingFailed(f"This transcoding needs DCMTK's {tool} (apt-get install dcmtk)")
    with tempfile.TemporaryDirectory(prefix="transcode-") as folder:
        with open(f"{folder}/in.dcm", "wb") as out:
            out.write(data)
        done = subprocess.run([binary, *flags, f"{folder}/in.dcm", f"{folder}/out.dcm"], capture_output=True,
                              timeout=DCMTK_TIMEOUT)
        if done.returncode != 0:
            raise TranscodingFailed(f"{tool}: {done.stderr.decode(errors='replace').strip()[:300]}")
        with open(f"{folder}/out.dcm", "rb") as result:
            return result.read()


def _pydicom_compress(data: bytes, syntax: str, quality: int, new_uid: bool = False) -> bytes:
    ds = _dataset(data)
    if "PixelData" not in ds:
        return _bytes(ds, syntax)
    options: dict = {"generate_instance_uid": new_uid}
    if syntax == RLE:
        options["encoding_plugin"] = "pydicom"
    if syntax == J2K:
        # quality 1..100 to a peak signal-to-noise target, as a viewer expects (100 is near lossless).
        options["j2k_psnr"] = [20 + 0.6 * quality]
    if ds.file_meta.get("TransferSyntaxUID") not in (EXPLICIT_LE, IMPLICIT_LE, DEFLATED):
        ds.decompress(generate_instance_uid=False)
    ds.compress(UID(syntax), **options)
    if syntax in LOSSY:
        ds.LossyImageCompression = "01"
    return _bytes(ds, syntax)


def _dcmtk(tool: str, *flags: str) -> Callable[..., bytes]:
    def run(data: bytes, syntax: str, quality: int, new_uid: bool = False) -> bytes:
        if shutil.which(tool) is None:
            raise TranscodingFailed(f"Transcoding to {syntax} needs DCMTK's {tool} (apt-get install dcmtk)")
        arguments = [flag.format(quality=quality) for flag in flags]
        if new_uid:
            arguments = [flag for flag in arguments if flag != "+un"]   # DCMTK's default: a new UID if lossy
        # DCMTK's encoders read uncompressed input: decompress first when the source is compressed.
        return _dcmtk_file(tool, _uncompressed(data, EXPLICIT_LE, quality), *arguments)
    return run


TRANSCODERS: dict[str, Callable[..., bytes]] = {
    EXPLICIT_LE: _uncompressed,
    IMPLICIT_LE: _uncompressed,
    DEFLATED: _uncompressed,
    RLE: _pydicom_compress,
    J2K_LOSSLESS: _pydicom_compress,
    J2K: _pydicom_compress,
    JPEG_BASELINE: _dcmtk("dcmcjpeg", "+eb", "+q", "{quality}", "+un"),
    JPEG_LOSSLESS_SV1: _dcmtk("dcmcjpeg", "+e1", "+un"),
    JPEG_LOSSLESS: _dcmtk("dcmcjpeg", "+el", "+un"),
    JPEG_LS_LOSSLESS: _dcmtk("dcmcjpls", "+el", "+un"),
    # JPEG-LS near-lossless (4.81): dcmcjpls refuses MONOCHROME images for it; not offered.
}


def file_transcode(data: bytes, *, syntax: str, quality: int = 90, new_uid_if_lossy: bool = False) -> bytes:
    """``data`` (a Part 10 file) written in transfer syntax ``syntax``; the same bytes when it already is.
    Raises TranscodingFailed when no codec can write it (or ArchiveError ParameterOutOfRange for an unknown
    UID). ``quality`` (1-100) only matters for the lossy syntaxes; with ``new_uid_if_lossy`` a lossy syntax
    gives the instance a new SOP Instance UID (a lossy copy is another instance)."""
    transcoder = TRANSCODERS.get(syntax)
    if transcoder is None:
        raise ArchiveError(f"Unsupported transfer syntax: {syntax}", orthanc_error=OrthancError.PARAMETER_OUT_OF_RANGE)
    current = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    if str(current.file_meta.get("TransferSyntaxUID", "")) == syntax:
        return data
    if syntax == JPEG_BASELINE and "BitsStored" in current and current.BitsStored != 8:
        raise TranscodingFailed(f"Cannot transcode to JPEG baseline an image of BitsStored {current.BitsStored} "
                                "(8 only)")
    try:
        return transcoder(data, syntax, quality, new_uid_if_lossy and syntax in LOSSY)
    except ArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - codecs fail in many ways; the caller gets one error type
        raise TranscodingFailed(f"Cannot transcode to {syntax}: {type(exc).__name__}: {exc}") from None
