"""Finding resources: the query that /tools/find, /tools/count-resources (and later C-FIND and the UI search)
build, and the selector that answers it from the index.

archive/find_request.py turns a /tools/find body into a ``FindQuery`` (for REST and C-FIND); ``resources_find`` and
``resources_count`` answer it. Matching rules live in archive/dicom/matching.py (PS3.4 C.2.2.2).

A find with a Limit (and the default order) is planned from the data (``_shape_for_limit``): when the most
selective constraint has few matches, they are read through ``id IN (...)`` and sorted; when every
constraint has many, the level is read in id order and each resource probed with EXISTS, so the cost
follows since + limit instead of the number of matches (series Modality=MR Limit 100 at 1,000,000
instances: 89 ms reading and sorting the 31,000 matches on SQLite, 4 ms probing 800 series).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, F, FloatField, Func, Lookup, OuterRef, Q, QuerySet, Subquery, TextField
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.tag import Tag

from archive import runtime
from archive.dicom.json import read_for_json, tag_value
from archive.dicom.matching import Constraint, Kind, constraint_match, constraint_parse, fold
from archive.dicom.tags import MAIN_DICOM_TAGS, tag_name
from archive.levels import Level
from archive.models import Label, MainDicomTag, Metadata, MetadataType, Resource
from archive.selectors import instance_dicom_header, instance_first
from archive.settings import archive_settings
from archive.statistics import statistics_totals

logger = logging.getLogger(__name__)

# Orthanc's computed tags (ResourceFinder::IsComputedTag), matched against their computed value.
COMPUTED_TAGS = frozenset({
    "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances",
    "SOPClassesInStudy"})


@dataclass(frozen=True)
class TagConstraint:
    """One entry of Orthanc's ``Query``: a tag and the text to match, in DICOM matching syntax
    (single value, ``*``/``?`` wildcards, ``\\``-separated lists, ``a-b`` ranges for DA/TM/DT)."""

    tag: int      # (group << 16) | element
    query: str    # never empty: an empty query is a universal match and is dropped by the parser


@dataclass(frozen=True)
class MetadataConstraint:
    """One entry of ``MetadataQuery`` (1.12.5): exact, wildcard (``*``/``?``) or ``\\``-list match."""

    metadata: int  # MetadataType number, or a user metadata number (1024-65535)
    query: str


@dataclass(frozen=True)
class OrderKey:
    """One entry of ``OrderBy`` (1.12.5)."""

    kind: str          # DicomTag, DicomTagAsInt, DicomTagAsFloat, Metadata, MetadataAsInt, MetadataAsFloat
    key: int           # the tag, or the metadata number
    descending: bool


@dataclass(frozen=True)
class FindQuery:
    level: Level
    tags: tuple[TagConstraint, ...] = ()
    case_sensitive: bool = False             # every VR in /tools/find (C-FIND: PN only); default CaseSensitivePN
    labels: tuple[str, ...] = ()
    labels_constraint: str = "All"           # All | Any | None
    parent: tuple[Level, str] | None = None  # ParentPatient/ParentStudy/ParentSeries: (its level, its ID)
    metadata: tuple[MetadataConstraint, ...] = ()
    order_by: tuple[OrderKey, ...] = ()
    since: int = 0
    limit: int = 0                           # 0: no limit


# --- Answering: the database narrows, then the few constraints it cannot decide are checked per candidate --

LEVELS = list(Level)
MODALITIES_IN_STUDY = 0x00080061


def modalities_constraint(query: str, *, case_sensitive: bool) -> Constraint:
    """ModalitiesInStudy as Orthanc's DatabaseLookup takes it: a constraint on the Modality of some series, one
    value parsed as any value is ("C*" a wildcard), several an exact list."""
    values = sorted({v.strip() for v in query.split("\\")})
    if len(values) == 1:
        return constraint_parse(MODALITY, values[0], vr="CS", case_sensitive=case_sensitive)
    return Constraint(MODALITY, Kind.LIST, tuple(values), case_sensitive)
MODALITY = 0x00080060
_CHUNK = 200


class DicomWildcard(Lookup):
    """``field__dicomwildcard=pattern``: PS3.4 C.2.2.2.4 in SQL, case-sensitive on both backends (SQLite's
    LIKE ignores ASCII case, so GLOB there). ``?`` becomes "any sequence": Orthanc's ``?`` is one byte,
    which SQL cannot say, so a pattern with ``?`` is only a pre-filter and the candidates are checked with
    ``matching.constraint_match`` (see ``_Plan.recheck``)."""

    lookup_name = "dicomwildcard"
    like_one = "%"   # what ``?`` becomes in LIKE

    @staticmethod
    def glob(pattern: str) -> str:
        return pattern.replace("[", "[[]").replace("?", "*")

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        pattern = rhs_params[0]
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB {rhs}", [*lhs_params, self.glob(pattern)]
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%").replace("?", self.like_one))
        return f"{lhs} LIKE {rhs}", [*lhs_params, like]


class MetadataWildcard(DicomWildcard):
    """The same for MetadataQuery, which Orthanc answers in SQL only: there ``?`` is one character."""

    lookup_name = "metadatawildcard"
    like_one = "_"

    @staticmethod
    def glob(pattern: str) -> str:
        return "".join("[" + c + "]" if c in "[]" else c for c in pattern)


TextField.register_lookup(DicomWildcard)
TextField.register_lookup(MetadataWildcard)


class _AsNumber(Func):
    """A text column read as a number for OrderBy ...AsInt/AsFloat. SQLite's CAST reads the leading number
    and gives 0 for text that has none; PostgreSQL's CAST would fail on such text, so it is spelled out to
    give the same answers there (with non-capturing groups: substring() gives the first group if any). It
    reads into numeric, never bigint nor double precision: those refuse 1e400 or 2^64 ("out of range"), as
    numeric does only past 131072 digits before the point or 16383 after it, which the length and exponent
    bounds keep away."""

    output_field = FloatField()
    _INTEGER = r"^\s*[+-]?[0-9]+"
    _FLOAT = r"^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE](?:\+?[0-9]{1,5}|-[0-9]{1,4})(?![0-9]))?"

    def __init__(self, expression, *, integer: bool):
        super().__init__(expression)
        self.integer = integer

    def as_sql(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            number = self._INTEGER if self.integer else self._FLOAT
            sql = (f"CASE WHEN ({inner}) IS NULL THEN NULL WHEN length({inner}) <= 6000 AND ({inner}) ~ %s "
                   f"THEN CAST(substring(({inner}) from %s) AS numeric) ELSE 0 END")
            return sql, [*params, *params, *params, number, *params, number]
        return f"CAST({inner} AS {'INTEGER' if self.integer else 'REAL'})", params


def _vr(tag: int) -> str:
    if tag >> 16 & 1:
        return "UN"
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _stored_tags(level: Level) -> frozenset[int]:
    """The tags the index keeps for a level's rows (a study's rows also hold the patient tags)."""
    cfg = archive_settings()
    tags = {int(t) for t in MAIN_DICOM_TAGS[level]} | {int(t) for t in cfg.extra_main_tags(level)}
    if level is Level.STUDY:
        tags |= _stored_tags(Level.PATIENT)
    return frozenset(tags)


def _store_level(tag: int, level: Level) -> Level | None:
    """Where the index keeps ``tag`` for a resource of ``level``: the level itself or the nearest ancestor
    (patient tags are read from the study's copy, as Orthanc does); None when neither has it."""
    current: Level | None = level
    while current is not None:
        if tag in _stored_tags(current):
            return current
        current = current.parent
    return None


def _is_main_anywhere(tag: int) -> bool:
    return any(tag in _stored_tags(level) for level in Level)


def _up(level: Level, to: Level) -> str:
    """The ORM path from a resource of ``level`` to its ancestor at ``to``: "" for itself."""
    return "parent__" * (level.depth - to.depth)


def _tag_rows(level: Level | None, constraint: Constraint) -> QuerySet:
    """The rows of ``level`` resources whose stored tag satisfies ``constraint`` (exactly, except a wildcard
    with ``?``, which is a superset). ``level`` None: rows of any level, for a probe by resource_id, which
    implies the level; without it the only index the database can use is the (resource, tag) one, a
    single-row lookup. With it, PostgreSQL walked the whole value range of a date range in the covering
    index for every probe (0.17 ms each, 400 ms for a StudyDate range with Limit 100 at 1,000,000)."""
    column = "value" if constraint.case_sensitive else "value_folded"
    norm = (lambda s: s) if constraint.case_sensitive else fold
    rows = MainDicomTag.objects.filter(tag=constraint.tag)
    if level is not None:
        rows = rows.filter(level=level.depth)
    kind = constraint.kind
    if kind is Kind.SINGLE:
        rows = rows.filter(**{column: norm(constraint.values[0])})
    elif kind is Kind.LIST:
        rows = rows.filter(**{f"{column}__in": sorted({norm(v) for v in constraint.values})})
    elif kind is Kind.RANGE:
        lower, upper = constraint.values
        if lower:
            rows = rows.filter(**{f"{column}__gte": norm(lower)})
        if upper:
            rows = rows.filter(**{f"{column}__lte": norm(upper)})
    elif kind is Kind.WILDCARD:
        rows = rows.filter(**{f"{column}__dicomwildcard": norm(constraint.values[0])})
    return rows


class _Probe(Exists):
    """EXISTS checked per candidate. On PostgreSQL, OFFSET 0 keeps the planner from turning it into a
    semi-join, which it would then plan from its row estimates: those are far off on maindicomtag (level, tag
    and value are correlated; it guessed 243 rows for 31,104 MR series at 1,000,000 instances) and it read
    every match and sorted them, the very plan the probe is there to avoid."""

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="EXISTS(%(subquery)s OFFSET 0)", **extra_context)


