"""``/tools/create-dicom``: new instances from JSON tags and optional content, stored through instance_store.

The rules, as Orthanc's ``CreateDicomV2``/``InjectTags``/``CreateSeries`` (OrthancRestAnonymizeModify.cpp) and
``ParsedDicomFile::Replace``/``FromDcmtkBridge::FromJson`` apply them, each checked live against Orthanc
1.10.1 (``tests/jobs/test_create_dicom.py``):

- The body is a JSON object; with a ``Tags`` member it is the "V2" request, without one every member is a tag
  whose value must be a string (the "V1" request of Orthanc <= 0.9.3, still served).
- The order of the checks decides which error a bad request gets: ``Tags`` an object, its
  ``SpecificCharacterSet``, ``Parent``, ``InterpretBinaryTags``, ``PrivateCreator``, ``Force`` (booleans and a
  string, anything else is a bad request), then the tags in the sorted order of their names (jsoncpp keeps
  object members sorted), then ``Content``.
- Before the tags: a UUID PatientID and Study/Series/SOP Instance UIDs are generated (``ParsedDicomFile(true)``),
  SpecificCharacterSet is written (the request's, the parent's, or DefaultEncoding's), the parent's module tags
  are copied, and the Acquisition/Content/InstanceCreation dates and times (UTC, whole seconds) are set, with
  the series ones unless the parent is a series and the study ones unless it is a study or a series.
- A tag already present can only be given again with ``Force``, except PatientID and those dates and times:
  so the generated UIDs and the tags copied from a parent are protected (CreateDicomOverrideTag, Details
  naming the tag as the request spelled it). SpecificCharacterSet is never injected as a tag: it picks the
  encoding. PixelData is refused (CreateDicomUseContent).
- Text is converted from UTF-8 to the encoding, characters it cannot hold dropped. With
  ``InterpretBinaryTags`` (the default) a value ``data:application/octet-stream;base64,...`` is decoded and
  written as such, whatever the VR. OB/UN values are padded to an even length with a NUL; an odd OW value is
  an internal error. Numbers are parsed strictly (BadFileFormat "... has out-of-range value: ..."), AT values
  are tag names. A JSON array is a sequence (only for a tag whose VR is SQ), its items objects or ``[]``;
  ``null`` is an empty value (an error where the VR wants a number or a sequence).
- Private tags take ``PrivateCreator`` (default: DefaultPrivateCreator) only to look their VR up in the
  configuration's "Dictionary": a tag declared there for that creator gets the declared VR, any other private
  tag is UN. No private creator element is written (Orthanc does not write one either).
- ``Content``: a data URI (PNG/JPEG decoded to native pixels, PDF and 3D models as encapsulated documents,
  ``application/octet-stream`` as raw pixel data), or a non-empty list, which creates a series of one
  instance per item (a data URI, or an object with ``Content`` and its own ``Tags``), answered as the series.
  ``Encapsulate`` (Orthanc 1.12.7) keeps a JPEG as it is, in the JPEG baseline transfer syntax.
- ``Parent``: a patient, study or series; one of its instances gives the tags of the parent levels' modules
  (String values copied, Null ones set empty) and the encoding.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from django.conf import settings
from PIL import Image
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as PydicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from archive import runtime, selectors
from archive.dicom.json import (
    _CHARSET_TO_ENCODING,
    ENCODING_CODECS,
    MODULE_TAGS,
    dataset_to_full,
    dictionary_entry,
)
from archive.dicom.tags import ENCODING_TO_CHARSET, _dcmtk_names, parse_tag, tag_key
from archive.errors import (
    ArchiveError,
    BadFileFormat,
    BadParameterType,
    BadRequest,
    OrthancError,
    UnknownDicomTag,
    UnknownResource,
)
from archive.ingest import Origin, StoreResult, StoreStatus, instance_store
from archive.levels import Level
from archive.services import resource_delete
from archive.settings import archive_settings

UID_ROOT = "1.2.826.0.1.3680043.8.498."
BINARY_URI_PREFIX = "data:application/octet-stream;base64,"
# What DCMTK writes as MediaStorageSOPClassUID when the dataset has no SOPClassUID.
DCMTK_NO_SOP_CLASS = "1.2.276.0.7230010.3.1.0.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# The encapsulated documents Orthanc makes of a Content, with the SOP class it sets (if absent).
_DOCUMENTS = {"application/pdf": (ENCAPSULATED_PDF, "OT"),
              "model/stl": ("1.2.840.10008.5.1.4.1.1.104.3", "M3D"),       # Orthanc 1.12.1
              "model/obj": ("1.2.840.10008.5.1.4.1.1.104.4", "M3D"),
              "model/mtl": ("1.2.840.10008.5.1.4.1.1.104.5", "M3D")}

# The MIME types Orthanc 1.12.11 knows (StringToMimeType): others are out of range; known ones that cannot be
# embedded are "not implemented" (both checked against 1.10.1, which did not know the model/ types yet).
_KNOWN_MIME = frozenset({
    "application/dicom", "application/dicom+json", "application/dicom+xml", "application/javascript",
    "application/json", "application/pdf", "application/octet-stream", "application/xml", "application/zip",
    "application/x-nacl", "application/x-pnacl", "application/vnd.ms-fontobject", "font/woff", "font/woff2",
    "image/gif", "image/jp2", "image/jpeg", "image/jpg", "image/png", "image/svg+xml", "image/webp",
    "image/x-portable-arbitrarymap", "model/mtl", "model/obj", "model/stl", "multipart/related", "text/css",
    "text/html", "text/javascript", "text/plain", "text/xml"})
# The decoded images Orthanc's PngReader and JpegReader accept; others are "not implemented".
_IMAGE_MODES = {"image/png": frozenset({"1", "L", "I", "I;16", "I;16B", "RGB", "RGBA"}),
                "image/jpeg": frozenset({"L", "RGB"})}

PIXEL_DATA = 0x7FE00010
ENCAPSULATED_DOCUMENT = 0x00420011
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
PATIENT_ID = 0x00100020
_NOW_TAGS = {"Acquisition": (0x00080022, 0x00080032), "Content": (0x00080023, 0x00080033),
             "InstanceCreation": (0x00080012, 0x00080013), "Series": (0x00080021, 0x00080031),
             "Study": (0x00080020, 0x00080030)}
# The tags InjectTags lets a request give although the new instance already has them.
_FORCE_FREE = frozenset({PATIENT_ID, *(tag for pair in _NOW_TAGS.values() for tag in pair)})

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                       "UR", "UT"})
_BINARY_VRS = frozenset({"OB", "OW", "UN"})
# boost::lexical_cast ranges of the integer VRs DCMTK fills from a string.
_INT_RANGES = {"US": (0, 0xFFFF), "SS": (-0x8000, 0x7FFF), "UL": (0, 0xFFFFFFFF), "OL": (0, 0xFFFFFFFF),
               "SL": (-0x80000000, 0x7FFFFFFF)}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)
_DATA_URI = re.compile(r"data:([^;]+);base64,([a-zA-Z0-9=+/]*)", re.DOTALL)


@dataclass(frozen=True)
class Content:
    mime: str
    data: bytes


@dataclass
class Created:
    """What /tools/create-dicom made: one instance (``results[0]``), or a series of them (``series``)."""

    results: list[StoreResult] = field(default_factory=list)
    series: str | None = None


@dataclass
class Options:
    """The request's options, checked (CreateDicomV2)."""

    decode_binary: bool = True
    private_creator: str = ""
    force: bool = False
    encapsulate: bool = False


