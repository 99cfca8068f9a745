"""Keyset pages over the find engine: the lists a person scrolls (the web UI's study list).

/tools/find pages with Since/Limit, whose cost grows with the offset, and sorts an OrderBy by reading every
match. A person scrolling a million-instance archive needs neither: a page is "the next N after this row"
(keyset pagination), in insertion order or sorted by one main tag. The constraints are the find engine's
own (``FindQuery`` and its plan, archive/find.py), so a filter answers the same here as in /tools/find;
only the order and the paging are decided here.

Two shapes, chosen as the find engine chooses for a Limit (``find._shape_for_limit``):

- few matches (the most selective constraint counts at most ``find._scan_threshold`` candidates): read
  them all (id and sort value) and sort them in Python; a few thousand pairs cost a few milliseconds;
- many matches (or no constraint): walk an index in the wanted order and probe each row with the
  constraints (EXISTS) until the page is full: the (level, id) index for insertion order, the
  (level, tag, value_folded, resource) index of ``MainDicomTag`` for a tag. The cost follows the page
  size over the density of matches, never the size of the archive.

Sorted by a tag, resources without that tag come last in either direction (then in insertion order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet

from archive import find
from archive.find import FindQuery
from archive.levels import Level
from archive.models import MainDicomTag, Resource


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after the resource ``id`` whose sort value was ``value`` (None: the resource
    has no such tag, the tail of a sorted list)."""

    id: int
    value: str | None = None

    def encode(self) -> str:
        return f"{self.id}" if self.value is None else f"{self.id}:{self.value}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor of a URL parameter, or None for junk (a bad cursor means the first page)."""
        head, sep, value = text.partition(":")
        if not head.isdigit():
            return None
        return cls(int(head), value if sep else None)


@dataclass(frozen=True)
class Page:
    resources: list[Resource]
    next: Cursor | None               # None: this is the last page
    previous: Cursor | None = None    # where the page before this one ends (its ``before``); None: first page


def _driver(plan: find._Plan, level: Level, wanted: int) -> int:
    """The index of the term to read as IN (few matches), or find._SCAN, as find._shape_for_limit picks."""
    if not plan.terms:
        return find._SCAN
    best, fewest = find._SCAN, find._scan_threshold(level, wanted)
    for i, term in enumerate(plan.terms):
        if term.rows is None:
            continue
        fanout = find._fanout(level, term.rows_level)
        matches = math.ceil(find._capped_count(term.rows, math.floor(fewest / fanout)) * fanout)
        if matches <= fewest:
            best, fewest = i, matches
            if matches <= wanted:
                break
    return best


def _after_id(qs: QuerySet, cursor: Cursor | None, descending: bool) -> QuerySet:
    """The rows of ``qs`` after ``cursor``, in insertion order (newest first when ``descending``)."""
    if cursor is not None:
        qs = qs.filter(id__lt=cursor.id) if descending else qs.filter(id__gt=cursor.id)
    return qs.order_by("-id" if descending else "id")


def _load(ids: list[int]) -> list[Resource]:
    rows = Resource.objects.select_related("parent").in_bulk(ids)
    return [rows[i] for i in ids if i in rows]


def _sort_key(value: str | None, rid: int, descending: bool) -> tuple:
    # Missing values last in both directions; the id breaks ties in the list's direction.
    if value is None:
        return (1, "", rid)
    return (0, value, rid)


def _page_few(qs: QuerySet, *, tag: int | None, descending: bool, cursor: Cursor | None,
              size: int, level: Level, backward: bool = False) -> Page:
    """The few-matches shape: every match's (id, sort value), sorted here."""
    ids = list(qs.values_list("id", flat=True))
    values: dict[int, str] = {}
    if tag is None:
        ordered = sorted(ids, reverse=descending)
    else:
        values = dict(MainDicomTag.objects.filter(resource_id__in=ids, tag=tag, level=level.depth)
                      .values_list("resource_id", "value_folded")) if ids else {}
        present = sorted((i for i in ids if i in values), key=lambda i: (values[i], i), reverse=descending)
        missing = sorted((i for i in ids if i not in values), reverse=descending)
        ordered = present + missing
    if cursor is not None:
        key = _sort_key(cursor.value if tag is not None else None, cursor.id, descending)

        def after(i: int) -> bool:
            mine = _sort_key(values.get(i), i, descending)
            if mine[0] != key[0]:
                return mine[0] > key[0]
            return mine[1:] < key[1:] if descending else mine[1:] > key[1:]

        if backward:
            ordered = [i for i in ordered if not after(i) and _sort_key(values.get(i), i, descending) != key]
        else:
            ordered = [i for i in ordered if after(i)]
    if backward:
        return _finish_backward(ordered[-(size + 1):], size, values.get)
    return _finish(ordered[:size + 1], size, values.get, first=cursor is None)


def _finish(ids: list[int], size: int, value_of, *, first: bool) -> Page:
    """A page read forwards: ``ids`` holds up to size + 1 ids, the extra one says there is a next page."""
    more = len(ids) > size
    ids = ids[:size]
    resources = _load(ids)
    nxt = Cursor(ids[-1], value_of(ids[-1])) if more and ids else None
    previous = Cursor(ids[0], value_of(ids[0])) if not first and ids else None
    return Page(resources, nxt, previous)


