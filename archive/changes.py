"""The change log and the export log: keyset reads on their sequence numbers (never a table scan)."""

from __future__ import annotations

from django.db.models import Max, Min

from archive.errors import ParameterOutOfRange
from archive.levels import Level
from archive.models import Change, ChangeType, ExportedResource

LEVELS = list(Level)
DEFAULT_LIMIT = 100
MAXIMUM_LIMIT = 4000  # Orthanc caps one page of changes


def _change_json(change: Change) -> dict:
    level = LEVELS[change.level]
    return {"ChangeType": ChangeType(change.change_type).name, "Date": change.date, "ID": change.public_id,
            "Path": f"/{level.plural}/{change.public_id}", "ResourceType": level.value, "Seq": change.seq}


def change_types(text: str) -> list[int]:
    """``type=StableStudy;NewSeries`` -> change numbers; ParameterOutOfRange on an unknown name."""
    out = []
    for name in filter(None, (t.strip() for t in text.split(";"))):
        try:
            out.append(int(ChangeType[name]))
        except KeyError:
            raise ParameterOutOfRange(f"Unknown change type: {name}") from None
    return out


def changes_page(*, since: int = 0, limit: int = DEFAULT_LIMIT, to: int | None = None,
                 types: list[int] | None = None) -> dict:
    """One page of /changes: after ``since`` going forward, or (with ``to``) the last ones up to ``to``."""
    limit = min(limit or DEFAULT_LIMIT, MAXIMUM_LIMIT)
    qs = Change.objects.all()
    if types:
        qs = qs.filter(change_type__in=types)
    if to is not None:
        rows = list(qs.filter(seq__gt=since, seq__lte=to).order_by("-seq")[:limit + 1])
        done = len(rows) <= limit
        rows = sorted(rows[:limit], key=lambda c: c.seq)
    else:
        rows = list(qs.filter(seq__gt=since).order_by("seq")[:limit + 1])
        done = len(rows) <= limit
        rows = rows[:limit]
    if rows:
        last, first = rows[-1].seq, rows[0].seq
    else:
        last = Change.objects.aggregate(m=Max("seq"))["m"] or 0 if to is None else to
        first = last
    return {"Changes": [_change_json(c) for c in rows], "Done": done, "First": first, "Last": last}


def changes_last() -> dict:
    """``/changes?last``: only the newest change."""
    row = Change.objects.order_by("-seq").first()
    last = row.seq if row else 0
    return {"Changes": [_change_json(row)] if row else [], "Done": True, "First": last, "Last": last}


def changes_clear() -> None:
    """Empty the change log; sequence numbers keep growing."""
    Change.objects.all().delete()


def exports_page(*, since: int = 0, limit: int = DEFAULT_LIMIT) -> dict:
    limit = min(limit or DEFAULT_LIMIT, MAXIMUM_LIMIT)
    rows = list(ExportedResource.objects.filter(seq__gt=since).order_by("seq")[:limit + 1])
    done = len(rows) <= limit
    rows = rows[:limit]
    items = []
    for e in rows:
        level = LEVELS[e.level]
        item = {"Date": e.date, "ID": e.public_id, "Path": f"/{level.plural}/{e.public_id}",
                "RemoteModality": e.remote_modality, "ResourceType": level.value, "Seq": e.seq,
                "PatientID": e.patient_id}
        if level.depth >= 1:
            item["StudyInstanceUID"] = e.study_instance_uid
        if level.depth >= 2:
            item["SeriesInstanceUID"] = e.series_instance_uid
        if level.depth >= 3:
            item["SOPInstanceUID"] = e.sop_instance_uid
        items.append(item)
    last = rows[-1].seq if rows else (ExportedResource.objects.aggregate(m=Max("seq"))["m"] or 0)
    return {"Done": done, "Exports": items, "Last": last}


def exports_clear() -> None:
    ExportedResource.objects.all().delete()


def first_seq() -> int:
    return Change.objects.aggregate(m=Min("seq"))["m"] or 0