@dataclass(frozen=True)
class _Term:
    """One constraint answered by the database, in the two shapes it can take in SQL."""

    # ``path IN (SELECT resource_id ...)``: the database reads every match of the constraint (the cheap shape
    # when they are few, and the only sensible one when all matches are wanted).
    semi_join: Q
    # ``EXISTS (... resource_id = path)``: checked per candidate with one probe on a (resource, ...) index
    # (the cheap shape when the resources are read in id order and the first few matches are enough).
    probe: Q
    # The rows to count to learn how selective the term is (cheap: a range of a covering index), or None
    # when it cannot drive (no index by value: metadata; a negation: labels None).
    rows: QuerySet | None = None
    rows_level: Level | None = None   # the level of the resources of ``rows``: None, the query's level
    # The semi-join as the driver of a Limit query: ``id IN (...)``, so that SQLite reads the few matches by
    # primary key and sorts them. ``parent_id IN (...)`` let it scan the whole level in id order instead,
    # testing membership (it has no statistics to know the list is short).
    drive: Q | None = None


@dataclass
class _Plan:
    base: QuerySet | None                     # the level's resources (and the parent constraint); None: no match
    terms: list[_Term] = field(default_factory=list)
    # Checked per candidate, after the database: (constraint, level whose main_tags hold the value, or None
    # to read the value from the candidate's file or compute it).
    recheck: list[tuple[Constraint, Level | None]] = field(default_factory=list)
    depth: int = 0                            # how many ancestors the rechecks need loaded
    qs: QuerySet | None = None                # base and terms in the shape chosen by _shape