def _finish_backward(ids: list[int], size: int, value_of) -> Page:
    """A page read backwards, ``ids`` in the list's order: up to size + 1, the extra first one says there is a
    page before. There is always a next page: the row the page was asked to end before."""
    more = len(ids) > size
    ids = ids[-size:] if more else ids
    resources = _load(ids)
    nxt = Cursor(ids[-1], value_of(ids[-1])) if ids else None
    previous = Cursor(ids[0], value_of(ids[0])) if more and ids else None
    return Page(resources, nxt, previous)


def _with_tag(probe: QuerySet | None, *, level: Level, tag: int, cursor: Cursor | None,
              descending: bool) -> QuerySet:
    """(id, folded value) of the resources with ``tag`` after ``cursor``, on the tag's folded-value index."""
    rows = MainDicomTag.objects.filter(level=level.depth, tag=tag)
    if cursor is not None:
        v = cursor.value
        # value >= v first: a range the index seeks to, then the tie-break on the id
        if descending:
            rows = rows.filter(value_folded__lte=v).exclude(value_folded=v, resource_id__gte=cursor.id)
        else:
            rows = rows.filter(value_folded__gte=v).exclude(value_folded=v, resource_id__lte=cursor.id)
    if probe is not None:
        rows = rows.filter(Exists(probe.filter(id=OuterRef("resource_id"))))
    order = ("-value_folded", "-resource_id") if descending else ("value_folded", "resource_id")
    return rows.order_by(*order).values_list("resource_id", "value_folded")


def _without_tag(probe: QuerySet | None, *, level: Level, tag: int, cursor: Cursor | None,
                 descending: bool) -> QuerySet:
    """The ids of the resources without ``tag`` after ``cursor``, in insertion order."""
    base = probe if probe is not None else Resource.objects.filter(level=level.depth)
    tail = base.filter(~Exists(MainDicomTag.objects.filter(resource_id=OuterRef("id"), tag=tag)))
    return _after_id(tail, cursor, descending).values_list("id", flat=True)


def _page_scan_tag(probe: QuerySet | None, *, level: Level, tag: int, descending: bool,
                   cursor: Cursor | None, size: int, backward: bool) -> Page:
    """The many-matches shape sorted by a tag: the tag's folded-value index in order, each row probed, then
    the tail of resources without the tag. Backward (the page that ends before ``cursor``) walks the same two
    indexes the other way, nearest first: the tail first when the cursor is in it."""
    way = descending != backward
    in_tail = cursor is not None and cursor.value is None
    found: list[tuple[int, str | None]] = []

    def tagged(after: Cursor | None) -> None:
        found.extend(_with_tag(probe, level=level, tag=tag, cursor=after, descending=way)[:size + 1 - len(found)])

    def untagged(after: Cursor | None) -> None:
        ids = _without_tag(probe, level=level, tag=tag, cursor=after, descending=way)[:size + 1 - len(found)]
        found.extend((i, None) for i in ids)

    if backward:
        if in_tail:
            untagged(cursor)
        if len(found) <= size:
            tagged(None if in_tail else cursor)
        found.reverse()
        return _finish_backward([i for i, _ in found], size, dict(found).get)
    if not in_tail:
        tagged(cursor)
    if len(found) <= size:
        untagged(cursor if in_tail else None)
    return _finish([i for i, _ in found], size, dict(found).get, first=cursor is None)


def resources_page(*, query: FindQuery, sort_tag: int | None = None, descending: bool = False,
                   cursor: Cursor | None = None, before: Cursor | None = None, size: int = 50) -> Page:
    """A page of ``size`` resources matching ``query`` (its tags, labels and parent; its since, limit and
    order_by are ignored), after ``cursor`` (or, given ``before`` instead, the page that ends just before
    that row: the previous page), in insertion order or by the folded value of ``sort_tag`` (a main tag of
    the level: patient tags at the study level too). Constraints that need the files (tags outside the
    index, ``?`` wildcards) are not supported here: ParameterOutOfRange."""
    plan = find._plan(query)
    if plan.qs is None or plan.base is None:
        return Page([], None)
    if plan.recheck:
        from archive.errors import ParameterOutOfRange

        raise ParameterOutOfRange("This filter needs the files: use /tools/find")
    backward = before is not None and cursor is None
    if backward:
        cursor = before
    level = query.level
    driver = _driver(plan, level, size + 1)
    if driver != find._SCAN:
        qs = find._shape(plan, driver=driver)
        return _page_few(qs, tag=sort_tag, descending=descending, cursor=cursor, size=size, level=level,
                         backward=backward)
    scan = find._shape(plan, driver=find._SCAN)
    if sort_tag is None:
        # A page read backwards is the walk the other way from its cursor, nearest first.
        ids = list(_after_id(scan, cursor, descending != backward).values_list("id", flat=True)[:size + 1])
        if backward:
            return _finish_backward(ids[::-1], size, lambda i: None)
        return _finish(ids, size, lambda i: None, first=cursor is None)
    probe = scan if plan.terms else None
    return _page_scan_tag(probe, level=level, tag=sort_tag, descending=descending, cursor=cursor, size=size,
                          backward=backward)


def resources_count(*, query: FindQuery, cap: int) -> int | None:
    """How many resources match ``query`` (tags, labels, parent), or None when more than ``cap`` do: the
    count stops at cap + 1 rows, so its cost follows the cap, never the size of the archive (a count with
    no constraint belongs to the running totals, archive/statistics.py)."""
    plan = find._plan(query)
    if plan.qs is None or plan.base is None:
        return 0
    if plan.recheck:   # matches are decided on the files: not countable from the index
        return None
    driver = _driver(plan, query.level, cap + 1)
    qs = find._shape(plan, driver=driver)
    found = qs.values("id")[:cap + 1].count()
    return found if found <= cap else None
