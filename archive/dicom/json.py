"""Orthanc's JSON renderings of a DICOM dataset: full, short and simplified tags; header; module; content.

Orthanc builds these with DCMTK (``FromDcmtkBridge::DatasetToJson`` with ``DicomToJsonFlags_Default``).
The rules this module reproduces, on pydicom's raw elements so that a CT header converts in well under a
millisecond:

- Elements in tag order, group lengths included; at the top level, nothing after the pixel data
  (7fe0,0010) unless ``whole`` (``?whole``, Orthanc 1.12.4). The file meta group goes to ``/header``, and
  DCMTK ends it where (0002,0000) says, not where group 2 ends (``meta_boundary``).
- ``Name`` is DCMTK's dictionary name (``dcmtk_names.json``, else pydicom's keyword); a private creator
  element is ``PrivateCreator``; a private element named in DCMTK's private dictionary for its creator gets
  that name, any other unknown element ``Unknown Tag & Data``. Private elements whose creator is present in
  the same item carry ``PrivateCreator``.
- Text VRs: DCMTK's "machine string": trailing padding removed (spaces; NUL for UI), then cut at the first
  NUL; leading spaces stay. Every text VR (UIs and dates too) is converted from the dataset's character
  set: the first non-empty term of the top-level SpecificCharacterSet (DefaultEncoding when absent; an
  unsupported term means ASCII), ISO 2022 escape sequences removed when the attribute has several terms.
  Sequence items do not switch character set.
- Binary numbers (US, SS, UL, SL, FL, FD, and OD/OF/OL since Orthanc 1.12.11) print as Orthanc does:
  integers plainly, floats with 17 significant digits (``std::setprecision(17)``), values joined with ``\\``;
  an empty one is ``Null``. AT shows its first value as ``gggg,eeee``.
- OB, OW, UN and the other binary VRs are ``Null`` (Orthanc's ``ConvertBinaryToNull``), except UN elements
  that the dictionary knows as text (DICOM CP 246): public ones are decoded, private ones only if ASCII.
- A text value longer than 256 bytes once in UTF-8 is ``TooLong`` with a null value.
"""

from __future__ import annotations

import codecs
import functools
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as PydicomSequence
from pydicom.tag import BaseTag, Tag

from archive.dicom.items import SequenceStop, read_rest, sequence_items
from archive.dicom.tags import ENCODING_TO_CHARSET, parse_tag, tag_key, tag_name
from archive.errors import UnknownDicomTag
from archive.levels import Level

MAX_TAG_LENGTH = 256  # ORTHANC_MAXIMUM_TAG_LENGTH
PIXEL_DATA = 0x7FE00010
_SPECIFIC_CHARACTER_SET = 0x00080005
FORMATS = ("full", "short", "simplify")

# DCMTK's DcmByteString subclasses: the VRs whose value DCMTK hands out as a string.
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                       "UI", "UR", "UT"})
# struct codes of the binary numeric VRs Orthanc prints; OD/OF/OL are printed since Orthanc 1.12.11.
_NUMBER_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
               "OF": "f", "OD": "d", "OL": "L"}
_FLOAT_VRS = frozenset({"FL", "FD", "OF", "OD"})
_LONG_HEADER_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_SWAP_SIZES = {"US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4, "FD": 8,
               "OD": 8, "SV": 8, "UV": 8, "OV": 8}
_SIZES = {"H": 2, "h": 2, "L": 4, "l": 4, "f": 4, "d": 8}


class ContentNotFound(KeyError):
    """A ``/instances/{id}/content/...`` path that does not exist in the dataset (Orthanc answers 404)."""


# --- Character sets --------------------------------------------------------------------------------

# SpecificCharacterSet defined terms -> Orthanc's Encoding (Enumerations.cpp, GetDicomEncoding).
_CHARSET_TO_ENCODING = {
    "ISO_IR 6": "Ascii", "ISO 2022 IR 6": "Ascii", "ISO_IR 192": "Utf8",
    "ISO_IR 100": "Latin1", "ISO 2022 IR 100": "Latin1", "ISO_IR 101": "Latin2", "ISO 2022 IR 101": "Latin2",
    "ISO_IR 109": "Latin3", "ISO 2022 IR 109": "Latin3", "ISO_IR 110": "Latin4", "ISO 2022 IR 110": "Latin4",
    "ISO_IR 148": "Latin5", "ISO 2022 IR 148": "Latin5", "ISO_IR 144": "Cyrillic", "ISO 2022 IR 144": "Cyrillic",
    "ISO_IR 127": "Arabic", "ISO 2022 IR 127": "Arabic", "ISO_IR 126": "Greek", "ISO 2022 IR 126": "Greek",
    "ISO_IR 138": "Hebrew", "ISO 2022 IR 138": "Hebrew", "ISO_IR 166": "Thai", "ISO 2022 IR 166": "Thai",
    "ISO_IR 13": "Japanese", "ISO 2022 IR 13": "Japanese", "GB18030": "Chinese", "GBK": "Chinese",
    "ISO 2022 IR 149": "Korean", "ISO 2022 IR 87": "JapaneseKanji", "ISO 2022 IR 58": "SimplifiedChinese",
}

