"""DICOM attribute matching, as Orthanc applies it to /tools/find (and as the C-FIND SCP will).

Pure: no database. ``constraint_parse`` turns one query value into a ``Constraint``; ``constraint_match``
decides whether one stored value matches it. The database path (archive/find.py) translates the same
``Constraint`` into SQL and must give the same answers (a hypothesis test checks it).

Matching types (DICOM PS3.4 C.2.2.2), and the choice Orthanc makes between them (DatabaseLookup), in order:

Range matching, PS3.4 C.2.2.2.5
    Only for DA, TM and DT, when the query holds a ``-``: ``lower-upper``, ``lower-`` or ``-upper``. The
    bounds are compared to the stored value as strings (byte order, no date arithmetic: ``1000-1200``
    leaves out the time ``120030``, as Orthanc does). ``-`` alone has no bound and matches everything,
    even a resource without the attribute. See ``_match_range``.
Multiple values, PS3.4 C.2.2.2.1 / C.2.2.2.2 (list of UID matching, which Orthanc extends to all VRs)
    A query with a backslash is a list of single values; the stored value matches if it equals one of
    them. Empty items are kept (``A\\`` also matches an empty value). Wildcards in items are literal.
    See ``_match_list``.
Wild card matching, PS3.4 C.2.2.2.4
    Only for AE, CS, LO, LT, PN, SH, ST, UC, UR and UT (the VRs the standard allows), when the query holds
    ``*`` (any sequence, possibly empty) or ``?`` (one character). Orthanc compares with a regular
    expression over the UTF-8 bytes, so ``?`` stands for one *byte*: it does not match ``É`` (two bytes).
    ``*`` alone matches any present value, the empty one included. See ``_match_wildcard``.
Single value matching, PS3.4 C.2.2.2.1
    Everything else: the stored value equals the query. A ``*`` or ``?`` here (a UID, a date, a range
    bound) is refused, as Orthanc answers "Wildcards are not allowed on tag" (400). See ``_match_single``.
Universal matching, PS3.4 C.2.2.2.3
    An empty query matches everything: the REST layer drops it before it gets here.

Case: ``case_sensitive=False`` compares both sides upper-cased character by character, accents kept
(Orthanc's ``Toolbox::ToUpperCaseWithAccents``: ``é`` -> ``É``, but ``ß`` stays ``ß``; see ``fold``).
/tools/find applies its ``CaseSensitive`` flag to every VR (``DatabaseLookup::AddRestConstraint``, checked
against Orthanc 1.10.1: ``brain mri`` matches ``BRAIN MRI``); DICOM C-FIND applies it to PN only
(``AddDicomConstraint``): the caller decides and passes ``case_sensitive``.

A resource without the attribute, or with a null value (binary, empty number), never matches a
constraint (Orthanc's constraints from /tools/find are mandatory): pass ``None`` for such a value.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from archive.errors import ParameterOutOfRange

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "DT", "TM"})


class Kind(enum.Enum):
    SINGLE = "single"        # C.2.2.2.1
    LIST = "list"            # C.2.2.2.2, and multiple values for any VR
    WILDCARD = "wildcard"    # C.2.2.2.4
    RANGE = "range"          # C.2.2.2.5
    UNIVERSAL = "universal"  # C.2.2.2.3 (and a range without bounds)


@dataclass(frozen=True)
class Constraint:
    """One parsed query value. ``values`` are as typed, not folded: ``case_sensitive`` says how to compare.

    SINGLE and WILDCARD hold one value, LIST the items, RANGE ``(lower, upper)`` with ``""`` for an open
    side, UNIVERSAL none."""

    tag: int
    kind: Kind
    values: tuple[str, ...]
    case_sensitive: bool


def fold(text: str) -> str:
    """Orthanc's case normalisation (ToUpperCaseWithAccents): each character upper-cased on its own,
    accents kept; a character whose upper case is longer (``ß`` -> ``SS``) stays as it is, as C's
    towupper leaves it."""
    if text.isascii():
        return text.upper()
    out = []
    for c in text:
        u = c.upper()
        out.append(u if len(u) == 1 else c)
    return "".join(out)


def _refuse_wildcards(tag: int, value: str) -> None:
    if "*" in value or "?" in value:
        raise ParameterOutOfRange(f"Wildcards are not allowed on tag {tag >> 16:04x},{tag & 0xFFFF:04x}")


def constraint_parse(tag: int, query: str, *, vr: str, case_sensitive: bool) -> Constraint:
    """The constraint a query value sets on ``tag`` (of value representation ``vr``), chosen as Orthanc's
    DatabaseLookup does: range (DA/DT/TM with ``-``), list (``\\``), wildcard (wildcard VRs with ``*``/``?``),
    else single value. Raises ParameterOutOfRange for a wildcard where it is not allowed."""
    if query == "":
        return Constraint(tag, Kind.UNIVERSAL, (), case_sensitive)
    if vr in RANGE_VRS and "-" in query:
        lower, _, upper = query.partition("-")
        _refuse_wildcards(tag, lower)
        _refuse_wildcards(tag, upper)
        if not lower and not upper:
            return Constraint(tag, Kind.UNIVERSAL, (), case_sensitive)
        return Constraint(tag, Kind.RANGE, (lower, upper), case_sensitive)
    if "\\" in query:
        return Constraint(tag, Kind.LIST, tuple(query.split("\\")), case_sensitive)
    if vr in WILDCARD_VRS and ("*" in query or "?" in query):
        return Constraint(tag, Kind.WILDCARD, (query,), case_sensitive)
    _refuse_wildcards(tag, query)
    return Constraint(tag, Kind.SINGLE, (query,), case_sensitive)


def _norm(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else fold(text)


def _match_single(constraint: Constraint, value: str) -> bool:
    """PS3.4 C.2.2.2.1: the value equals the query."""
    return _norm(value, constraint.case_sensitive) == _norm(constraint.values[0], constraint.case_sensitive)


def _match_list(constraint: Constraint, value: str) -> bool:
    """PS3.4 C.2.2.2.2 (and multiple values): the value equals one of the items."""
    v = _norm(value, constraint.case_sensitive)
    return any(v == _norm(item, constraint.case_sensitive) for item in constraint.values)


@functools.lru_cache(maxsize=1024)
def wildcard_regex(pattern: str) -> re.Pattern[bytes]:
    """The regular expression of a wildcard query, over UTF-8 bytes as Orthanc's (boost) one runs:
    ``*`` any bytes, ``?`` one byte, everything else literal."""
    parts = []
    for c in pattern:
        if c == "*":
            parts.append(b".*")
        elif c == "?":
            parts.append(b".")
        else:
            parts.append(re.escape(c.encode("utf-8")))
    return re.compile(b"".join(parts), re.DOTALL)


def _match_wildcard(constraint: Constraint, value: str) -> bool:
    """PS3.4 C.2.2.2.4: ``*`` any sequence, ``?`` one byte (see the module docstring)."""
    pattern = _norm(constraint.values[0], constraint.case_sensitive)
    return wildcard_regex(pattern).fullmatch(_norm(value, constraint.case_sensitive).encode("utf-8")) is not None


def _utf8_order(text: str) -> bytes:
    # Orthanc compares std::string, i.e. bytes; UTF-8 byte order equals code point order, so this only
    # spells the intent out.
    return text.encode("utf-8")


def _match_range(constraint: Constraint, value: str) -> bool:
    """PS3.4 C.2.2.2.5: ``lower <= value <= upper`` as strings, an empty bound being open."""
    v = _utf8_order(_norm(value, constraint.case_sensitive))
    lower, upper = (_utf8_order(_norm(b, constraint.case_sensitive)) for b in constraint.values)
    return (not lower or v >= lower) and (not upper or v <= upper)


_MATCHERS = {
    Kind.SINGLE: _match_single,
    Kind.LIST: _match_list,
    Kind.WILDCARD: _match_wildcard,
    Kind.RANGE: _match_range,
}


def constraint_match(constraint: Constraint, value: str | None) -> bool:
    """Whether a stored value matches; ``None`` (attribute absent or null) never does, except for a
    universal constraint."""
    if constraint.kind is Kind.UNIVERSAL:
        return True
    if value is None:
        return False
    return _MATCHERS[constraint.kind](constraint, value)
