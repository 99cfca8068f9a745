"""What the study browser's pages show, read from the index in a handful of queries per page.

Plain functions over archive's selectors; no HTTP here. Values are plain text: the templates escape them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from archive import selectors
from archive.browse import Cursor, resources_count, resources_page
from archive.dicom import json as dicom_json
from archive.levels import Level
from archive.models import Label, Resource
from archive.runtime import default_encoding
from archive.settings import archive_settings
from archive.statistics import Totals, statistics_totals
from explorer.ui import content_kind, structured_report
from explorer.ui.filters import StudyFilter
from explorer.ui.reading import dicom_date, person_name

PAGE_SIZE = 50
# A filtered list is counted exactly up to this many matches, and shown as "more than" beyond: the count
# stops at COUNT_CAP + 1 rows, so its cost follows the cap, never the size of the archive. Measured on the
# 1,000,000-instance bench archive (SQLite): a dense filter (modality MR) costs ~60-140 ms to count to 1,000
# but ~0.7-1.8 s to count to 10,000; selective ones (a patient ID, a label, no match) count exactly in
# 2-40 ms either way. The unfiltered list is counted by the running totals, exactly and for free.
COUNT_CAP = 1_000


@dataclass
class StudyRow:
    study: Resource
    patient_public_id: str
    tags: dict
    modalities: list[str] = field(default_factory=list)
    series_count: int = 0
    labels: list[str] = field(default_factory=list)

    @property
    def public_id(self) -> str:
        return self.study.public_id

    @property
    def patient_name(self) -> str:
        return person_name(self.tags.get("PatientName"))

    @property
    def study_date(self) -> str:
        return dicom_date(self.tags.get("StudyDate"))


def study_rows(studies: list[Resource]) -> list[StudyRow]:
    """Rows for studies (loaded with their parent): modalities, series counts and labels in two queries."""
    ids = [s.id for s in studies]
    modalities: dict[int, set[str]] = defaultdict(set)
    counts: dict[int, int] = defaultdict(int)
    labels: dict[int, list[str]] = defaultdict(list)
    if ids:
        for parent_id, tags in Resource.objects.filter(parent_id__in=ids).values_list("parent_id", "main_tags"):
            counts[parent_id] += 1
            if tags.get("Modality"):
                modalities[parent_id].add(tags["Modality"])
        for rid, name in Label.objects.filter(resource_id__in=ids).order_by("name").values_list(
                "resource_id", "name"):
            labels[rid].append(name)
    return [StudyRow(study=s, patient_public_id=s.parent.public_id, tags=s.main_tags,
                     modalities=sorted(modalities[s.id]), series_count=counts[s.id], labels=labels[s.id])
            for s in studies]


@dataclass
class StudyList:
    rows: list[StudyRow]
    next: Cursor | None
    previous: Cursor | None
    totals: Totals
    count: int | None          # the studies that match; None: more than COUNT_CAP
    count_cap: int = COUNT_CAP


def study_list(*, filters: StudyFilter, cursor: Cursor | None, today: dt.date, before: Cursor | None = None,
               size: int = PAGE_SIZE) -> StudyList:
    """A page of the study list: keyset-paged after ``cursor`` (or the page before ``before``), filtered by
    the FindQuery /tools/find would build, with the number of matches."""
    query = filters.find_query(today=today)
    page = resources_page(query=query, sort_tag=filters.sort_tag, descending=filters.descending,
                          cursor=cursor, before=before, size=size)
    if before is not None and cursor is None and not page.resources:
        # Nothing before that row any more (deleted meanwhile): the first page.
        page = resources_page(query=query, sort_tag=filters.sort_tag, descending=filters.descending, size=size)
    totals = statistics_totals()
    count = totals.studies if filters.is_empty else resources_count(query=query, cap=COUNT_CAP)
    return StudyList(rows=study_rows(page.resources), next=page.next, previous=page.previous, totals=totals,
                     count=count, count_cap=COUNT_CAP)


def study_labels() -> list[str]:
    """The labels of studies, those the study list filters by (a series' or a patient's would match none)."""
    return sorted(Label.objects.filter(resource__level=Level.STUDY.depth).values_list("name", flat=True).distinct())


@dataclass
class PatientView:
    patient: Resource
    studies: list[StudyRow]


def patient_view(*, public_id: str) -> PatientView:
    patient = selectors.resource_get(level=Level.PATIENT, public_id=public_id)
    studies = list(Resource.objects.filter(parent_id=patient.id).select_related("parent").order_by("id"))
    return PatientView(patient=patient, studies=study_rows(studies))


@dataclass
class SeriesRow:
    series: Resource
    instance_count: int
    preview_instance: str | None   # public ID of the middle instance, for the thumbnail
    kind: str = content_kind.IMAGE  # what the middle instance holds (explorer.ui.content_kind)

    @property
    def tags(self) -> dict:
        return self.series.main_tags

    @property
    def has_images(self) -> bool:
        return bool(self.instance_count) and self.kind == content_kind.IMAGE

    @property
    def label(self) -> str:
        """The series as the viewer's menu names it: number, description, modality, instance count."""
        t = self.tags
        return " · ".join(x for x in (t.get("SeriesNumber") or "?", t.get("SeriesDescription") or "(no description)",
                                      t.get("Modality", ""), str(self.instance_count)) if x)