# Orthanc's Encoding -> the Python codec of the converter Orthanc uses (Toolbox::GetBoostLocaleEncoding).
# None is Orthanc's ASCII filter.
ENCODING_CODECS: dict[str, str | None] = {
    "Ascii": None, "Utf8": "utf-8", "Latin1": "iso8859-1", "Latin2": "iso8859-2", "Latin3": "iso8859-3",
    "Latin4": "iso8859-4", "Latin5": "iso8859-9", "Cyrillic": "iso8859-5", "Windows1251": "cp1251",
    "Arabic": "iso8859-6", "Greek": "iso8859-7", "Hebrew": "iso8859-8", "Thai": "tis-620",
    "Japanese": "shift_jis", "Chinese": "gb18030", "Korean": "euc_kr", "JapaneseKanji": "iso2022_jp",
    "SimplifiedChinese": "gb2312",
}

# Toolbox::ConvertToAscii keeps printable ASCII and the line feed.
_ASCII_KEEP = bytes([0x0A, *range(0x20, 0x7F)])
_ASCII_DROP = bytes(b for b in range(256) if b not in _ASCII_KEEP)


def dicom_encoding(value: str) -> str | None:
    """Orthanc's GetDicomEncoding: the encoding of one SpecificCharacterSet term, None when it has none."""
    return _CHARSET_TO_ENCODING.get(value.strip().upper())


def encoding_from_charset(value: str | None, default_encoding: str = "Latin1") -> tuple[str, bool]:
    """Orthanc's encoding for a SpecificCharacterSet value, and whether it has code extensions.

    The first non-empty term decides (FromDcmtkBridge::DetectEncoding); an unsupported term means ASCII.
    """
    if value is None:
        return _check_encoding(default_encoding), False
    terms = value.split("\\")
    for term in terms:
        term = term.strip().upper().replace("ISO_IR_", "ISO_IR ").replace("ISO_2022_IR_", "ISO 2022 IR ")
        if term:
            return _CHARSET_TO_ENCODING.get(term, "Ascii"), len(terms) > 1
    return _check_encoding(default_encoding), len(terms) > 1


def _check_encoding(name: str) -> str:
    if name not in ENCODING_CODECS:
        raise ValueError(f"Unknown encoding: {name}")
    return name


def _remove_iso2022_escapes(text: str) -> str:
    """Toolbox::RemoveIso2022EscapeSequences: drop ESC, its intermediate bytes and its final byte."""
    if "\x1b" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "\x1b":
            i += 1
            while i < n and "\x20" <= text[i] <= "\x2f":
                i += 1
            i += 1  # the final byte
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def decode_text(data: bytes, encoding: str, code_extensions: bool = False) -> str:
    """Bytes of a DICOM string converted to text as Orthanc does (Toolbox::ConvertToUtf8): undecodable
    bytes are skipped, ASCII keeps only printable characters."""
    codec = ENCODING_CODECS[encoding]
    if codec is None:
        return data.translate(None, _ASCII_DROP).decode("ascii")
    if data.isascii() and codec != "iso2022_jp":
        text = data.decode("ascii")
    else:
        text = codecs.decode(data, codec, "ignore")
    return _remove_iso2022_escapes(text) if code_extensions else text


# --- Names and VRs ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=8192)
def _dictionary_vr(tag: int, creator: str | None) -> str:
    """The VR DCMTK's dictionary gives an element read in implicit VR (UN when unknown)."""
    if not tag & 0xFFFF:
        return "UL"  # group lengths
    try:
        if tag >> 16 & 1:
            if 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
                return "LO"  # private creator
            if creator is None or tag_name(tag, creator) == "Unknown Tag & Data":
                return "UN"  # DCMTK's private dictionary does not know it: read as UN
            # known to DCMTK: its VR is not in dcmtk_names.json, pydicom's private dictionary agrees mostly
            vr = private_dictionary_VR(tag, creator)
        else:
            vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr


# Orthanc's "Dictionary" option: (tag, private creator or None) -> (VR, name), see archive.settings.
CustomDictionary = Mapping[tuple[int, str | None], tuple[str, str]]


def dictionary_entry(dictionary: CustomDictionary, tag: int, creator: str | None) -> tuple[str, str] | None:
    """The "Dictionary" entry of an element, matched as DCMTK matches its dictionary: an entry with a private
    creator applies only under that creator, first with the exact tag, then with the low 8 bits of the
    element (``gggg,00ee``, how private entries are meant to be declared); an entry without one applies only
    to elements without a creator."""
    entry = dictionary.get((tag, creator))
    if entry is None and creator is not None:
        entry = dictionary.get((tag & 0xFFFF00FF, creator))
    return entry


# --- Element values --------------------------------------------------------------------------------

class _Context:
    """What the conversion of one dataset needs: its encoding, the file to read deferred values from."""

    __slots__ = ("encoding", "extensions", "max_length", "dictionary", "source", "in_meta", "extra_top",
                 "plain_ascii")

    def __init__(self, ds: Dataset, default_encoding: str, max_length: int,
                 dictionary: CustomDictionary | None, *, top: bool = True) -> None:
        self.encoding, self.extensions = encoding_from_charset(_charset_value(ds), default_encoding)
        # ASCII text decodes to itself, unless the ASCII filter or ISO 2022 escapes are in play
        self.plain_ascii = self.encoding not in ("Ascii", "JapaneseKanji") and not self.extensions
        self.max_length = max_length
        self.dictionary = dictionary or None
        self.source = _source(ds)
        self.in_meta, self.extra_top = meta_boundary(ds) if top else ((), {})