def _term(path: str, rows: QuerySet, probe_rows: QuerySet | None = None, *,
          rows_level: Level | None = None) -> _Term:
    """A term matching the resources whose ``path`` (their own id, or an ancestor's) is the ``resource_id``
    of one of ``rows`` (``probe_rows``, when given, are the same rows filtered for a lookup by resource)."""
    semi_join = Q(**{f"{path}__in": rows.values("resource_id")})
    drive = semi_join if path == "id" else Q(id__in=Resource.objects.filter(semi_join).values("id"))
    probe = _Probe((rows if probe_rows is None else probe_rows).filter(resource_id=OuterRef(path)))
    return _Term(semi_join=semi_join, probe=Q(probe), rows=rows, drive=drive, rows_level=rows_level)


def _metadata_rows(constraint: MetadataConstraint) -> QuerySet:
    rows = Metadata.objects.filter(type=constraint.metadata)
    query = constraint.query
    if "\\" in query:
        return rows.filter(value__in=query.split("\\"))
    if "*" in query or "?" in query:
        return rows.filter(value__metadatawildcard=query)
    return rows.filter(value=query)


def _plan(query: FindQuery) -> _Plan:
    level = query.level
    base = Resource.objects.filter(level=level.depth)
    plan = _Plan(base=None)

    if query.parent is not None:
        parent_level, parent_public_id = query.parent
        if parent_level.depth >= level.depth:
            return plan
        parent_id = (Resource.objects.filter(public_id=parent_public_id, level=parent_level.depth)
                     .values_list("id", flat=True).first())
        if parent_id is None:
            return plan
        # parent_id, parent__parent_id...: one join per level between them
        base = base.filter(**{f"{_up(level, parent_level)[:-2]}_id": parent_id})

    for item in query.tags:
        tag = item.tag
        if tag == MODALITIES_IN_STUDY:
            # Orthanc turns ModalitiesInStudy into a constraint on Modality (DatabaseLookup); at the study
            # level it asks for a child series with one of the modalities.
            constraint = modalities_constraint(item.query, case_sensitive=query.case_sensitive)
            if level is Level.STUDY:
                rows = _tag_rows(Level.SERIES, constraint)
                series = Resource.objects.filter(level=Level.SERIES.depth)
                # Counting the series bounds the studies: few series, fewer studies.
                plan.terms.append(_Term(
                    semi_join=Q(id__in=series.filter(id__in=rows.values("resource_id")).values("parent_id")),
                    probe=Q(_Probe(series.filter(parent_id=OuterRef("id")).filter(
                        _Probe(_tag_rows(None, constraint).filter(resource_id=OuterRef("id")))))),
                    rows=rows, rows_level=Level.SERIES))
                continue
            tag = MODALITY
        else:
            constraint = constraint_parse(tag, item.query, vr=_vr(tag), case_sensitive=query.case_sensitive)
        if constraint.kind is Kind.UNIVERSAL:
            continue
        store = _store_level(tag, level)
        if store is None:
            if _is_main_anywhere(tag):
                # A main tag of a lower level only: Orthanc looks for it among the resource's own and
                # ancestors' main tags, does not find it, and the mandatory constraint fails.
                return plan
            plan.recheck.append((constraint, None))
            continue
        path = _up(level, store)
        plan.terms.append(_term(f"{path}id" if path else "id", _tag_rows(store, constraint),
                                _tag_rows(None, constraint), rows_level=store))
        if constraint.kind is Kind.WILDCARD and "?" in constraint.values[0]:
            plan.recheck.append((constraint, store))
            plan.depth = max(plan.depth, level.depth - store.depth)

    labels = tuple(query.labels)
    if query.labels_constraint == "All":
        for name in labels:
            plan.terms.append(_term("id", Label.objects.filter(name=name)))
    elif query.labels_constraint == "Any":
        if labels:
            plan.terms.append(_term("id", Label.objects.filter(name__in=labels)))
    elif query.labels_constraint == "None":
        # 1.12.11: None with an empty list means "without any label".
        others = Label.objects.filter(resource_id=OuterRef("id"))
        without = ~Q(Exists(others.filter(name__in=labels) if labels else others))
        plan.terms.append(_Term(semi_join=without, probe=without))

    for meta in query.metadata:
        if meta.query:
            # Metadata has no index by value: counting its matches would read the whole table.
            plan.terms.append(dataclasses.replace(_term("id", _metadata_rows(meta)), rows=None))

    plan.base = base
    plan.qs = _shape(plan, driver=_ALL_SEMI_JOINS)
    return plan


