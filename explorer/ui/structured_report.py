"""A structured report (SR, key object selection) as a reader sees it: its title, state and content tree.

PS3.3 C.17.3 (SR Document Content): the dataset is the root CONTAINER; each content item has a concept name
(a code whose meaning is the label), a value according to its ValueType and, in its ContentSequence, the
items it holds, each with its relationship to it (CONTAINS, HAS PROPERTIES, INFERRED FROM...).

Read from the instance's tags in Orthanc's "full" JSON format, the one the tag tree shows, so the text is
decoded exactly as there (SpecificCharacterSet, DefaultEncoding). Everything here is plain text: the
template escapes it. A malformed item (no ValueType, a value missing) is shown for what it has, never an
error; the tree is cut at MAX_DEPTH levels and MAX_ITEMS items (a dose report holds thousands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from explorer.ui.reading import dicom_date, dicom_time, person_name

MAX_DEPTH = 30
MAX_ITEMS = 2000

_VALUE_TYPE = "0040,a040"
_CONCEPT_NAME = "0040,a043"
_CONTENT = "0040,a730"
_RELATIONSHIP = "0040,a010"
_CODE_VALUE, _CODING_SCHEME, _CODE_MEANING = "0008,0100", "0008,0102", "0008,0104"
_TEXT_VALUE = "0040,a160"
_CONCEPT_CODE = "0040,a168"
_MEASURED_VALUE, _NUMERIC_VALUE, _UNITS = "0040,a300", "0040,a30a", "0040,08ea"
_NUMERIC_QUALIFIER = "0040,a301"
_DATETIME, _DATE, _TIME, _PERSON, _UID = "0040,a120", "0040,a121", "0040,a122", "0040,a123", "0040,a124"
_REFERENCED_SOP, _REFERENCED_INSTANCE, _REFERENCED_FRAMES = "0008,1199", "0008,1155", "0008,1160"
_GRAPHIC_TYPE, _GRAPHIC_DATA = "0070,0023", "0070,0022"
_TEMPORAL_RANGE = "0040,a130"
_REFERENCED_ITEM = "0040,db73"
_COMPLETION, _VERIFICATION, _PRELIMINARY = "0040,a491", "0040,a493", "0040,a496"
_CONTENT_DATE, _CONTENT_TIME = "0008,0023", "0008,0033"
_VERIFYING_OBSERVER, _VERIFYING_NAME, _VERIFICATION_DATETIME = "0040,a073", "0040,a075", "0040,a030"

_REFERENCE_TYPES = frozenset({"IMAGE", "COMPOSITE", "WAVEFORM"})


@dataclass
class ReportItem:
    relationship: str               # "CONTAINS", "HAS PROPERTIES"...; "" for a by-reference or odd item
    value_type: str                 # "TEXT", "CODE", "NUM", "CONTAINER"...; "" when the item has none
    concept: str                    # the concept name's meaning
    value: str = ""                 # the value as text
    referenced_uid: str = ""        # IMAGE/COMPOSITE/WAVEFORM: the SOP Instance UID it points at
    instance: str = ""              # ... and that instance's Orthanc ID when the archive holds it
    children: list[ReportItem] = field(default_factory=list)


@dataclass
class Report:
    title: str
    facts: list[tuple[str, str]]    # (label, value): completion, verification, content date...
    items: list[ReportItem]
    left_out: int = 0               # items past MAX_ITEMS or MAX_DEPTH, not shown

    def references(self) -> list[ReportItem]:
        """The items that point at an instance, in document order."""
        found: list[ReportItem] = []

        def walk(items: list[ReportItem]) -> None:
            for item in items:
                if item.referenced_uid:
                    found.append(item)
                walk(item.children)

        walk(self.items)
        return found


def _text(dataset: dict, key: str) -> str:
    entry = dataset.get(key)
    value = entry.get("Value") if isinstance(entry, dict) else None
    return value.strip() if isinstance(value, str) else ""


def _first_item(dataset: dict, key: str) -> dict:
    entry = dataset.get(key)
    value = entry.get("Value") if isinstance(entry, dict) else None
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}


def _items(dataset: dict, key: str) -> list[dict]:
    entry = dataset.get(key)
    value = entry.get("Value") if isinstance(entry, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _code(item: dict) -> str:
    """A code as a reader wants it: its meaning, else its value and scheme."""
    meaning = _text(item, _CODE_MEANING)
    if meaning:
        return meaning
    value, scheme = _text(item, _CODE_VALUE), _text(item, _CODING_SCHEME)
    return f"{value} ({scheme})" if value and scheme else value


def _date_time(value: str) -> str:
    """A DICOM DT (YYYYMMDDHHMMSS.FFFFFF&ZZXX) as "YYYY-MM-DD HH:MM:SS"."""
    date, time = dicom_date(value[:8]), dicom_time(value[8:14]) if len(value) > 8 else ""
    return f"{date} {time}".strip()


def _numeric(item: dict) -> str:
    measured = _first_item(item, _MEASURED_VALUE)
    if not measured:
        qualifier = _code(_first_item(item, _NUMERIC_QUALIFIER))
        return qualifier or "(no value)"
    number = _text(measured, _NUMERIC_VALUE)
    units = _first_item(measured, _UNITS)
    # UCUM's CodeValue is the symbol ("mm", "cm2"); "1" (no unit) and an absent unit show the number alone
    symbol = _text(units, _CODE_VALUE) if _text(units, _CODING_SCHEME) == "UCUM" else _code(units)
    return f"{number} {symbol}" if symbol and symbol != "1" else number


def _value(item: dict, value_type: str) -> str:
    if value_type == "TEXT":
        return _text(item, _TEXT_VALUE)
    if value_type == "CODE":
        return _code(_first_item(item, _CONCEPT_CODE))
    if value_type == "NUM":
        return _numeric(item)
    if value_type == "DATETIME":
        return _date_time(_text(item, _DATETIME))
    if value_type == "DATE":
        return dicom_date(_text(item, _DATE))
    if value_type == "TIME":
        return dicom_time(_text(item, _TIME))
    if value_type == "PNAME":
        return person_name(_text(item, _PERSON))
    if value_type == "UIDREF":
        return _text(item, _UID)
    if value_type in ("SCOORD", "SCOORD3D"):
        points = len([v for v in _text(item, _GRAPHIC_DATA).split("\\") if v.strip()])
        points //= 3 if value_type == "SCOORD3D" else 2
        shape = _text(item, _GRAPHIC_TYPE).capitalize() or "Region"
        return f"{shape}, {points} point{'s' if points != 1 else ''}"
    if value_type == "TCOORD":
        return _text(item, _TEMPORAL_RANGE).capitalize() or "Time range"
    if value_type in _REFERENCE_TYPES:
        frames = [f for f in _text(_first_item(item, _REFERENCED_SOP), _REFERENCED_FRAMES).split("\\") if f]
        return ("frames " if len(frames) > 1 else "frame ") + ", ".join(frames) if frames else ""
    return ""


class _Walker:
    def __init__(self) -> None:
        self.count = 0
        self.left_out = 0

    def items(self, dataset: dict, depth: int) -> list[ReportItem]:
        content = _items(dataset, _CONTENT)
        if depth >= MAX_DEPTH:
            self.left_out += _count(content)
            return []
        out = []
        for position, item in enumerate(content):
            if self.count >= MAX_ITEMS:
                self.left_out += _count(content[position:])
                break
            self.count += 1
            out.append(self.item(item, depth))
        return out

    def item(self, item: dict, depth: int) -> ReportItem:
        value_type = _text(item, _VALUE_TYPE).upper()
        reference = _text(item, _REFERENCED_ITEM)
        node = ReportItem(relationship=_text(item, _RELATIONSHIP), value_type=value_type,
                          concept=_code(_first_item(item, _CONCEPT_NAME)), value=_value(item, value_type))
        if not value_type and reference:     # by-reference relationship (PS3.3 C.17.3.2.5)
            node.value = "see item " + ".".join(part for part in reference.split("\\") if part)
        if value_type in _REFERENCE_TYPES:
            node.referenced_uid = _text(_first_item(item, _REFERENCED_SOP), _REFERENCED_INSTANCE)
        node.children = self.items(item, depth + 1)
        return node


def _count(items: list[dict]) -> int:
    """Items of a subtree, nested ones included (what is left out of the page)."""
    total, stack = 0, list(items)
    while stack and total < 100_000:
        item = stack.pop()
        total += 1
        stack.extend(_items(item, _CONTENT))
    return total


def _facts(full: dict) -> list[tuple[str, str]]:
    facts = []
    for label, key in (("Completion", _COMPLETION), ("Verification", _VERIFICATION),
                       ("Preliminary", _PRELIMINARY)):
        if value := _text(full, key):
            facts.append((label, value.capitalize()))
    when = f"{dicom_date(_text(full, _CONTENT_DATE))} {dicom_time(_text(full, _CONTENT_TIME))}".strip()
    if when:
        facts.append(("Content date", when))
    for observer in _items(full, _VERIFYING_OBSERVER):
        who = person_name(_text(observer, _VERIFYING_NAME))
        at = _date_time(_text(observer, _VERIFICATION_DATETIME))
        if who or at:
            facts.append(("Verified by", f"{who}, {at}" if who and at else who or at))
    return facts


def is_report(full: dict) -> bool:
    """Whether the tags are those of an SR document: a root CONTAINER with content (PS3.3 C.17.3)."""
    return _text(full, _VALUE_TYPE).upper() == "CONTAINER" and bool(_items(full, _CONTENT))


def report_of(full: dict, *, instances_of: Callable[[list[str]], dict[str, str]] | None = None) -> Report | None:
    """The report of an instance's tags in "full" format; None when they are not an SR document.
    ``instances_of`` maps referenced SOP Instance UIDs to the Orthanc IDs of the instances the archive
    holds (one query for all), so that the page links them."""
    if not is_report(full):
        return None
    walker = _Walker()
    report = Report(title=_code(_first_item(full, _CONCEPT_NAME)) or "Report", facts=_facts(full),
                    items=walker.items(full, 0))
    report.left_out = walker.left_out
    references = report.references()
    if instances_of is not None and references:
        found = instances_of(sorted({item.referenced_uid for item in references if item.referenced_uid}))
        for item in references:
            item.instance = found.get(item.referenced_uid, "")
    return report