def meta_boundary(ds: Dataset) -> tuple[tuple[int, ...], dict[int, RawDataElement]]:
    """Where DCMTK puts the end of the file meta information, when pydicom disagrees.

    DCMTK trusts (0002,0000); pydicom reads the meta group until the group changes. Returns the
    top-level tags DCMTK reads as meta (a group length too large swallows e.g. (0008,0000): it shows in
    ``/header`` and not in ``/tags`` or ``/content``), and the group 2 elements found after the meta group
    that DCMTK reads as part of the dataset (a repeated (0002,0003) after the meta group shows in ``/tags``).
    """
    meta = getattr(ds, "file_meta", None)
    if not meta or getattr(ds, "preamble", None) is None or _is_deflated(meta):
        return (), {}  # deflated: pydicom's positions are in the inflated data, not in the file
    length = meta._dict.get(0x00020000)
    value = None if length is None else length.value
    if isinstance(value, bytes):
        value = struct.unpack("<L", value)[0] if len(value) == 4 else None
    if not isinstance(value, int):
        return (), {}
    end = 128 + 4 + 12 + value  # preamble, "DICM", the (0002,0000) element itself, the rest of the group
    swallowed: list[int] = []
    first_start = None
    converted = 0  # bytes of the elements pydicom converted while reading: their position is unknown
    for tag, elem in _sorted_items(ds._dict):
        tell = getattr(elem, "value_tell", None)
        if tell is None:
            converted += _encoded_size(elem)
            continue
        start = tell - (8 if elem.is_implicit_VR or elem.VR not in _LONG_HEADER_VRS else 12)
        if start >= end:
            first_start = start
            break
        swallowed.append(tag)
    extra: dict[int, RawDataElement] = {}
    if not swallowed and first_start is not None and first_start - end > converted:
        extra = _read_gap(ds, end, first_start)
    return tuple(swallowed), extra


def _encoded_size(elem: DataElement) -> int:
    """Size of a converted element in explicit VR (its header and its even-padded value)."""
    try:
        size = len(_encode_element(elem, elem.VR))
    except Exception:
        return 0
    return (12 if elem.VR in _LONG_HEADER_VRS else 8) + size + size % 2


def _is_deflated(meta: Dataset) -> bool:
    elem = meta._dict.get(0x00020010)
    value = b"" if elem is None else elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).rstrip(" \x00") in ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95")


def _read_gap(ds: Dataset, start: int, stop: int) -> dict[int, RawDataElement]:
    """Parse the elements between the end of the meta group and the first element pydicom kept."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import data_element_generator

    _, src, _ = _source(ds)
    try:
        if isinstance(src, str):
            with open(src, "rb") as f:
                f.seek(start)
                data = f.read(stop - start)
        elif src is not None:
            position = src.tell()
            src.seek(start)
            data = src.read(stop - start)
            src.seek(position)
        else:
            return {}
        first = next(e for e in ds._dict.values() if type(e) is RawDataElement)
        elements = data_element_generator(DicomBytesIO(data), first.is_implicit_VR, first.is_little_endian)
        return {int(e.tag): e for e in elements if e.tag >> 16 == 0x0002}
    except Exception:  # a damaged gap: keep what pydicom read
        return {}


def _charset_value(ds: Dataset) -> str | None:
    elem = ds._dict.get(_SPECIFIC_CHARACTER_SET)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        return _machine_string(value, "CS").decode("latin-1")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "\\".join(str(v) for v in value)


def _machine_string(data: bytes, vr: str) -> bytes:
    """DCMTK's value of a string element: trailing padding removed, then cut at the first NUL.

    DCMTK pads an odd-length value with a NUL when it reads it, so such a value keeps its trailing spaces.
    """
    if len(data) & 1:
        data += b"\x00"
    data = data.rstrip(b"\x00" if vr == "UI" else b" ")
    nul = data.find(b"\x00")
    return data if nul < 0 else data[:nul]


def _source(ds: Dataset) -> tuple:
    """Where pydicom can re-read deferred values of ``ds`` (the choice Dataset.__getitem__ makes: the
    buffer while it is open, e.g. the inflated data of a deflated file, else the file name)."""
    filename, buffer = getattr(ds, "filename", None), getattr(ds, "buffer", None)
    src = filename or buffer
    if filename and buffer is not None and not getattr(buffer, "closed", False):
        src = buffer
    return getattr(ds, "fileobj_type", None), src, getattr(ds, "timestamp", None)


def _load_deferred(raw: RawDataElement, source: tuple | None) -> RawDataElement:
    from pydicom.filereader import read_deferred_data_element

    if source is None or source[1] is None:
        raise OSError("deferred DICOM value without a source to read it from")
    return read_deferred_data_element(source[0], source[1], source[2], raw)


def _format_float(value: float) -> str:
    # std::ostream with setprecision(17) is printf's %.17g; C++ prints inf/nan the same way.
    return f"{value:.17g}"


def _numbers(data: bytes, vr: str, little: bool) -> str | None:
    code = _NUMBER_VRS[vr]
    size = _SIZES[code]
    if len(data) & 1:
        data += b"\x00"  # DCMTK pads odd lengths when it reads them
    count = len(data) // size
    if count == 0:
        return None  # DCMTK cannot read a value: Orthanc gives Null
    if len(data) % size:
        count = 1  # Orthanc reads only the first value of a length that is not a multiple
    values = struct.unpack(("<" if little else ">") + code * count, data[:count * size])
    if vr in _FLOAT_VRS:
        return "\\".join(map(_format_float, values))
    return "\\".join(map(str, values))


def _attribute_tag(data: bytes, little: bool) -> str | None:
    if len(data) < 4:
        return None
    group, element = struct.unpack("<HH" if little else ">HH", data[:4])
    return f"{group:04x},{element:04x}"


def _is_ascii_text(data: bytes) -> bool:
    """Toolbox::IsAsciiString: no NUL, no control character other than the line feed."""
    return not data.translate(None, _ASCII_KEEP)


def _value_from_raw(data: bytes, vr: str, little: bool, tag: int, creator: str | None,
                    ctx: _Context) -> str | None:
    """The value of a leaf element as Orthanc's ConvertLeafElement makes it; None is a Null value."""
    if vr in _TEXT_VRS:
        data = _machine_string(data, vr)
        return decode_text(data, ctx.encoding, ctx.extensions) if data else ""
    if vr in _NUMBER_VRS:
        return _numbers(data, vr, little)
    if vr == "AT":
        return _attribute_tag(data, little)
    if vr == "UN":
        # DICOM CP 246: an element sent as UN that the dictionary knows as text
        known = _dictionary_vr(tag, creator)
        if known in _TEXT_VRS:
            if not data:
                return ""
            if len(data) % 2 == 0 and data[-1] == 0:
                data = data[:-1]
            if tag >> 16 & 1:
                # the private tag's character set is unknown: only plain ASCII is shown
                return data.decode("ascii") if _is_ascii_text(data) else None
            return decode_text(data, ctx.encoding, ctx.extensions)
    return None


