"""Orthanc's JSON renderings of a DICOM dataset: full, short and simplified tags; header; content paths.

Rules, as Orthanc (DCMTK bridge) applies them to ``/instances/{id}/tags``:
- elements in tag order, up to the pixel data unless ``whole``; the file meta group goes to ``/header``;
- ``Name`` is the dictionary keyword; a private creator element is ``PrivateCreator``; an unknown
  (private) element is ``Unknown Tag & Data`` and carries its ``PrivateCreator``;
- sequences have ``Type: Sequence`` and a list of items; binary VRs (OB, OW, OF, OD, OL, OV, UN) are
  ``Null``; text longer than 256 bytes is ``TooLong`` (value null);
- numbers written in binary (US, SS, UL, SL, FL, FD...) print as boost::lexical_cast does: integers plainly,
  FL with 9 and FD with 17 significant digits (%g style);
- text is decoded with SpecificCharacterSet (DefaultEncoding when absent), trailing padding removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom import charset as dicom_charset
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from archive.dicom.tags import ENCODING_TO_CHARSET, tag_key
from archive.levels import Level

MAX_TAG_LENGTH = 256
PIXEL_DATA = Tag(0x7FE0, 0x0010)
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW", "US or SS or OW"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
_CHARSET_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}


class ContentNotFound(KeyError):
    """A /content path that does not exist in the dataset."""


def _encodings(ds: Dataset, default_encoding: str) -> list[str]:
    value = ds.get("SpecificCharacterSet")
    if value is None:
        value = ENCODING_TO_CHARSET.get(default_encoding, "ISO_IR 100")
    terms = [value] if isinstance(value, str) else list(value)
    return dicom_charset.convert_encodings(terms)


def _number(value: Any, vr: str) -> str:
    if isinstance(value, float):
        return f"{value:.9g}" if vr == "FL" else f"{value:.17g}"
    if isinstance(value, BaseTag):
        return f"{value.group:04x},{value.element:04x}"
    return str(value)


def _text(elem: DataElement, raw: bytes | None, encodings: list[str]) -> str:
    if raw is not None:
        if elem.VR in _CHARSET_VRS:
            delimiters = {0x5C, 0x3D, 0x5E} if elem.VR == "PN" else {0x5C}
            text = dicom_charset.decode_bytes(raw, encodings, delimiters)
        else:
            text = raw.decode("latin-1")
        return text.rstrip(" \x00")
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join("" if v is None else str(v) for v in value)
    return str(value).rstrip(" \x00")


def _raw_bytes(ds: Dataset, tag: BaseTag) -> bytes | None:
    raw = ds._dict.get(tag)
    value = getattr(raw, "value", None)
    if type(raw).__name__ == "RawDataElement" and isinstance(value, bytes):
        return value
    return None


def _leaf(ds: Dataset, elem: DataElement, encodings: list[str]) -> tuple[str, Any]:
    vr = elem.VR
    if vr in _BINARY_VRS or elem.tag == PIXEL_DATA:
        return "Null", None
    if vr in _TEXT_VRS:
        text = _text(elem, _raw_bytes(ds, elem.tag), encodings)
    else:
        value = elem.value
        if value is None or value == b"":
            text = ""
        elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            text = "\\".join(_number(v, vr) for v in value)
        elif isinstance(value, bytes):
            return "Null", None
        else:
            text = _number(value, vr)
    if len(text.encode("utf-8")) > MAX_TAG_LENGTH:
        return "TooLong", None
    return "String", text


def _private_creator(ds: Dataset, tag: BaseTag) -> str | None:
    if not tag.is_private or tag.element < 0x1000:
        return None
    creator_tag = Tag(tag.group, tag.element >> 8)
    if creator_tag in ds:
        return _text(ds[creator_tag], _raw_bytes(ds, creator_tag), ["iso8859"]) or None
    return None


def _name(tag: BaseTag, dictionary: dict[str, str]) -> str:
    key = tag_key(tag)
    if key in dictionary:
        return dictionary[key]
    if tag.is_private:
        if 0x0010 <= tag.element <= 0x00FF:
            return "PrivateCreator"
        return "Unknown Tag & Data"
    return keyword_for_tag(tag) or "Unknown Tag & Data"


def dataset_to_full(ds: Dataset, *, whole: bool = True, default_encoding: str = "Latin1",
                    dictionary: dict[str, str] | None = None, _encodings_cache: list[str] | None = None) -> dict:
    """Orthanc's "full" format of a dataset (not its file meta)."""
    encodings = _encodings_cache or _encodings(ds, default_encoding)
    dictionary = dictionary or {}
    out: dict[str, Any] = {}
    for tag in sorted(ds._dict):
        tag = Tag(tag)
        if tag.group == 0x0002:
            continue
        if not whole and tag > PIXEL_DATA:
            break
        elem = ds[tag]
        entry: dict[str, Any] = {"Name": _name(tag, dictionary)}
        creator = _private_creator(ds, tag)
        if creator is not None and entry["Name"] == "Unknown Tag & Data":
            entry["PrivateCreator"] = creator
        if elem.VR == "SQ":
            entry["Type"] = "Sequence"
            entry["Value"] = [dataset_to_full(item, whole=True, default_encoding=default_encoding,
                                              dictionary=dictionary, _encodings_cache=_item_encodings(item, encodings))
                              for item in (elem.value or [])]
        else:
            entry["Type"], entry["Value"] = _leaf(ds, elem, encodings)
        out[tag_key(tag)] = entry
    return out


