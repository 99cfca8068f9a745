"""Sequence items read straight from the bytes of a sequence, for the conversions to JSON (json.py) and the
ingest (parse.py).

Why: pydicom turns each item into a Dataset, whose construction costs ~20 us (a score of attribute sets);
a 2,460-item structured report has 7,300 items at all depths, 0.4 s of the 0.7 s of its
``/instances/{id}/tags``, and a sequence of undefined length is read so, whole, as soon as the file is (a
500-frame enhanced MR: 60-100 ms before the first of its tags is looked at). An item here is a ``RawItem``:
its elements by tag in ``_dict``, as RawDataElements, which is all json.py reads of a Dataset. The reading is
pydicom 3.0's, step for step (``read_sequence``, ``read_sequence_item``, ``read_dataset`` and
``data_element_generator`` of pydicom/filereader.py, without deferred values or a character set, which
json.py takes from the top-level dataset as Orthanc does): the same items, the same elements, the same values,
the same errors for data cut short. A sequence of undefined length is read at once, its value the list of its
RawItems; at the top level, ``SequenceStop`` and ``read_rest`` take those over from pydicom's readers.
"""

from __future__ import annotations

from io import BytesIO
from struct import Struct
from typing import BinaryIO

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import _dictionary_vr_fast
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.filereader import data_element_generator
from pydicom.fileutil import read_undefined_length_value
from pydicom.tag import BaseTag, SequenceDelimiterTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32
from pydicom.valuerep import VR as VR_

_ENCODED_VR = frozenset(vr.encode(default_encoding) for vr in VR_)
_LENGTH_32 = frozenset(EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = (0xFFFE, 0xE0DD)

_IMPLICIT = {True: Struct("<HHL").unpack_from, False: Struct(">HHL").unpack_from}
_EXPLICIT = {True: Struct("<HH2sH").unpack_from, False: Struct(">HH2sH").unpack_from}
_UINT4 = {True: Struct("<L").unpack_from, False: Struct(">L").unpack_from}
_TAG = {True: Struct("<HH").unpack_from, False: Struct(">HH").unpack_from}


class RawItem:
    """One item of a sequence: ``_dict`` maps each tag (an int) to its RawDataElement."""

    __slots__ = ("_dict",)

    def __init__(self, elements: dict[int, RawDataElement]) -> None:
        self._dict = elements

    def __repr__(self) -> str:
        return f"RawItem({len(self._dict)} elements)"


def sequence_items(data: bytes, *, implicit: bool, little: bool) -> list[RawItem]:
    """The items of a sequence whose value (of defined length) is ``data``, as pydicom's ``convert_SQ``.
    Raises OSError where an item header is cut short, struct.error where an element header is."""
    return _sequence(_Reader(data, little), 0, len(data), implicit)[0]


class _Reader:
    """The buffer being read, in one byte order (pydicom's ``fp``)."""

    __slots__ = ("data", "end", "little", "_file")

    def __init__(self, data: bytes, little: bool) -> None:
        self.data, self.end, self.little = bytes(data), len(data), little
        self._file: BytesIO | None = None

    def undefined_length_value(self, pos: int) -> tuple[bytes | None, int, bool]:
        """A value of undefined length that is not a sequence, up to its sequence delimiter, with pydicom's
        own reading (encapsulated fragments first, else a search for the delimiter): (value, position after
        it, whether the data ended before a delimiter)."""
        if self._file is None:
            self._file = BytesIO(self.data)
        self._file.seek(pos)
        try:
            value = read_undefined_length_value(self._file, self.little, SequenceDelimiterTag, None)
        except EOFError:
            return None, self._file.tell(), True
        return value, self._file.tell(), False


def _sequence(reader: _Reader, pos: int, length: int, implicit: bool) -> tuple[list[RawItem], int]:
    """read_sequence: items until ``length`` bytes are read, or until the sequence delimiter (undefined)."""
    items: list[RawItem] = []
    if length == 0:
        return items, pos
    undefined = length == _UNDEFINED
    start = pos
    item_header = _IMPLICIT[reader.little]
    while undefined or pos - start < length:
        if pos + 8 > reader.end:
            raise OSError(f"No tag to read at file position {pos:X}")
        group, element, item_length = item_header(reader.data, pos)
        pos += 8
        if (group, element) == _SEQUENCE_END:
            break
        elements, pos = _elements(reader, pos, None if item_length == _UNDEFINED else item_length, implicit)
        items.append(RawItem(elements))
    return items, pos


def _elements(reader: _Reader, pos: int, length: int | None, implicit: bool
              ) -> tuple[dict[int, RawDataElement], int]:
    """read_dataset of one item: its elements until ``length`` bytes are read or its delimiter (None)."""
    data, end, little = reader.data, reader.end, reader.little
    if not implicit:
        # An item may be in implicit VR inside an explicit VR dataset (PS3.5 6.2.2): its first element's VR says
        vr_bytes = data[pos + 4:pos + 6]
        if len(vr_bytes) == 2 and not (0x40 < vr_bytes[0] < 0x5B and 0x40 < vr_bytes[1] < 0x5B):
            implicit = True
    elements: dict[int, RawDataElement] = {}
    start = pos
    while length is None or pos - start < length:
        if pos + 8 > end:
            pos = end
            break
        tag, vr, value_length, pos = _element_header(data, pos, implicit, little)
        value_pos = pos
        if tag == _ITEM_END:
            break
        if value_length != _UNDEFINED:
            if value_length > 0:
                value = data[pos:pos + value_length]
                pos = min(pos + value_length, end)
            else:
                value = empty_value_for_VR(vr, raw=True)
            elements[tag] = RawDataElement(BaseTag(tag), vr, value_length, value, value_pos, implicit, little)
            continue
        vr = _undefined_length_vr(vr, tag, data, pos, little)
        if vr == VR_.SQ:
            items, pos = _sequence(reader, pos, _UNDEFINED, implicit)
            elements[tag] = RawDataElement(BaseTag(tag), VR_.SQ, _UNDEFINED, items, value_pos, implicit, little)
            continue
        value, pos, cut = reader.undefined_length_value(pos)
        if cut:
            # read_dataset keeps the elements read before in an item of defined length; in one of undefined
            # length, none (its dict comprehension is left by the EOFError)
            return (elements if length is not None else {}), pos
        elements[tag] = RawDataElement(BaseTag(tag), vr, value_length, value, value_pos, implicit, little)
    return elements, pos


def _element_header(data: bytes, pos: int, implicit: bool, little: bool) -> tuple[int, str | None, int, int]:
    """The element header at ``pos`` as data_element_generator reads it: (tag, VR, length, value position).
    In explicit VR, a VR that is no two capitals means this element alone is in implicit VR (pydicom's
    assume_implicit_vr_switch); a 4-byte length cut short raises struct.error, as in pydicom."""
    if implicit:
        group, elem, length = _IMPLICIT[little](data, pos)
        return group << 16 | elem, None, length, pos + 8
    group, elem, raw_vr, length = _EXPLICIT[little](data, pos)
    if raw_vr in _ENCODED_VR:
        vr = raw_vr.decode(default_encoding)
        if vr in _LENGTH_32:
            return group << 16 | elem, vr, _UINT4[little](data, pos + 8)[0], pos + 12
        return group << 16 | elem, vr, length, pos + 8
    if not (b"AA" <= raw_vr <= b"ZZ") and config.assume_implicit_vr_switch:
        group, elem, length = _IMPLICIT[little](data, pos)
        return group << 16 | elem, None, length, pos + 8
    return group << 16 | elem, raw_vr.decode(default_encoding), length, pos + 8


def _undefined_length_vr(vr: str | None, tag: int, data: bytes, pos: int, little: bool) -> str | None:
    """The VR pydicom reads an element of undefined length with: UN is a sequence (PS3.5 6.2.2), an unknown
    VR the dictionary's, or a sequence when items follow."""
    if vr == VR_.UN and config.settings.infer_sq_for_un_vr:
        vr = VR_.SQ
    if vr is None or vr == VR_.UN and config.replace_un_with_known_vr:
        try:
            vr = _dictionary_vr_fast(tag)
        except KeyError:
            group, elem = _TAG[little](data, pos)        # struct.error when cut short, as pydicom
            if group << 16 | elem == _ITEM:
                vr = VR_.SQ
    return vr


def undefined_length_sequence(data: bytes, pos: int, *, implicit: bool, little: bool
                              ) -> tuple[RawDataElement, int] | None:
    """The element of undefined length that starts at ``pos`` of a dataset, with its items, and where it ends;
    None when it is no sequence (encapsulated pixel data...)."""
    tag, vr, length, value_pos = _element_header(data, pos, implicit, little)
    if length != _UNDEFINED or _undefined_length_vr(vr, tag, data, value_pos, little) != VR_.SQ:
        return None
    items, end = _sequence(_Reader(data, little), value_pos, _UNDEFINED, implicit)
    return RawDataElement(BaseTag(tag), VR_.SQ, _UNDEFINED, items, value_pos, implicit, little), end


# --- Top-level datasets: pydicom's readers stopped at each sequence of undefined length --------------------

_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})