def data_uri_parse(uri: str) -> Content:
    """``data:<mime>;base64,<data>`` (Toolbox::DecodeDataUriScheme); anything else is Orthanc's BadFileFormat."""
    match = _DATA_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise BadFileFormat()
    try:
        return Content(mime=match[1].lower(), data=base64.b64decode(match[2], validate=True))
    except binascii.Error:
        raise BadFileFormat() from None


# --- Tags ----------------------------------------------------------------------------------------------------

def _tag_parse(name: str, dictionary: dict) -> int:
    """FromDcmtkBridge::ParseTag: hexadecimal forms, DCMTK's names (not pydicom keywords that DCMTK spells
    otherwise, e.g. OtherPatientIDs, RETIRED_ in DCMTK) and the names of the configuration's "Dictionary"."""
    try:
        tag = int(parse_tag(name))
    except ValueError:
        tag = None
    if tag is not None:
        dcmtk = _dcmtk_names()["public"].get(tag_key(tag))
        if dcmtk is None or dcmtk == name.strip() or not name.strip().isidentifier():
            return tag
    for (custom, _creator), (_vr, custom_name) in dictionary.items():
        if custom_name == name:
            return custom
    raise UnknownDicomTag()


def _public_vr(tag: int) -> str:
    """DCMTK's VR of a public tag: "US or SS" is its xs, "OB or OW" its ox (filled as OB), "US or OW" its lt."""
    if not tag & 0xFFFF:
        return "UL"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return {"US or SS": "xs", "OB or OW": "OB", "US or OW": "lt", "US or SS or OW": "lt"}.get(vr, vr)