def _values(value: Any) -> list[Any]:
    """The values of a converted element (pydicom keeps several in a MultiValue, one as itself)."""
    if isinstance(value, list | tuple | MultiValue):
        return list(value)
    return [value]


def _value_from_element(elem: DataElement, vr: str, ctx: _Context | None = None) -> str | None:
    """Fallback for elements pydicom has already converted (datasets built in memory)."""
    value = elem.value
    if vr in _TEXT_VRS:
        if value is None:
            return ""
        if isinstance(value, bytes):
            data = _machine_string(value, vr)
            return data.decode("latin-1") if ctx is None else decode_text(data, ctx.encoding, ctx.extensions)
        text = "\\".join("" if v is None else str(v) for v in _values(value))
        return text.partition("\x00")[0].rstrip(" ")  # DCMTK's C string ends at the first NUL
    if vr in _NUMBER_VRS:
        if isinstance(value, bytes):
            return _numbers(value, vr, True)
        if value is None or value == "":
            return None
        values = _values(value)
        if not values:
            return None
        fmt = _format_float if vr in _FLOAT_VRS else str
        return "\\".join(fmt(v) for v in values)
    if vr == "AT":
        values = [] if value is None else _values(value)
        if not values:
            return None
        first = Tag(values[0])
        return f"{first.group:04x},{first.element:04x}"
    return None


def _private_creator(ds: Dataset, tag: int, cache: dict[int, str | None]) -> str | None:
    """The creator of a private data element (gggg,xxee) is the value of (gggg,00xx) in the same item."""
    if not tag >> 16 & 1 or (tag & 0xFFFF) < 0x1000:
        return None
    creator_tag = (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)
    if creator_tag in cache:
        return cache[creator_tag]
    elem = ds._dict.get(creator_tag)
    creator = None
    if elem is not None:
        value = elem.value
        if isinstance(value, bytes):
            creator = _machine_string(value, "LO").decode("latin-1") or None
        elif isinstance(value, str):
            creator = value.rstrip(" ") or None
    cache[creator_tag] = creator
    return creator


def _leaf(ds: Dataset, tag: int, elem: Any, creator: str | None, ctx: _Context) -> tuple[str, str | None]:
    """(Type, Value) of a leaf element in Orthanc's full format."""
    if type(elem) is RawDataElement:
        vr = elem.VR or _implicit_vr(tag, creator, ds)
        data = elem.value
        if vr in _TEXT_VRS and data is not None:
            # the common case, kept short: DCMTK's machine string (see _machine_string), then the charset
            if len(data) & 1:
                data += b"\x00"
            data = data.rstrip(b"\x00" if vr == "UI" else b" ")
            if b"\x00" in data:
                data = data[:data.index(b"\x00")]
            if data.isascii() and ctx.plain_ascii:
                value = data.decode("ascii")
            else:
                value = decode_text(data, ctx.encoding, ctx.extensions)
        elif vr not in _TEXT_VRS and vr not in _NUMBER_VRS and vr != "AT" and vr != "UN":
            return "Null", None  # binary: never read the bytes
        else:
            if data is None and elem.length:
                data = _load_deferred(elem, ctx.source).value
            value = _value_from_raw(data or b"", vr, elem.is_little_endian, tag, creator, ctx)
    else:
        value = _value_from_element(elem, elem.VR, ctx)
    if value is None:
        return "Null", None
    if ctx.max_length and len(value) > ctx.max_length // 4 and len(value.encode("utf-8")) > ctx.max_length:
        return "TooLong", None
    return "String", value


# DCMTK's "xs" elements whose VR it settles from PixelRepresentation (DcmItem::checkAndUpdateVR): the
# pixel padding, histogram, smallest/largest pixel values, LUT descriptor and real world value mappings.
# Other US-or-SS elements read in implicit VR (palette descriptors...) keep "xs" and Orthanc shows Null.
_XS_RESOLVED = frozenset({0x00280120, 0x00280121, 0x00603004, 0x00603006, 0x00189810, 0x00280106, 0x00280107,
                          0x00280108, 0x00280109, 0x00283002, 0x00409211, 0x00409216})