class SequenceStop:
    """A ``stop_when`` for pydicom's readers (dcmread's read_partial, read_dataset): stops at each top-level
    element of undefined length, which ``read_rest`` then reads, and at the pixel data when asked to (as
    dcmread's ``stop_before_pixels``)."""

    def __init__(self, *, before_pixels: bool) -> None:
        self.before_pixels = before_pixels
        self.stopped: list[int] = []

    def __call__(self, tag: int, vr: str | None, length: int) -> bool:
        if length == _UNDEFINED or self.before_pixels and tag in _PIXEL_DATA_TAGS:
            self.stopped.append(tag)
            return True
        return False


def read_rest(elements: dict, fp: BinaryIO, stop: SequenceStop, *, implicit: bool, little: bool,
              defer_size: int | None) -> None:
    """Go on reading the dataset that pydicom stopped (``stop``) at an element of undefined length, into
    ``elements`` (its ``_dict``), as pydicom would have: a sequence into RawItems (a RawDataElement whose
    value is the list of its items, for json.py's functions: pydicom's ``ds[tag]`` cannot convert it), any
    other value (encapsulated pixel data) and the elements after it by pydicom's own element reader, with
    ``defer_size``, until the next such element, the pixel data (``stop.before_pixels``) or the end. ``fp``
    is the file pydicom read (a deflated file's inflated data), at the element it stopped at."""
    body = fp.getvalue()       # type: ignore[attr-defined]   BytesIO: the bytes themselves, not a copy
    while stop.stopped:
        tag = stop.stopped.pop()
        if stop.before_pixels and tag in _PIXEL_DATA_TAGS:
            return
        found = undefined_length_sequence(body, fp.tell(), implicit=implicit, little=little)
        try:
            if found is not None:
                elements[found[0].tag] = found[0]
                fp.seek(found[1])
            else:
                element = next(data_element_generator(fp, implicit, little, defer_size=defer_size))
                elements[element.tag] = element
            for element in data_element_generator(fp, implicit, little, stop_when=stop, defer_size=defer_size):
                elements[element.tag] = element
        except EOFError:
            if config.settings.reading_validation_mode == config.RAISE:
                raise
            # read_dataset keeps no element of a dataset whose reading ended so (its dict comprehension)
            elements.clear()
            return