class _Builder:
    """A dataset being created, with the encoding and options its values are written with."""

    def __init__(self, *, encoding: str, options: Options, dictionary: dict):
        self.ds = Dataset()
        self.options = options
        self.dictionary = dictionary
        self.encoding = encoding
        self.transfer_syntax = ExplicitVRLittleEndian

    # -- encoding --

    def set_encoding(self, encoding: str) -> None:
        """ParsedDicomFile::SetEncoding: Windows1251 has no DICOM term, the element is left as it is."""
        self.encoding = encoding
        if encoding != "Windows1251":
            self.ds[SPECIFIC_CHARACTER_SET] = DataElement(SPECIFIC_CHARACTER_SET, "CS",
                                                          ENCODING_TO_CHARSET[encoding].encode())

    def text(self, value: str) -> bytes:
        """UTF-8 text in the dataset's encoding (Toolbox::ConvertFromUtf8 drops what the target cannot hold)."""
        codec = ENCODING_CODECS.get(self.encoding)
        if codec is None:
            return value.encode("ascii", "ignore")
        return value.encode(codec, "ignore")

    # -- elements --

    def vr(self, tag: int) -> str:
        if not tag >> 16 & 1:
            return _public_vr(tag)
        if 0x0010 <= tag & 0xFFFF <= 0x00FF:
            return "LO"  # a private creator
        creator = self.options.private_creator
        entry = dictionary_entry(self.dictionary, tag, creator) if creator else None
        return entry[0] if entry else "UN"

    def fill(self, tag: int, vr: str, value: str) -> Any:
        """The element value of a string (FromDcmtkBridge::FillElementWithString)."""
        if self.options.decode_binary and value.startswith(BINARY_URI_PREFIX):
            raw = data_uri_parse(value).data
        else:
            raw = self.text(value)
        if vr in _BINARY_VRS:
            if vr == "OW" and len(raw) % 2:
                raise ArchiveError(orthanc_error=OrthancError.INTERNAL_ERROR)
            return raw + b"\x00" if len(raw) % 2 else raw
        if vr in _TEXT_VRS:
            return raw
        text = raw.decode("latin-1")
        out_of_range = BadFileFormat(
            f'While creating a DICOM instance, tag ({tag_key(tag)}) has out-of-range value: "{text}"')
        if vr == "AT":
            return _tag_parse(value, self.dictionary)
        if vr == "xs":
            if "\\" in text:
                return [_integer(part, "US", out_of_range) for part in text.split("\\")]
            return _integer(text, "SS" if "-" in text else "US", out_of_range)
        if vr in _INT_RANGES:
            return _integer(text, vr, out_of_range)
        if vr in ("FL", "OF", "FD", "OD"):
            if not _FLOAT.fullmatch(text):
                raise out_of_range
            return float(text)
        raise out_of_range  # SQ, US or OW (lt), 64-bit VRs: DCMTK cannot fill them from a string

    def element(self, tag: int, value: Any, *, top: bool) -> DataElement:
        """An element from a JSON value: ParsedDicomFile::Replace at the top level, FromJson in items."""
        vr = self.vr(tag)
        if isinstance(value, str):
            if top and value == "":
                # Replace() leaves an empty string unfilled: an empty element, whatever the VR
                empty: Any = PydicomSequence([]) if vr == "SQ" else b"" if vr in _TEXT_VRS | _BINARY_VRS else None
                return DataElement(tag, _written_vr(vr, None), empty)
            filled = self.fill(tag, vr, value)
            return DataElement(tag, _written_vr(vr, filled), filled)
        if value is None:
            filled = self.fill(tag, vr, "")
            return DataElement(tag, _written_vr(vr, filled), filled)
        if isinstance(value, list):
            if vr != "SQ":
                raise BadParameterType(f"Bad Parameter type for tag {tag_key(tag)}")
            items = []
            for entry in value:
                item = Dataset()
                if isinstance(entry, dict):
                    for name in sorted(entry):
                        sub = _tag_parse(name, self.dictionary)
                        item[sub] = self.element(sub, entry[name], top=False)
                elif not (isinstance(entry, list) and not entry):  # [] is an empty item (Lua's {})
                    raise BadParameterType()
                items.append(item)
            return DataElement(tag, "SQ", PydicomSequence(items))
        raise BadParameterType(f"Bad Parameter type for tag {tag_key(tag)}")

    def replace(self, tag: int, value: Any) -> None:
        """ParsedDicomFile::Replace(tag, JSON value, InsertIfAbsent)."""
        if not tag & 0xFFFF or tag >> 16 == 0x0002:
            # group lengths and the file meta information are the writer's business (Orthanc answers 200 too;
            # pydicom refuses a group 0002 element in the dataset)
            return
        if isinstance(value, str):
            if self.options.decode_binary and tag in (ENCAPSULATED_DOCUMENT, PIXEL_DATA) \
                    and _DATA_URI.fullmatch(value):
                self.ds.pop(tag, None)
                self.embed(value)
                return
        elif tag in (SOP_CLASS_UID, SOP_INSTANCE_UID):
            raise BadParameterType()
        self.ds[tag] = self.element(tag, value, top=True)

    def replace_plain(self, tag: int, value: str) -> None:
        """ParsedDicomFile::ReplacePlainString: public tags only, no data URI decoding."""
        if tag >> 16 & 1:
            raise ArchiveError(f"Cannot apply this function to private tags: {tag_key(tag)}",
                               orthanc_error=OrthancError.INTERNAL_ERROR)
        decode, self.options.decode_binary = self.options.decode_binary, False
        try:
            self.replace(tag, value)
        finally:
            self.options.decode_binary = decode

    def set_if_absent(self, tag: int, value: str) -> None:
        if tag not in self.ds:
            self.replace_plain(tag, value)

    # -- content --

    def embed(self, uri: str) -> None:
        """ParsedDicomFile::EmbedContent."""
        content = data_uri_parse(uri)
        mime = "image/jpeg" if content.mime == "image/jpg" else content.mime  # tolerated since 1.11.2
        if mime == "image/jpeg" and self.options.encapsulate:
            _jpeg_encapsulate(self, content.data)
        elif mime in _IMAGE_MODES:
            try:
                image = Image.open(io.BytesIO(content.data))
                image.load()
            except (OSError, ValueError):
                raise BadFileFormat() from None
            if image.mode not in _IMAGE_MODES[mime]:
                raise ArchiveError(orthanc_error=OrthancError.NOT_IMPLEMENTED)  # palette, grey + alpha, CMYK...
            _pixels_embed(self, _image_pixels(image))
        elif mime == "image/x-portable-arbitrarymap":
            _pixels_embed(self, _pam_pixels(content.data))
        elif mime == "application/octet-stream":
            self.pixel_data(content.data)
        elif mime in _DOCUMENTS:
            if mime == "application/pdf" and not content.data.startswith(b"%PDF-"):
                raise BadFileFormat("Not a PDF file")
            sop_class, modality = _DOCUMENTS[mime]
            self.replace_plain(0x00420012, mime)  # MIMETypeOfEncapsulatedDocument
            data = content.data + b"\x00" if len(content.data) % 2 else content.data
            self.ds[ENCAPSULATED_DOCUMENT] = DataElement(ENCAPSULATED_DOCUMENT, "OB", data)
            self.set_if_absent(SOP_CLASS_UID, sop_class)
            self.set_if_absent(0x00080060, modality)
            if mime == "application/pdf":
                self.set_if_absent(0x00080064, "WSD")  # ConversionType
        elif mime in _KNOWN_MIME:
            raise ArchiveError(f"Unsupported MIME type for the content of a new DICOM file: {mime}",
                               orthanc_error=OrthancError.NOT_IMPLEMENTED)
        else:
            raise ArchiveError(orthanc_error=OrthancError.PARAMETER_OUT_OF_RANGE)

    def pixel_data(self, data: bytes) -> None:
        self.ds[PIXEL_DATA] = DataElement(PIXEL_DATA, "OW", data + b"\x00" if len(data) % 2 else data)

    # -- output --

    def to_bytes(self) -> bytes:
        ds = self.ds
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = self.transfer_syntax
        ds.file_meta.MediaStorageSOPClassUID = _uid(ds, SOP_CLASS_UID) or DCMTK_NO_SOP_CLASS
        ds.file_meta.MediaStorageSOPInstanceUID = _uid(ds, SOP_INSTANCE_UID)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    def clone(self) -> _Builder:
        other = _Builder(encoding=self.encoding, options=self.options, dictionary=self.dictionary)
        other.ds = _copy(self.ds)
        other.transfer_syntax = self.transfer_syntax
        return other