_ALL_SEMI_JOINS = -1   # every term as IN: the database reads all matches (counts, unlimited finds, OrderBy)
_SCAN = -2             # every term as EXISTS: resources in id order, each probed, until the Limit is reached
# How a probe (one EXISTS per term and candidate) compares with reading one match of the driver: reading a
# match is not only an index entry but its resource row and the sort, so the two cost about the same
# (1-3 us on SQLite without ANALYZE statistics, 2-5 us on PostgreSQL, at 100,000 and 1,000,000 instances).
SCAN_COST = 1


def _shape(plan: _Plan, *, driver: int) -> QuerySet:
    """The base with the terms: ``driver`` (an index in plan.terms) as IN and the others as EXISTS, or one
    of _ALL_SEMI_JOINS and _SCAN."""
    assert plan.base is not None
    qs = plan.base
    for i, term in enumerate(plan.terms):
        if driver == _ALL_SEMI_JOINS:
            qs = qs.filter(term.semi_join)
        elif driver == i:
            qs = qs.filter(term.drive or term.semi_join)
        else:
            qs = qs.filter(term.probe)
    return qs


def _capped_count(rows: QuerySet, cap: int) -> int:
    """How many rows, counting no further than cap + 1 (the cost is the cap, not the number of matches)."""
    return rows.values("resource_id")[:cap + 1].count()