def _item_encodings(item: Dataset, parent: list[str]) -> list[str]:
    value = item.get("SpecificCharacterSet")
    if value is None:
        return parent
    return dicom_charset.convert_encodings([value] if isinstance(value, str) else list(value))


def full_to_short(full: dict) -> dict:
    out = {}
    for key, entry in full.items():
        if entry["Type"] == "Sequence":
            out[key] = [full_to_short(item) for item in entry["Value"]]
        else:
            out[key] = entry["Value"]
    return out


def full_to_simplified(full: dict) -> dict:
    out = {}
    for entry in full.values():
        if entry["Type"] == "Sequence":
            out[entry["Name"]] = [full_to_simplified(item) for item in entry["Value"]]
        else:
            out[entry["Name"]] = entry["Value"]
    return out


def convert_full(full: dict, fmt: str) -> dict:
    if fmt == "short":
        return full_to_short(full)
    if fmt == "simplify":
        return full_to_simplified(full)
    return full


def dataset_to_json(ds: Dataset, *, fmt: str = "full", whole: bool = True, default_encoding: str = "Latin1",
                    dictionary: dict[str, str] | None = None) -> dict:
    """The tags of a dataset in Orthanc's ``full``, ``short`` or ``simplify`` format."""
    return convert_full(dataset_to_full(ds, whole=whole, default_encoding=default_encoding,
                                        dictionary=dictionary), fmt)


def header_to_json(file_meta: Dataset, fmt: str = "full") -> dict:
    """``/instances/{id}/header``: the file meta information (group 0002)."""
    encodings = ["iso8859"]
    out = {}
    for tag in sorted(file_meta._dict):
        tag = Tag(tag)
        elem = file_meta[tag]
        kind, value = _leaf(file_meta, elem, encodings)
        out[tag_key(tag)] = {"Name": keyword_for_tag(tag) or "Unknown Tag & Data", "Type": kind, "Value": value}
    return convert_full(out, fmt)


def module_json(ds: Dataset, level: Level, fmt: str = "full", *, default_encoding: str = "Latin1") -> dict:
    """``/{level}/{id}/module``: the tags of the file that belong to the level's DICOM module.

    Orthanc selects by its module definitions: the level's main DICOM tags plus the other tags of the same
    information entity that the file carries. We use the main DICOM tags of the level and keep the file's
    own value for each."""
    from archive.dicom.tags import MAIN_DICOM_TAGS

    full = dataset_to_full(ds, whole=False, default_encoding=default_encoding)
    wanted = {tag_key(t) for t in MAIN_DICOM_TAGS[level]}
    if level is Level.INSTANCE:
        wanted |= {"0008,0016", "0008,0014", "0020,0013"}
    return convert_full({k: v for k, v in full.items() if k in wanted}, fmt)


def shared_tags(datasets: Iterable[Dataset], *, default_encoding: str = "Latin1") -> dict:
    """Tags with the same value in every dataset (full format); sequences and binary values excluded."""
    shared: dict | None = None
    for ds in datasets:
        full = dataset_to_full(ds, whole=False, default_encoding=default_encoding)
        if shared is None:
            shared = {k: v for k, v in full.items() if v["Type"] == "String"}
        else:
            shared = {k: v for k, v in shared.items() if full.get(k) == v}
    return shared or {}


def content_navigate(ds: Dataset, parts: list[str]) -> list[str] | bytes:
    """``/instances/{id}/content/...``: a dataset lists its tags (``gggg-eeee``), a sequence its item
    indexes, a leaf gives its raw value bytes."""
    current: Any = ds
    for i, part in enumerate(parts):
        if isinstance(current, Dataset):
            try:
                tag = Tag(int(part[:4], 16), int(part[5:9] if "-" in part or "," in part else part[4:], 16))
            except ValueError:
                raise ContentNotFound(part) from None
            if tag not in current:
                raise ContentNotFound(part)
            elem = current[tag]
            if elem.VR == "SQ":
                current = elem.value
            else:
                if i != len(parts) - 1:
                    raise ContentNotFound(part)
                raw = _raw_bytes(current, tag)
                if raw is not None:
                    return raw
                value = elem.value
                if isinstance(value, bytes):
                    return value
                return _text(elem, None, []).encode("utf-8")
        else:
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                raise ContentNotFound(part) from None
    if isinstance(current, Dataset):
        return [f"{Tag(t).group:04x}-{Tag(t).element:04x}" for t in sorted(current._dict)
                if Tag(t).group != 0x0002]
    return [str(i) for i in range(len(current))]