def _copy(ds: Dataset) -> Dataset:
    out = Dataset()
    for elem in ds:
        if elem.VR == "SQ":
            out[elem.tag] = DataElement(elem.tag, "SQ", PydicomSequence([_copy(item) for item in elem.value]))
        else:
            out[elem.tag] = DataElement(elem.tag, elem.VR, elem.value)
    return out


def _uid(ds: Dataset, tag: int) -> str:
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    return (value.decode("latin-1") if isinstance(value, bytes) else str(value)).rstrip("\x00 ")


def _written_vr(vr: str, value: Any) -> str:
    if vr == "xs":
        return "SS" if isinstance(value, int) and value < 0 else "US"
    return vr


def _integer(text: str, vr: str, error: Exception) -> int:
    if not _INTEGER.fullmatch(text):
        raise error
    number = int(text)
    low, high = _INT_RANGES[vr]
    if not low <= number <= high:
        raise error
    return number


# --- Images ----------------------------------------------------------------------------------------------------

def _image_pixels(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))  # RGBA: the alpha channel dropped


def _pam_pixels(data: bytes) -> np.ndarray:
    """A PAM file (Netpbm "P7", as Orthanc's PamReader reads it): grey or RGB(A), 8 or 16 bits big endian."""
    header, sep, body = data.partition(b"ENDHDR\n")
    lines = header.decode("ascii", "replace").split("\n")
    if not sep or lines[0].strip() != "P7":
        raise BadFileFormat()
    fields = dict(line.split(None, 1) for line in lines[1:] if line.strip() and not line.startswith("#")
                  and len(line.split(None, 1)) == 2)
    try:
        width, height, depth, maxval = (int(fields[k]) for k in ("WIDTH", "HEIGHT", "DEPTH", "MAXVAL"))
    except (KeyError, ValueError):
        raise BadFileFormat() from None
    if depth not in (1, 3, 4) or maxval not in (255, 65535):
        raise ArchiveError(orthanc_error=OrthancError.NOT_IMPLEMENTED)
    dtype = np.dtype(">u2") if maxval == 65535 else np.dtype(np.uint8)
    size = width * height * depth * dtype.itemsize
    if len(body) < size:
        raise BadFileFormat()
    pixels = np.frombuffer(body[:size], dtype=dtype).reshape(height, width, depth).astype(dtype.newbyteorder("="))
    return pixels[:, :, 0] if depth == 1 else pixels[:, :, :3]