_LEVEL_SIZES_TTL = 60.0  # seconds: the sizes only weigh the choice of plan, never its answer
_level_sizes: tuple[float, tuple[int, int, int, int]] = (-_LEVEL_SIZES_TTL, (0, 0, 0, 0))


def _level_size(level: Level) -> int:
    """How many resources ``level`` has, from the running totals, read at most once a minute per process
    (one query fewer on every Limit find; a stale size only moves the switch point a little)."""
    global _level_sizes
    read_at, sizes = _level_sizes
    now = time.monotonic()
    if now - read_at >= _LEVEL_SIZES_TTL:
        totals = statistics_totals()
        sizes = (totals.patients, totals.studies, totals.series, totals.instances)
        _level_sizes = (now, sizes)
    return sizes[level.depth]


def _scan_threshold(level: Level, wanted: int) -> int:
    """How many matches of the most selective term make scanning in id order cheaper than reading and
    sorting every match. The scan probes about wanted x N / matches resources (N: the level's size), the
    IN shape reads the matches: the two cost the same at matches = sqrt(SCAN_COST x wanted x N). Never
    below ``wanted`` (fewer matches than wanted: the scan would read the whole level)."""
    return max(wanted, math.isqrt(SCAN_COST * wanted * _level_size(level)))


def _fanout(level: Level, rows_level: Level | None) -> float:
    """How many resources of ``level`` one resource of ``rows_level`` stands for, on average."""
    if rows_level is None or rows_level is level:
        return 1.0
    size, rows_size = _level_size(level), _level_size(rows_level)
    return size / rows_size if size and rows_size else 1.0


def _shape_for_limit(plan: _Plan, query: FindQuery, threshold: int | None) -> None:
    """With a Limit and the default order, pick the driver: the most selective term read as IN when it has
    few matches (sorting a few is cheap), else a scan in id order whose cost follows since + limit instead of
    the number of matches. ``threshold``: the number of candidates (matches, times the fanout for a term on
    another level) above which the scan takes over (None: from _scan_threshold; tests pass one to take
    either plan). Costs one capped count per term that can drive."""
    if not query.limit or query.order_by or query.parent is not None or not plan.terms:
        # OrderBy sorts every match anyway; a parent constraint already narrows to one parent's children.
        return
    wanted = query.since + query.limit
    cap = _scan_threshold(query.level, wanted) if threshold is None else threshold
    best, fewest = _SCAN, cap
    for i, term in enumerate(plan.terms):
        if term.rows is None:
            continue
        # What the IN shape costs is the candidates it reads: a study matching a series query brings its
        # series (2.5 on average), a matching series of a ModalitiesInStudy query less than one study.
        fanout = _fanout(query.level, term.rows_level)
        matches = math.ceil(_capped_count(term.rows, math.floor(fewest / fanout)) * fanout)
        if matches <= fewest:
            best, fewest = i, matches
            if matches <= wanted:
                break  # cannot do better than reading this handful
    plan.qs = _shape(plan, driver=best)