def _implicit_vr(tag: int, creator: str | None, ds: Dataset) -> str:
    vr = _dictionary_vr(tag, creator)
    if " or " in vr:
        if vr == "US or SS" and tag in _XS_RESOLVED:
            pr = ds._dict.get(0x00280103)  # looked up in the same item only, as DCMTK does
            if pr is None:
                return "xs"
            value = pr.value
            if isinstance(value, bytes):
                value = struct.unpack("<H" if pr.is_little_endian else ">H", value[:2])[0] if len(value) >= 2 else 0
            return "SS" if value == 1 else "US"
        return "xs" if vr == "US or SS" else "OW"  # OB or OW, US or OW...: binary either way
    return vr


def _sorted_items(items: dict) -> list[tuple[int, Any]]:
    """(tag, element) pairs in tag order, compared as plain ints (BaseTag's comparisons are Python code)."""
    return sorted(zip(map(int, items), items.values(), strict=True), key=_first)


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _sequence_items(ds: Dataset, tag: int, elem: Any, creator: str | None) -> list | None:
    """The items of a sequence element, None for a leaf: a raw sequence's read by items.sequence_items (no
    pydicom Dataset per item), one pydicom has read already (undefined length, built in memory) as it is."""
    value = elem.value
    if type(value) is list or isinstance(value, PydicomSequence):
        # includes implicit-VR elements of undefined length that pydicom parsed as items
        return value
    vr = elem.VR
    raw = type(elem) is RawDataElement
    if vr is None and raw:
        vr = _dictionary_vr(tag, creator)
    if vr != "SQ":
        return None
    if raw:
        if value is None and elem.length:
            elem = _load_deferred(elem, _source(ds))
        return sequence_items(elem.value or b"", implicit=elem.is_implicit_VR, little=elem.is_little_endian)
    value = ds[tag].value
    return value if isinstance(value, PydicomSequence) else None