def _pixels_embed(builder: _Builder, pixels: np.ndarray) -> None:
    """ParsedDicomFile::EmbedImage (ConfigureTagsForUncompressedImage): native pixels, 8 or 16 bits grey or
    RGB; PhotometricInterpretation kept if given for grey images; no NumberOfFrames."""
    grey = pixels.ndim == 2
    bits = 16 if pixels.dtype.itemsize == 2 else 8
    builder.ds.pop(PIXEL_DATA, None)
    height, width = pixels.shape[:2]
    builder.replace_plain(0x00280011, str(width))     # Columns
    builder.replace_plain(0x00280010, str(height))    # Rows
    builder.replace_plain(0x00280002, "1")            # SamplesPerPixel
    builder.replace_plain(0x00280103, "0")            # PixelRepresentation
    if grey:
        builder.set_if_absent(0x00280004, "MONOCHROME2")
    else:
        builder.replace_plain(0x00280004, "RGB")
        builder.replace_plain(0x00280002, "3")
    builder.replace_plain(0x00280100, str(bits))
    builder.replace_plain(0x00280101, str(bits))
    builder.replace_plain(0x00280102, str(bits - 1))
    if not grey:
        builder.replace_plain(0x00280006, "0")        # PlanarConfiguration: interleaved
    builder.pixel_data(np.ascontiguousarray(pixels.astype(f"<u{bits // 8}")).tobytes())