def _ordered(qs: QuerySet, query: FindQuery) -> QuerySet:
    """Apply OrderBy, then insertion order (Orthanc's default, and the tie-break)."""
    order = []
    for i, key in enumerate(query.order_by):
        expression: Any
        if key.kind.startswith("DicomTag"):
            store = _store_level(key.key, query.level)
            if store is None:
                continue  # not in the index: nothing to sort on
            path = _up(query.level, store)
            expression = Subquery(MainDicomTag.objects.filter(
                resource_id=OuterRef(f"{path}id" if path else "id"), tag=key.key).values("value")[:1])
            if key.kind == "DicomTagAsInt":
                expression = _AsNumber(expression, integer=True)
            elif key.kind == "DicomTagAsFloat":
                expression = _AsNumber(expression, integer=False)
        elif key.kind.startswith("Metadata"):
            if key.key == MetadataType.LastUpdate and query.level is not Level.INSTANCE:
                expression = F("last_update")  # kept on the resource; its text form sorts the same
            else:
                expression = Subquery(Metadata.objects.filter(resource_id=OuterRef("id"), type=key.key)
                                      .values("value")[:1])
                # 1.12.11 sorts MetadataAsInt numerically and every other Metadata* type as text
                if key.kind == "MetadataAsInt":
                    expression = _AsNumber(expression, integer=True)
        else:
            continue
        name = f"_order{i}"
        qs = qs.annotate(**{name: expression})
        # NULL (no value) first in ascending order, last in descending, on both backends, as SQLite does
        order.append(F(name).desc(nulls_last=True) if key.descending else F(name).asc(nulls_first=True))
    return qs.order_by(*order, "id")


def _candidate_value(resource: Resource, constraint: Constraint, store: Level | None, level: Level,
                     cache: dict) -> str | None:
    if store is not None:
        holder = resource
        for _ in range(level.depth - store.depth):
            holder = holder.parent
        value = holder.main_tags.get(tag_name(constraint.tag))
        return value if isinstance(value, str) else None
    keyword = keyword_for_tag(constraint.tag)
    if keyword in COMPUTED_TAGS:
        from archive.requested_tags import requested_values

        value = requested_values(resource, [Tag(constraint.tag)]).get(keyword)
        return value if isinstance(value, str) else None
    if "ds" not in cache:
        try:
            data = instance_dicom_header(instance=instance_first(resource=resource))
            cache["ds"] = read_for_json(data, header_only=True)
        except Exception:  # a resource without a readable file matches no constraint on its content
            logger.warning("find: cannot read the file of %s", resource.public_id, exc_info=True)
            cache["ds"] = None
    if cache["ds"] is None:
        return None
    return tag_value(cache["ds"], constraint.tag, default_encoding=runtime.default_encoding())


def _matches(resource: Resource, plan: _Plan, level: Level) -> bool:
    cache: dict = {}
    return all(constraint_match(c, _candidate_value(resource, c, store, level, cache))
               for c, store in plan.recheck)


def _candidates(plan: _Plan, query: FindQuery, *, ordered: bool) -> Iterator[Resource]:
    """The database's candidates in order, read in chunks (the rechecks may stop early with a Limit)."""
    assert plan.qs is not None
    qs = _ordered(plan.qs, query) if ordered else plan.qs.order_by("id")
    related = "__".join(["parent"] * max(plan.depth, 1))
    qs = qs.select_related(related)
    start = 0
    while True:
        chunk = list(qs[start:start + _CHUNK])
        yield from chunk
        if len(chunk) < _CHUNK:
            return
        start += _CHUNK


def resources_find(*, query: FindQuery, scan_threshold: int | None = None) -> list[Resource]:
    """The resources of ``query.level`` that match, in Orthanc's order, paged by since/limit (applied after
    every constraint, those read from files included). Raises ParameterOutOfRange on a bad constraint.
    ``scan_threshold``: see _shape_for_limit (None in production)."""
    plan = _plan(query)
    if plan.qs is None:
        return []
    _shape_for_limit(plan, query, scan_threshold)
    if not plan.recheck:
        qs = _ordered(plan.qs, query).select_related("parent")
        end = query.since + query.limit if query.limit else None
        return list(qs[query.since:end])
    found: list[Resource] = []
    skipped = 0
    for resource in _candidates(plan, query, ordered=True):
        if not _matches(resource, plan, query.level):
            continue
        if skipped < query.since:
            skipped += 1
            continue
        found.append(resource)
        if query.limit and len(found) >= query.limit:
            break
    return found


def resources_count(*, query: FindQuery) -> int:
    """How many resources match (since, limit and order_by are ignored, as /tools/count-resources does)."""
    plan = _plan(query)
    if plan.qs is None:
        return 0
    if not plan.recheck:
        return plan.qs.count()
    return sum(1 for r in _candidates(plan, query, ordered=False) if _matches(r, plan, query.level))
