"""The study list's filter: the query string of /ui/ <-> a FindQuery, the same one /tools/find builds.

Text fields match "contains", case-insensitively (``*text*`` in DICOM wildcard syntax, CaseSensitive
false, as /tools/find with those values). A ``?`` typed by the user is taken literally as "any text" would
need the files; it is dropped. Dates are DICOM ranges on StudyDate (PS3.4 C.2.2.2.5).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, fields, replace
from urllib.parse import urlencode

from django.http import QueryDict

from archive.dicom.tags import tag_number
from archive.find import FindQuery, TagConstraint
from archive.levels import Level

# sort key in the URL -> (column label, main tag keyword; None: insertion order)
SORTS: dict[str, str | None] = {
    "received": None,
    "name": "PatientName",
    "pid": "PatientID",
    "date": "StudyDate",
    "description": "StudyDescription",
    "accession": "AccessionNumber",
}
DEFAULT_SORT = "-received"   # newest first
DATE_PRESETS = ("", "today", "yesterday", "7days", "custom")
MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SC", "SR", "US", "XA")
_TEXT_MAX = 64
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _text(value: str | None) -> str:
    return (value or "").replace("?", "").replace("\\", "").strip()[:_TEXT_MAX]


def _iso_date(value: str | None) -> str:
    value = (value or "").strip()
    if not _DATE.fullmatch(value):
        return ""
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return ""
    return value


@dataclass(frozen=True)
class StudyFilter:
    """What the person asked for; every field is a query parameter of the same name."""

    name: str = ""          # PatientName
    pid: str = ""           # PatientID
    accession: str = ""     # AccessionNumber
    description: str = ""   # StudyDescription
    dates: str = ""         # "", today, yesterday, 7days, custom
    date_from: str = ""     # YYYY-MM-DD, for custom
    date_to: str = ""
    modality: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    sort: str = DEFAULT_SORT

    @classmethod
    def from_query(cls, params: QueryDict) -> StudyFilter:
        """Parse leniently: anything unknown or malformed is ignored (a bookmark never errors)."""
        sort = params.get("sort", DEFAULT_SORT)
        if sort.lstrip("-") not in SORTS:
            sort = DEFAULT_SORT
        dates = params.get("dates", "")
        date_from, date_to = _iso_date(params.get("date_from")), _iso_date(params.get("date_to"))
        if dates not in DATE_PRESETS:
            dates = ""
        if not dates and (date_from or date_to):
            dates = "custom"
        modality = tuple(sorted({m for m in params.getlist("modality") if m in MODALITIES}))
        label = tuple(sorted({x for x in params.getlist("label") if _LABEL.fullmatch(x)}))
        return cls(name=_text(params.get("name")), pid=_text(params.get("pid")),
                   accession=_text(params.get("accession")), description=_text(params.get("description")),
                   dates=dates, date_from=date_from if dates == "custom" else "",
                   date_to=date_to if dates == "custom" else "", modality=modality, label=label, sort=sort)

    @property
    def is_empty(self) -> bool:
        return self == StudyFilter(sort=self.sort)

    @property
    def sort_key(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def sort_tag(self) -> int | None:
        keyword = SORTS[self.sort_key]
        return tag_number(keyword) if keyword else None

    def date_range(self, *, today: dt.date) -> str:
        """The StudyDate range (DICOM ``YYYYMMDD-YYYYMMDD``), or "" for any date."""
        day = dt.timedelta(days=1)
        if self.dates == "today":
            low = high = today
        elif self.dates == "yesterday":
            low = high = today - day
        elif self.dates == "7days":
            low, high = today - 6 * day, today
        elif self.dates == "custom" and (self.date_from or self.date_to):
            low = dt.date.fromisoformat(self.date_from) if self.date_from else None
            high = dt.date.fromisoformat(self.date_to) if self.date_to else None
            return f"{low.strftime('%Y%m%d') if low else ''}-{high.strftime('%Y%m%d') if high else ''}"
        else:
            return ""
        return f"{low:%Y%m%d}-{high:%Y%m%d}"

    def find_query(self, *, today: dt.date) -> FindQuery:
        """The FindQuery of /tools/find with Level Study and this Query and Labels (LabelsConstraint All)."""
        tags: list[TagConstraint] = []

        def add(keyword: str, value: str) -> None:
            number = tag_number(keyword)
            if value and number is not None:
                tags.append(TagConstraint(tag=number, query=value))

        # A name is typed as the pages show it ("Buc, Jérôme", "buc j") or as DICOM stores it ("BUC^J"): its
        # words, in that order, anywhere in the name
        words = [w for w in re.split(r"[\s,^]+", self.name) if w]
        add("PatientName", "*" + "*".join(words) + "*" if words else "")
        for keyword, value in (("PatientID", self.pid), ("AccessionNumber", self.accession),
                               ("StudyDescription", self.description)):
            add(keyword, f"*{value}*" if value else "")
        add("StudyDate", self.date_range(today=today))
        add("ModalitiesInStudy", "\\".join(self.modality))
        return FindQuery(level=Level.STUDY, tags=tuple(tags), labels=self.label, labels_constraint="All")

    def params(self, **changes) -> list[tuple[str, str]]:
        """The query-string pairs of this filter (defaults left out), with ``changes`` applied."""
        me = replace(self, **changes)
        pairs: list[tuple[str, str]] = []
        for f in fields(me):
            value = getattr(me, f.name)
            if isinstance(value, tuple):
                pairs += [(f.name, v) for v in value]
            elif value and not (f.name == "sort" and value == DEFAULT_SORT):
                pairs.append((f.name, value))
        return pairs

    def querystring(self, **changes) -> str:
        return urlencode(self.params(**changes))

    def sort_link(self, key: str) -> str:
        """The query string that sorts by ``key``: ascending first (dates and arrival: newest first),
        toggled when already sorted by it."""
        if self.sort_key == key:
            new = key if self.descending else f"-{key}"
        else:
            new = f"-{key}" if key in ("date", "received") else key
        return self.querystring(sort=new)