def _jpeg_encapsulate(builder: _Builder, data: bytes) -> None:
    """``Encapsulate`` (Orthanc 1.12.7): the JPEG as it is, one fragment, JPEG baseline transfer syntax."""
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError):
        raise BadFileFormat() from None
    grey = image.mode == "L"
    width, height = image.size
    builder.replace_plain(0x00280011, str(width))
    builder.replace_plain(0x00280010, str(height))
    builder.replace_plain(0x00280002, "1" if grey else "3")
    builder.replace_plain(0x00280004, "MONOCHROME2" if grey else "YBR_FULL_422")
    builder.replace_plain(0x00280100, "8")
    builder.replace_plain(0x00280101, "8")
    builder.replace_plain(0x00280102, "7")
    builder.replace_plain(0x00280103, "0")
    if not grey:
        builder.replace_plain(0x00280006, "0")
    builder.ds[PIXEL_DATA] = DataElement(PIXEL_DATA, "OB", encapsulate([data]))
    builder.transfer_syntax = JPEGBaseline8Bit


# --- The request ----------------------------------------------------------------------------------------------

def _bool_option(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest()
    return value


def _encoding_of(charset: str) -> str | None:
    """Orthanc's GetDicomEncoding: the encoding of a SpecificCharacterSet value, None if unknown."""
    return _CHARSET_TO_ENCODING.get(charset.strip().upper())


def _now() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S.000000")


def _new(*, encoding: str, options: Options, dictionary: dict) -> _Builder:
    """ParsedDicomFile(true): the identifiers, generated."""
    builder = _Builder(encoding=encoding, options=options, dictionary=dictionary)
    builder.replace_plain(PATIENT_ID, str(uuid.uuid4()))
    for tag in (0x0020000D, 0x0020000E, SOP_INSTANCE_UID):
        builder.replace_plain(tag, generate_uid(prefix=UID_ROOT))
    return builder


def _parent_copy(builder: _Builder, parent: Any, *, default_encoding: str) -> Level:
    """Copy the module tags of the parent levels from one instance of ``parent`` and take its encoding; the
    parent's level is returned. Unknown: CreateDicomBadParent; an instance: CreateDicomParentIsInstance."""
    if isinstance(parent, dict | list):
        raise ArchiveError("An unhandled exception was generated inside the HTTP server",
                           orthanc_error=OrthancError.INTERNAL_ERROR)
    public_id = "" if parent is None else ("true" if parent is True else "false" if parent is False
                                           else str(parent))
    try:
        resource = selectors.resource_get_any_level(public_id=public_id)
    except UnknownResource:
        raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_BAD_PARENT) from None
    level = list(Level)[resource.level]
    if level is Level.INSTANCE:
        raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_PARENT_IS_INSTANCE)
    sibling = pydicom.dcmread(io.BytesIO(selectors.instance_dicom(
        instance=selectors.instance_first(resource=resource))), stop_before_pixels=True)
    full = dataset_to_full(sibling, default_encoding=default_encoding, dictionary=builder.dictionary or None)
    charset = full.get("0008,0005")
    if charset is not None:
        value = charset.get("Value")
        encoding = _encoding_of(value) if isinstance(value, str) else None
        builder.set_encoding(encoding or default_encoding)
    wanted = set().union(*(MODULE_TAGS[up] for up in list(Level)[:level.depth + 1]))
    for key in sorted(wanted):
        entry = full.get(key)
        if entry is None or entry["Type"] not in ("Null", "String"):
            continue
        value = entry["Value"] if entry["Type"] == "String" else ""
        builder.replace_plain(int(key[:4], 16) << 16 | int(key[5:], 16), value)
    return level