@dataclass
class StudyView:
    study: Resource
    patient: Resource
    series: list[SeriesRow]
    labels: list[str]

    @property
    def tags(self) -> dict:
        return self.study.main_tags

    @property
    def study_date(self) -> str:
        return dicom_date(self.tags.get("StudyDate"))

    @property
    def image_series(self) -> list[SeriesRow]:
        """The series the viewer can show (a report or a PDF has no place there)."""
        return [row for row in self.series if row.has_images]


def series_rows(series: list[Resource]) -> list[SeriesRow]:
    """Each series with its instance count and its middle instance (by index in series), in one query."""
    ids = [s.id for s in series]
    members: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    if ids:
        for parent_id, rid, index, public_id in (Resource.objects.filter(parent_id__in=ids)
                                                 .values_list("parent_id", "id", "index_in_series", "public_id")):
            members[parent_id].append((index if index is not None else 1 << 30, rid, public_id))
    middles = {s.id: sorted(members[s.id])[len(members[s.id]) // 2] for s in series if members[s.id]}
    kinds = content_kind.instance_kinds(m[1] for m in middles.values())   # a series is taken as its middle
    rows = []
    for s in series:
        middle = middles.get(s.id)
        rows.append(SeriesRow(series=s, instance_count=len(members[s.id]), preview_instance=middle and middle[2],
                              kind=kinds[middle[1]] if middle else content_kind.OTHER))
    return rows


def _series_key(s: Resource) -> tuple:
    number = s.main_tags.get("SeriesNumber", "")
    try:
        return (0, int(number), s.id)
    except ValueError:
        return (1, 0, s.id)


def study_view(*, public_id: str) -> StudyView:
    study = selectors.resource_get(level=Level.STUDY, public_id=public_id)
    series = sorted(Resource.objects.filter(parent_id=study.id), key=_series_key)
    labels = sorted(Label.objects.filter(resource_id=study.id).values_list("name", flat=True))
    return StudyView(study=study, patient=study.parent, series=series_rows(series), labels=labels)


@dataclass
class SeriesView:
    series: Resource
    study: Resource
    instances: list[Resource]
    more: bool
    kinds: dict[int, str] = field(default_factory=dict)   # instance id -> explorer.ui.content_kind

    @property
    def cards(self) -> list[tuple[Resource, str]]:
        return [(i, self.kinds.get(i.id, content_kind.IMAGE)) for i in self.instances]

    @property
    def has_images(self) -> bool:
        return content_kind.IMAGE in self.kinds.values()


SERIES_PAGE = 500


def series_view(*, public_id: str) -> SeriesView:
    series = selectors.resource_get(level=Level.SERIES, public_id=public_id)
    study = Resource.objects.select_related("parent").get(id=series.parent_id)
    instances = list(Resource.objects.filter(parent_id=series.id).order_by("index_in_series", "id")
                     [:SERIES_PAGE + 1])
    shown = instances[:SERIES_PAGE]
    return SeriesView(series=series, study=study, instances=shown, more=len(instances) > SERIES_PAGE,
                      kinds=content_kind.instance_kinds(i.id for i in shown))


# --- Tags of an instance ------------------------------------------------------------------------------

@dataclass
class TagNode:
    key: str                    # "0010,0010"
    name: str
    kind: str                   # String, Sequence, Null, TooLong, Binary
    value: str = ""
    items: list[list[TagNode]] = field(default_factory=list)  # sequences: one list of nodes per item
    match: bool = False         # the search hits this node or something inside it
    hidden_items: int = 0       # a sequence's items not listed (TAG_TREE_BUDGET spent)

    @property
    def is_sequence(self) -> bool:
        return self.kind == "Sequence"


# Nested tags the instance page lists at most: a dose report or a segmentation holds tens of thousands
# (23,000 nodes, 4 MB of HTML, ~0.4 s to render for a 2,500-item SR: bench/ui.py --part report). The file's
# top-level tags are always listed; sequences past the budget say how many items they hold, not listed.
TAG_TREE_BUDGET = 3000


# Orthanc's JSON gives text over 256 bytes as TooLong; the page shows it, up to this many bytes: a report's
# findings are often longer (its TEXT items), and so are comments and descriptions.
PAGE_TAG_LENGTH = 65536


class _Budget:
    def __init__(self, left: int) -> None:
        self.left = left
        self.spent = False      # some sequence was not listed


def _nodes(full: dict, needle: str, budget: _Budget | None = None, *, nested: bool = False) -> list[TagNode]:
    budget = budget if budget is not None else _Budget(TAG_TREE_BUDGET)
    nodes = []
    for key, entry in full.items():
        kind = entry.get("Type", "")
        node = TagNode(key=key, name=entry.get("Name", ""), kind=kind)
        if nested:
            budget.left -= 1
        inside = False
        if kind == "Sequence":
            items = entry.get("Value") or []
            if budget.left > 0:
                node.items = [_nodes(item, needle, budget, nested=True) for item in items]
                inside = any(n.match for item in node.items for n in item)
            elif items:
                node.hidden_items = len(items)
                budget.spent = True
        else:
            value = entry.get("Value")
            node.value = value if isinstance(value, str) else ""
        mine = bool(needle) and any(needle in text.casefold() for text in (key, node.name, node.value))
        node.match = mine or inside
        if not needle or node.match:
            nodes.append(node)
        if needle and kind == "Sequence" and mine and not inside and not node.hidden_items:
            # the sequence itself matched: keep its whole content visible
            node.items = [_nodes(item, "", budget, nested=True) for item in entry.get("Value") or []]
    return nodes


@dataclass
class InstanceView:
    instance: Resource
    series: Resource
    tags: list[TagNode]
    query: str
    kind: str = content_kind.IMAGE
    report: structured_report.Report | None = None     # an SR document's content, for reading
    tags_cut: bool = False                              # some sequence's items are not listed (TAG_TREE_BUDGET)


def instance_view(*, public_id: str, query: str = "", with_report: bool = True) -> InstanceView:
    """The instance and its tags in Orthanc's full format as a tree; ``query`` keeps the tags whose key,
    name or value contains it (case-insensitive), and the sequences that hold one; ``with_report``: an SR
    document's report too (the tag search's fragment does not show it)."""
    instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
    series = Resource.objects.select_related("parent__parent").get(id=instance.parent_id)
    ds = dicom_json.read_for_json(selectors.instance_dicom(instance=instance))
    full = dicom_json.dataset_to_json(ds, fmt="full", default_encoding=default_encoding(),
                                      dictionary=archive_settings().dictionary, max_length=PAGE_TAG_LENGTH)
    budget = _Budget(TAG_TREE_BUDGET)
    tags = _nodes(full, query.strip().casefold(), budget)
    return InstanceView(instance=instance, series=series, tags=tags, tags_cut=budget.spent,
                        query=query.strip(), kind=content_kind.instance_kinds([instance.id])[instance.id],
                        report=structured_report.report_of(full, instances_of=selectors.instance_ids_by_sop_uid)
                        if with_report else None)

