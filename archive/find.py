"""Finding resources: the query that /tools/find, /tools/count-resources (and later C-FIND and the UI search)
build, and the selector that answers it from the index.

The REST layer (explorer/api/find.py) turns a request body into a ``FindQuery``; ``resources_find`` and
``resources_count`` answer it. Matching rules live in archive/dicom/matching.py (PS3.4 C.2.2.2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pydicom
from django.db.models import Exists, F, FloatField, Func, Lookup, OuterRef, QuerySet, Subquery, TextField
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.filebase import DicomBytesIO
from pydicom.tag import Tag

from archive import runtime
from archive.dicom.json import tag_value
from archive.dicom.matching import Constraint, Kind, constraint_match, constraint_parse, fold
from archive.dicom.tags import MAIN_DICOM_TAGS, tag_name
from archive.levels import Level
from archive.models import Label, MainDicomTag, Metadata, MetadataType, Resource
from archive.selectors import instance_dicom, instance_first
from archive.settings import archive_settings

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
MODALITY = 0x00080060
_CHUNK = 200


class DicomWildcard(Lookup):
    """``field__dicomwildcard=pattern``: PS3.4 C.2.2.2.4 in SQL, case-sensitive on both backends (SQLite's
    LIKE ignores ASCII case, so GLOB there). ``?`` becomes "any sequence": Orthanc's ``?`` is one byte,
    which SQL cannot say, so a pattern with ``?`` is only a pre-filter and the candidates are checked with
    ``matching.constraint_match`` (see ``_Plan.recheck``)."""

    lookup_name = "dicomwildcard"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        pattern = rhs_params[0]
        if connection.vendor == "sqlite":
            glob = pattern.replace("[", "[[]").replace("?", "*")
            return f"{lhs} GLOB {rhs}", [*lhs_params, glob]
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%").replace("?", "%"))
        return f"{lhs} LIKE {rhs}", [*lhs_params, like]


class MetadataWildcard(DicomWildcard):
    """The same for MetadataQuery, which Orthanc answers in SQL only: there ``?`` is one character."""

    lookup_name = "metadatawildcard"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        pattern = rhs_params[0]
        if connection.vendor == "sqlite":
            glob = "".join("[" + c + "]" if c in "[]" else c for c in pattern)
            return f"{lhs} GLOB {rhs}", [*lhs_params, glob]
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%").replace("?", "_"))
        return f"{lhs} LIKE {rhs}", [*lhs_params, like]


TextField.register_lookup(DicomWildcard)
TextField.register_lookup(MetadataWildcard)


class _AsNumber(Func):
    """A text column read as a number for OrderBy ...AsInt/AsFloat. SQLite's CAST reads the leading number
    and gives 0 for text that has none; PostgreSQL's CAST would fail on such text, so it is spelled out to
    give the same answers there."""

    output_field = FloatField()

    def __init__(self, expression, *, integer: bool):
        super().__init__(expression)
        self.integer = integer

    def as_sql(self, compiler, connection, **extra):
        inner, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            number = r"^\s*[+-]?[0-9]+" if self.integer else r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
            kind = "bigint" if self.integer else "double precision"
            sql = (f"CASE WHEN ({inner}) IS NULL THEN NULL WHEN ({inner}) ~ %s "
                   f"THEN CAST(substring(({inner}) from %s) AS {kind}) ELSE 0 END")
            return sql, [*params, *params, number, *params, number]
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


def _tag_rows(level: Level, constraint: Constraint) -> QuerySet:
    """The ids of ``level`` resources whose stored tag satisfies ``constraint`` (exactly, except a wildcard
    with ``?``, which is a superset)."""
    column = "value" if constraint.case_sensitive else "value_folded"
    norm = (lambda s: s) if constraint.case_sensitive else fold
    rows = MainDicomTag.objects.filter(level=level.depth, tag=constraint.tag)
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
    return rows.values("resource_id")


@dataclass
class _Plan:
    qs: QuerySet | None                       # None: nothing can match
    # Checked per candidate, after the database: (constraint, level whose main_tags hold the value, or None
    # to read the value from the candidate's file or compute it).
    recheck: list[tuple[Constraint, Level | None]] = field(default_factory=list)
    depth: int = 0                            # how many ancestors the rechecks need loaded


def _metadata_rows(constraint: MetadataConstraint) -> QuerySet:
    rows = Metadata.objects.filter(type=constraint.metadata)
    query = constraint.query
    if "\\" in query:
        return rows.filter(value__in=query.split("\\")).values("resource_id")
    if "*" in query or "?" in query:
        return rows.filter(value__metadatawildcard=query).values("resource_id")
    return rows.filter(value=query).values("resource_id")


def _plan(query: FindQuery) -> _Plan:
    level = query.level
    qs = Resource.objects.filter(level=level.depth)
    plan = _Plan(qs=None)

    if query.parent is not None:
        parent_level, parent_public_id = query.parent
        if parent_level.depth >= level.depth:
            return plan
        parent_id = (Resource.objects.filter(public_id=parent_public_id, level=parent_level.depth)
                     .values_list("id", flat=True).first())
        if parent_id is None:
            return plan
        # parent_id, parent__parent_id...: one join per level between them
        qs = qs.filter(**{f"{_up(level, parent_level)[:-2]}_id": parent_id})

    for item in query.tags:
        tag = item.tag
        if tag == MODALITIES_IN_STUDY:
            # Orthanc turns ModalitiesInStudy into a list constraint on Modality (DatabaseLookup); at the
            # study level it asks for a child series with one of the modalities.
            constraint = Constraint(MODALITY, Kind.LIST, tuple(item.query.split("\\")), query.case_sensitive)
            if level is Level.STUDY:
                series = Resource.objects.filter(level=Level.SERIES.depth,
                                                 id__in=_tag_rows(Level.SERIES, constraint))
                qs = qs.filter(id__in=series.values("parent_id"))
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
        qs = qs.filter(**{f"{path}id__in" if path else "id__in": _tag_rows(store, constraint)})
        if constraint.kind is Kind.WILDCARD and "?" in constraint.values[0]:
            plan.recheck.append((constraint, store))
            plan.depth = max(plan.depth, level.depth - store.depth)

    labels = tuple(query.labels)
    if query.labels_constraint == "All":
        for name in labels:
            qs = qs.filter(id__in=Label.objects.filter(name=name).values("resource_id"))
    elif query.labels_constraint == "Any":
        if labels:
            qs = qs.filter(id__in=Label.objects.filter(name__in=labels).values("resource_id"))
    elif query.labels_constraint == "None":
        # 1.12.11: None with an empty list means "without any label".
        others = Label.objects.filter(resource_id=OuterRef("id"))
        qs = qs.filter(~Exists(others.filter(name__in=labels) if labels else others))

    for meta in query.metadata:
        if meta.query:
            qs = qs.filter(id__in=_metadata_rows(meta))

    plan.qs = qs
    return plan


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
            data = instance_dicom(instance=instance_first(resource=resource))
            cache["ds"] = pydicom.dcmread(DicomBytesIO(data), stop_before_pixels=True, force=True)
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


def resources_find(*, query: FindQuery) -> list[Resource]:
    """The resources of ``query.level`` that match, in Orthanc's order, paged by since/limit (applied after
    every constraint, those read from files included). Raises ParameterOutOfRange on a bad constraint."""
    plan = _plan(query)
    if plan.qs is None:
        return []
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