def _inject(builder: _Builder, tags: Any) -> None:
    """InjectTags: the request's tags, in the sorted order of their names."""
    if not isinstance(tags, dict):
        raise BadRequest("Tags field is not an array")
    for name in sorted(tags):
        tag = _tag_parse(name, builder.dictionary)
        if tag == SPECIFIC_CHARACTER_SET:
            continue
        if not builder.options.force and tag not in _FORCE_FREE and tag in builder.ds:
            raise ArchiveError(name, orthanc_error=OrthancError.CREATE_DICOM_OVERRIDE_TAG)
        if tag == PIXEL_DATA:
            raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_USE_CONTENT)
        builder.replace(tag, tags[name])


def _store(builder: _Builder, origin: Origin) -> StoreResult:
    result = instance_store(data=builder.to_bytes(), origin=origin)
    if result.status is StoreStatus.FAILURE:
        raise ArchiveError(orthanc_error=OrthancError.CANNOT_STORE_INSTANCE)
    return result


def _v1(body: dict, *, default_encoding: str, dictionary: dict, origin: Origin) -> Created:
    """The request of Orthanc <= 0.9.3: every member a tag with a string value; no dates, no encoding set."""
    builder = _new(encoding=default_encoding, options=Options(decode_binary=False), dictionary=dictionary)
    for name in sorted(body):
        value = body[name]
        if not isinstance(value, str):
            raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_NOT_STRING)
        tag = _tag_parse(name, dictionary)
        if tag == PIXEL_DATA:
            builder.embed(value)
        else:
            builder.replace_plain(tag, value)
            if tag == SPECIFIC_CHARACTER_SET:
                builder.encoding = _encoding_of(value) or default_encoding
    return Created(results=[_store(builder, origin)])