def _dataset_full(ds: Dataset, ctx: _Context, *, depth: int, whole: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    items = ds._dict
    if depth == 0 and ctx.extra_top:
        items = {**ctx.extra_top, **items}
    creators: dict[int, str | None] = {}
    dictionary = ctx.dictionary
    for tag, elem in _sorted_items(items):
        if depth == 0:
            if not whole and tag > PIXEL_DATA:
                break
            if tag in ctx.in_meta:
                continue
        creator = _private_creator(ds, tag, creators) if tag >> 16 & 1 else None
        key = f"{tag >> 16:04x},{tag & 0xFFFF:04x}"
        custom = dictionary_entry(dictionary, tag, creator) if dictionary else None
        if custom is None:
            name = tag_name(tag, creator)
        else:
            name = custom[1]
            if type(elem) is RawDataElement and elem.VR is None:
                elem = elem._replace(VR=custom[0])  # implicit VR: the declared VR decides how to read it
        vr = elem.VR
        seq = None if vr in _TEXT_VRS else _sequence_items(ds, tag, elem, creator)
        if seq is not None:
            out[key] = {"Name": name, "Type": "Sequence",
                        "Value": [_dataset_full(item, ctx, depth=depth + 1, whole=whole) for item in seq]}
            continue
        kind, value = _leaf(ds, tag, elem, creator, ctx)
        entry: dict[str, Any] = {"Name": name}
        if creator is not None:
            entry["PrivateCreator"] = creator
        entry["Type"] = kind
        entry["Value"] = value
        out[key] = entry
    return out


# --- Public API ------------------------------------------------------------------------------------

def read_for_json(data: bytes, *, header_only: bool = False) -> Dataset:
    """Parse a stored file for the JSON routes: raw elements, values over 4 KB read only when needed
    (binary ones never), the pixel data left out when ``header_only``. Where DCMTK puts the end of the
    meta group is worked out by the functions below (``meta_boundary``), not here.

    pydicom's dcmread, except for the top-level sequences of undefined length, which it would read whole
    into a Dataset per item (a 500-frame enhanced MR: 0.1 s): their items are read by items.py (RawItem),
    the rest as dcmread reads it. The elements come in the same order, with the same values and errors. Such a
    sequence is a RawDataElement whose value is its list of items: for this module's functions, which read
    ``_dict``; pydicom's own ``ds[tag]`` cannot convert it."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_partial

    stop = SequenceStop(before_pixels=header_only)
    ds = read_partial(DicomBytesIO(data), stop, defer_size=4096, force=True)
    if stop.stopped:
        source = _source(ds)[1]     # the file read (a deflated file's inflated data), at the stopped element
        if not hasattr(source, "getvalue"):
            raise OSError("a DICOM dataset without its buffer")
        implicit, little = ds.original_encoding
        read_rest(ds._dict, source, stop, implicit=implicit, little=little, defer_size=4096)
    return ds


def inject_empty_pixel_data(ds: Dataset) -> Dataset:
    """``ds``, read from the part of a file before its pixel data, with the element the JSON of the whole
    file shows for it (Type Null: its value is never read), as Orthanc's InjectEmptyPixelData."""
    ds._dict[Tag(PIXEL_DATA)] = RawDataElement(Tag(PIXEL_DATA), "OW", 0, b"", 0, False, True)
    return ds


def dataset_to_full(ds: Dataset, *, max_length: int = MAX_TAG_LENGTH, whole: bool = False,
                    default_encoding: str = "Latin1", dictionary: CustomDictionary | None = None) -> dict:
    """Orthanc's "full" format of a dataset (without its file meta), as ``/instances/{id}/tags``.

    Parameters
    ----------
    ds : Dataset
        The dataset, preferably as read by ``dcmread`` (raw elements are converted without pydicom).
    max_length : int
        Text longer than this many UTF-8 bytes is ``TooLong`` (0: no limit).
    whole : bool
        Keep the elements after the pixel data (``?whole``).
    default_encoding : str
        Orthanc's ``DefaultEncoding``, for datasets without SpecificCharacterSet.
    dictionary : CustomDictionary, optional
        Orthanc's ``Dictionary`` option (``ArchiveSettings.dictionary``): names, and VRs of implicit-VR elements.
    """
    ctx = _Context(ds, default_encoding, max_length, dictionary)
    return _dataset_full(ds, ctx, depth=0, whole=whole)


def full_to_short(full: dict) -> dict:
    """Orthanc's ``?short`` format from the full one: ``{"0010,0010": "value"}``."""
    out: dict[str, Any] = {}
    for key, entry in full.items():
        kind = entry["Type"]
        if kind == "String":
            out[key] = entry["Value"]
        elif kind == "Sequence":
            out[key] = [full_to_short(item) for item in entry["Value"]]
        elif kind in ("Null", "TooLong"):
            out[key] = None
        # Orthanc's SimplifyDicomAsJson drops any other type (Binary)
    return out


def full_to_simplified(full: dict) -> dict:
    """Orthanc's ``?simplify`` format from the full one: ``{"PatientName": "value"}``.

    Elements sharing a name (private ones) collide as in Orthanc: the last in tag order wins. Keys come
    sorted, as JsonCpp writes them.
    """
    out: dict[str, Any] = {}
    for entry in full.values():
        kind = entry["Type"]
        if kind == "String":
            out[entry["Name"]] = entry["Value"]
        elif kind == "Sequence":
            out[entry["Name"]] = [full_to_simplified(item) for item in entry["Value"]]
        elif kind in ("Null", "TooLong"):
            out[entry["Name"]] = None
    return dict(sorted(out.items()))


def convert_full(full: dict, fmt: str) -> dict:
    """The full format converted to ``fmt`` (``full``, ``short`` or ``simplify``)."""
    if fmt == "full":
        return full
    if fmt == "short":
        return full_to_short(full)
    if fmt == "simplify":
        return full_to_simplified(full)
    raise ValueError(f"Unknown tags format: {fmt}")


def dataset_to_json(ds: Dataset, *, fmt: str = "full", whole: bool = False, default_encoding: str = "Latin1",
                    dictionary: CustomDictionary | None = None, max_length: int = MAX_TAG_LENGTH) -> dict:
    """The tags of a dataset in Orthanc's ``full``, ``short`` or ``simplify`` format."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown tags format: {fmt}")
    return convert_full(dataset_to_full(ds, max_length=max_length, whole=whole,
                                        default_encoding=default_encoding, dictionary=dictionary), fmt)


def main_tag_values(ds: Dataset, tags: Sequence[BaseTag], *, default_encoding: str = "Latin1") -> dict[str, str]:
    """Name -> stored value of the given top-level tags (tags.main_dicom_tags): Orthanc's summary with
    256-byte strings; null (binary, empty numbers, too long) and sequence values are not stored."""
    ctx = _Context(ds, default_encoding, MAX_TAG_LENGTH, None, top=False)
    items = ds._dict
    out: dict[str, str] = {}
    creators: dict[int, str | None] = {}
    for tag in tags:
        elem = items.get(tag)
        if elem is None or _sequence_items(ds, tag, elem, None) is not None:
            continue
        creator = _private_creator(ds, tag, creators) if tag >> 16 & 1 else None
        kind, value = _leaf(ds, tag, elem, creator, ctx)
        if kind == "String":
            out[tag_name(tag, creator)] = value
    return out


def main_tag_sequences(ds: Dataset, tags: Sequence[BaseTag], *, default_encoding: str = "Latin1") -> dict:
    """The given top-level tags that are sequences, in full format (tags.main_dicom_sequences)."""
    ctx = _Context(ds, default_encoding, MAX_TAG_LENGTH, None, top=False)
    out: dict[str, Any] = {}
    for tag in tags:
        elem = ds._dict.get(tag)
        seq = None if elem is None else _sequence_items(ds, tag, elem, None)
        if seq is not None:
            out[tag_key(tag)] = {"Name": tag_name(tag), "Type": "Sequence",
                                 "Value": [_dataset_full(item, ctx, depth=1, whole=True) for item in seq]}
    return out


def header_to_json(source: Dataset, fmt: str = "full") -> dict:
    """``/instances/{id}/header``: the file meta information, from ``ds.file_meta`` or from the dataset
    itself (then the dataset elements DCMTK reads as meta, see ``meta_boundary``, are included too).

    Orthanc converts it with no flags (``ExtractHeaderAsJson``): binary elements (0002,0001) and private
    or unknown ones are left out, text is ASCII-filtered, nothing is ``TooLong``.
    """
    meta = source
    extra: tuple[int, ...] = ()
    if not isinstance(source, FileMetaDataset) and isinstance(getattr(source, "file_meta", None), Dataset):
        meta = source.file_meta
        extra = meta_boundary(source)[0]
    ctx = _Context(Dataset(), "Ascii", 0, None, top=False)
    out: dict[str, Any] = {}
    elements = [(tag, elem, meta) for tag, elem in _sorted_items(meta._dict)]
    elements += [(tag, source._dict[tag], source) for tag in extra]
    for tag, elem, owner in elements:
        if tag >> 16 & 1:
            continue
        name = tag_name(tag)
        if name == "Unknown Tag & Data":
            continue
        vr = elem.VR or _implicit_vr(tag, None, owner)
        if vr in ("OB", "OW", "UN") or " or " in vr:
            continue
        kind, value = _leaf(owner, tag, elem, None, ctx)
        out[f"{tag >> 16:04x},{tag & 0xFFFF:04x}"] = {"Name": name, "Type": kind, "Value": value}
    return convert_full(out, fmt)


def _module(*tags: tuple[int, int]) -> frozenset[str]:
    return frozenset(f"{g:04x},{e:04x}" for g, e in tags)


# The tags of /{level}/{id}/module, as Orthanc's DicomTag::AddTagsForModule lists them (PS3.3 2011).
MODULE_TAGS: dict[Level, frozenset[str]] = {
    # Table C.7-1 Patient Module, with the Issuer of Patient ID macro (Table 10-18)
    Level.PATIENT: _module(
        (0x0010, 0x0010), (0x0010, 0x0020), (0x0010, 0x0030), (0x0010, 0x0040), (0x0008, 0x1120),
        (0x0010, 0x0032), (0x0010, 0x1000), (0x0010, 0x1002), (0x0010, 0x1001), (0x0010, 0x2160),
        (0x0010, 0x4000), (0x0010, 0x2201), (0x0010, 0x2202), (0x0010, 0x2292), (0x0010, 0x2293),
        (0x0010, 0x2294), (0x0010, 0x2297), (0x0010, 0x2298), (0x0010, 0x2299), (0x0012, 0x0062),
        (0x0012, 0x0063), (0x0012, 0x0064), (0x0010, 0x0021), (0x0010, 0x0024)),
    # Table C.7-3 General Study Module
    Level.STUDY: _module(
        (0x0020, 0x000D), (0x0008, 0x0020), (0x0008, 0x0030), (0x0008, 0x0090), (0x0008, 0x0096),
        (0x0020, 0x0010), (0x0008, 0x0050), (0x0008, 0x0051), (0x0008, 0x1030), (0x0008, 0x1048),
        (0x0008, 0x1049), (0x0008, 0x1060), (0x0008, 0x1062), (0x0032, 0x1034), (0x0008, 0x1110),
        (0x0008, 0x1032), (0x0040, 0x1012)),
    # Table C.7-5 General Series Module, with the Performed Procedure Step Summary macro (Table 10-16).
    # (0029,0109) is Orthanc's typo for Largest Pixel Value in Series (0028,0109): kept, to answer alike.
    Level.SERIES: _module(
        (0x0008, 0x0060), (0x0020, 0x000E), (0x0020, 0x0011), (0x0020, 0x0060), (0x0008, 0x0021),
        (0x0008, 0x0031), (0x0008, 0x1050), (0x0008, 0x1052), (0x0018, 0x1030), (0x0008, 0x103E),
        (0x0008, 0x103F), (0x0008, 0x1070), (0x0008, 0x1072), (0x0008, 0x1111), (0x0008, 0x1250),
        (0x0018, 0x0015), (0x0018, 0x5100), (0x0028, 0x0108), (0x0029, 0x0109), (0x0040, 0x0275),
        (0x0010, 0x2210), (0x0040, 0x0253), (0x0040, 0x0244), (0x0040, 0x0245), (0x0040, 0x0254),
        (0x0040, 0x0260), (0x0040, 0x0280)),
    # Table C.12-1 SOP Common Module, with the Digital Signatures macro (Table C.12-6)
    Level.INSTANCE: _module(
        (0x0008, 0x0016), (0x0008, 0x0018), (0x0008, 0x0005), (0x0008, 0x0012), (0x0008, 0x0013),
        (0x0008, 0x0014), (0x0008, 0x001A), (0x0008, 0x001B), (0x0008, 0x0110), (0x0008, 0x0201),
        (0x0018, 0xA001), (0x0020, 0x0013), (0x0100, 0x0410), (0x0100, 0x0420), (0x0100, 0x0424),
        (0x0100, 0x0426), (0x0400, 0x0500), (0x0400, 0x0561), (0x0040, 0xA390), (0x0028, 0x0303),
        (0x4FFE, 0x0001), (0xFFFA, 0xFFFA)),
}


def module_json(ds: Dataset, level: Level, fmt: str = "full", *, default_encoding: str = "Latin1",
                dictionary: CustomDictionary | None = None) -> dict:
    """``/{level}/{id}/module`` (and ``/studies/{id}/module-patient`` with Level.PATIENT).

    Orthanc takes the ``/tags`` of one instance of the resource and keeps the top-level elements of the
    level's DICOM module (its fixed list, not the main DICOM tags).
    """
    full = dataset_to_full(ds, default_encoding=default_encoding, dictionary=dictionary)
    wanted = MODULE_TAGS[level]
    return convert_full({k: v for k, v in full.items() if k in wanted}, fmt)


def shared_tags(datasets: Iterable[Dataset], *, default_encoding: str = "Latin1",
                dictionary: CustomDictionary | None = None) -> dict:
    """``/{level}/{id}/shared-tags`` in full format: the top-level ``String`` elements equal (name,
    creator and value) in every instance. Sequences, Null and TooLong values are never shared."""
    shared: dict[str, Any] | None = None
    for ds in datasets:
        full = dataset_to_full(ds, default_encoding=default_encoding, dictionary=dictionary)
        if shared is None:
            shared = {k: v for k, v in full.items() if v["Type"] == "String"}
        else:
            shared = {k: v for k, v in shared.items() if full.get(k) == v}
        if not shared:
            return {}
    return shared or {}


def _parse_content_tag(part: str) -> int:
    try:
        return int(parse_tag(part))
    except ValueError:
        # Not a tag at all (Orthanc: 500 "Unknown DICOM tag"), where an absent one is a 404
        raise UnknownDicomTag() from None


def _element_bytes(elem: Any, vr: str, source: tuple | None) -> bytes:
    """The value of a leaf as DCMTK streams it: text in its DICOM form (padding normalised), binary as is."""
    if type(elem) is RawDataElement:
        data = elem.value
        if data is None and elem.length:
            data = _load_deferred(elem, source).value
        data = data or b""
        if len(data) & 1:
            data += b"\x00"  # DCMTK pads odd lengths when it reads them
    else:
        data = _encode_element(elem, vr)
    if vr in _TEXT_VRS:
        data = data.rstrip(b"\x00" if vr == "UI" else b" ")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
    elif type(elem) is RawDataElement and not elem.is_little_endian and vr in _SWAP_SIZES:
        # DCMTK holds binary values in the machine's byte order (little endian here)
        size = _SWAP_SIZES[vr]
        data = b"".join(data[i:i + size][::-1] for i in range(0, len(data) - len(data) % size, size))
    return data


def _encode_element(elem: DataElement, vr: str) -> bytes:
    """Bytes of an element pydicom has already converted (little endian, as DCMTK would stream it)."""
    value = elem.value
    if isinstance(value, bytes):
        return value
    if value is None or value == "":
        return b""
    if vr in _NUMBER_VRS or vr == "AT":
        values = _values(value)
        if vr == "AT":
            return b"".join(struct.pack("<HH", int(v) >> 16, int(v) & 0xFFFF) for v in values)
        return struct.pack("<" + _NUMBER_VRS[vr] * len(values), *values)
    text = _value_from_element(elem, vr) or ""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _pixel_blocks(elem: Any, source: tuple | None) -> list[bytes]:
    """The items of encapsulated pixel data (offset table included), or the one native block."""
    data = _element_bytes(elem, "OB", source)
    if getattr(elem, "length", None) != 0xFFFFFFFF and not (type(elem) is DataElement and elem.is_undefined_length):
        return [data]
    blocks, pos = [], 0
    while pos + 8 <= len(data):
        group, element, length = struct.unpack("<HHL", data[pos:pos + 8])
        pos += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            break
        blocks.append(data[pos:pos + length])
        pos += length
    return blocks


def content_navigate(ds: Dataset, parts: Sequence[str]) -> list[str] | bytes:
    """``/instances/{id}/content/...``: a dataset lists its tags (``gggg-eeee``), a sequence its item
    indexes, a leaf gives its value bytes; ``7fe0-0010`` lists the pixel data blocks.

    Raises ContentNotFound for a path that does not exist (Orthanc answers a bare 404), UnknownDicomTag for a
    part that should be a tag and is none.
    """
    source = _source(ds)
    parts = list(parts)
    if parts and len(parts) <= 2 and _parse_content_tag(parts[0]) == PIXEL_DATA:
        elem = ds._dict.get(PIXEL_DATA)
        if elem is None:
            raise ContentNotFound(parts[0])
        blocks = _pixel_blocks(elem, source)
        if len(parts) == 1:
            return [str(i) for i in range(len(blocks))]
        if not parts[1].isdigit() or int(parts[1]) >= len(blocks):
            raise ContentNotFound(parts[1])
        return blocks[int(parts[1])]

    current = ds
    for pos in range(len(parts) // 2):
        tag, index = _parse_content_tag(parts[2 * pos]), parts[2 * pos + 1]
        elem = current._dict.get(tag)
        seq = None if elem is None else _sequence_items(current, tag, elem, None)
        if seq is None or not index.isdigit() or int(index) >= len(seq):
            raise ContentNotFound("/".join(parts))
        current = seq[int(index)]
    items = current._dict
    hidden: tuple[int, ...] = ()
    if current is ds:
        hidden, extra = meta_boundary(ds)
        if extra:
            items = {**extra, **items}
    if len(parts) % 2 == 0:
        return [f"{t >> 16:04x}-{t & 0xFFFF:04x}" for t, _ in _sorted_items(items) if t not in hidden]
    tag = _parse_content_tag(parts[-1])
    elem = items.get(tag) if tag not in hidden else None
    if elem is None:
        raise ContentNotFound("/".join(parts))
    seq = _sequence_items(current, tag, elem, _private_creator(current, tag, {}))
    if seq is not None:
        return [str(i) for i in range(len(seq))]
    creators: dict[int, str | None] = {}
    vr = elem.VR or _dictionary_vr(tag, _private_creator(current, tag, creators))
    return _element_bytes(elem, vr, source)


__all__ = [
    "ENCODING_CODECS", "ENCODING_TO_CHARSET", "FORMATS", "MAX_TAG_LENGTH", "MODULE_TAGS", "ContentNotFound",
    "content_navigate", "convert_full", "dataset_to_full", "dataset_to_json", "decode_text",
    "encoding_from_charset", "full_to_short", "full_to_simplified", "header_to_json", "meta_boundary",
    "module_json", "read_for_json", "shared_tags", "tag_key", "tag_name",
]


def tag_value(ds: Dataset, tag: int, *, default_encoding: str = "Latin1") -> str | None:
    """The value Orthanc matches a /tools/find constraint against for a top-level element of a stored file
    (its DICOM-as-JSON, read without length limit): the string, or None when absent, null, binary or a
    sequence."""
    elem = ds._dict.get(tag)
    if elem is None or _sequence_items(ds, tag, elem, None) is not None:
        return None
    ctx = _Context(ds, default_encoding, 0, None, top=False)
    creator = _private_creator(ds, tag, {}) if tag >> 16 & 1 else None
    kind, value = _leaf(ds, tag, elem, creator, ctx)
    return value if kind == "String" else None