def _series(builder: _Builder, content: list, *, origin: Origin) -> Created:
    """CreateSeries: one instance per item of Content, numbered from 1; on error the series made so far is
    deleted. Orthanc 1.10.1 then looks the series up from an instance it has not stored when the first item
    fails, which answers Unknown resource (404): kept, as clients see it."""
    builder.replace_plain(0x00201002, str(len(content)))   # ImagesInAcquisition
    builder.replace_plain(0x00200105, "1")                 # NumberOfTemporalPositions
    created = Created()
    try:
        for index, item in enumerate(content):
            instance = builder.clone()
            instance.replace_plain(SOP_INSTANCE_UID, generate_uid(prefix=UID_ROOT))
            payload = item
            if isinstance(item, dict):
                if "Content" not in item:
                    raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_NO_PAYLOAD)
                payload = item["Content"]
                if "Tags" in item:
                    _inject(instance, item["Tags"])
            if not isinstance(payload, str):
                raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_USE_DATA_URI_SCHEME)
            instance.embed(payload)
            instance.replace_plain(0x00200013, str(index + 1))   # InstanceNumber
            instance.replace_plain(0x00541330, str(index + 1))   # ImageIndex
            created.results.append(_store(instance, origin))
    except ArchiveError:
        if not created.results:
            raise UnknownResource() from None
        resource_delete(level=Level.SERIES, public_id=created.results[-1].ids.series)
        raise
    created.series = created.results[-1].ids.series
    return created


def dicom_create(*, body: dict, origin: Origin) -> Created:
    """Create and store the instance(s) of a /tools/create-dicom request (Orthanc's CreateDicom), with the
    DefaultEncoding, DefaultPrivateCreator and Dictionary options in force."""
    default_encoding = runtime.default_encoding()
    dictionary = archive_settings().dictionary
    if "Tags" not in body:
        return _v1(body, default_encoding=default_encoding, dictionary=dictionary, origin=origin)
    tags = body["Tags"]
    if not isinstance(tags, dict):
        raise BadRequest()
    encoding = default_encoding
    if "SpecificCharacterSet" in tags:
        charset = tags["SpecificCharacterSet"]
        if not isinstance(charset, str):
            raise ArchiveError("An unhandled exception was generated inside the HTTP server",
                               orthanc_error=OrthancError.INTERNAL_ERROR)
        encoding = _encoding_of(charset)
        if encoding is None:
            raise ArchiveError(f"Unknown specific character set: {charset}",
                               orthanc_error=OrthancError.PARAMETER_OUT_OF_RANGE)
    options = Options()
    builder = _new(encoding=encoding, options=options, dictionary=dictionary)
    builder.set_encoding(encoding)
    parent_level = _parent_copy(builder, body["Parent"], default_encoding=default_encoding) \
        if "Parent" in body else None
    options.decode_binary = _bool_option(body, "InterpretBinaryTags", True)
    if "PrivateCreator" in body:
        if not isinstance(body["PrivateCreator"], str):
            raise BadRequest()
        options.private_creator = body["PrivateCreator"]
    else:
        options.private_creator = str(settings.ORTHANC.get("DefaultPrivateCreator") or "")
    options.force = _bool_option(body, "Force", False)
    options.encapsulate = _bool_option(body, "Encapsulate", False)
    date, time = _now()
    levels = ["Acquisition", "Content", "InstanceCreation"]
    if parent_level in (None, Level.PATIENT, Level.STUDY):
        levels.append("Series")
    if parent_level in (None, Level.PATIENT):
        levels.append("Study")
    for prefix in levels:
        date_tag, time_tag = _NOW_TAGS[prefix]
        builder.replace_plain(date_tag, date)
        builder.replace_plain(time_tag, time)
    _inject(builder, tags)
    if "Content" in body:
        content = body["Content"]
        if isinstance(content, str):
            builder.embed(content)
        elif isinstance(content, list):
            if content:
                return _series(builder, content, origin=origin)
        else:
            raise ArchiveError(orthanc_error=OrthancError.CREATE_DICOM_USE_DATA_URI_SCHEME)
    return Created(results=[_store(builder, origin)])
