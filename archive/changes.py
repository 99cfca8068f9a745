"""The change log (``/changes``) and the export log (``/exports``), read as Orthanc pages them.

Every read is a keyset query on the indexed sequence number (``seq > since``, ``seq <= to``, ``ORDER BY seq``,
``LIMIT limit + 1``, the extra row telling whether the page is the last one), so a page costs the same on a
log of a million rows as on an empty one. The answers follow Orthanc 1.12.11 (``FormatLog`` in
``StatelessDatabaseOperations.cpp``, the ``ExtendedChanges`` queries of 1.12.5):

- ``Last`` is the sequence number of the last reported entry. When a page of changes is empty it is the
  last number the log ever handed out, even if those entries were cleared since (Orthanc reads SQLite's
  ``sqlite_sequence``); for an empty page of exports it is ``since``.
- ``First`` (new in 1.12.5) is the sequence number of the first reported entry; absent when nothing is
  reported.
- With ``to`` and without ``since``, the page is the *last* ``limit`` entries up to ``to``, oldest first:
  a client walks the log backwards with ``to = First - 1``.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db import connection
from django.db.models import Max, QuerySet

from archive.errors import ParameterOutOfRange
from archive.levels import Level
from archive.models import Change, ChangeType, ExportedResource

LEVELS = list(Level)
DEFAULT_LIMIT = 100  # Orthanc's default page size; it has no maximum


def _path(level: Level, public_id: str) -> str:
    return f"/{level.plural}/{public_id}"


def _change_json(change: Change) -> dict:
    level = LEVELS[change.level]
    return {"ChangeType": ChangeType(change.change_type).name, "Date": change.date, "ID": change.public_id,
            "Path": _path(level, change.public_id), "ResourceType": level.value, "Seq": change.seq}


def _export_json(export: ExportedResource) -> dict:
    level = LEVELS[export.level]
    item = {"Date": export.date, "ID": export.public_id, "Path": _path(level, export.public_id),
            "PatientID": export.patient_id, "RemoteModality": export.remote_modality,
            "ResourceType": level.value, "Seq": export.seq}
    # The identifiers of the resource and its ancestors, as Orthanc's ExportedResource::Format gives them.
    if level.depth >= 1:
        item["StudyInstanceUID"] = export.study_instance_uid
    if level.depth >= 2:
        item["SeriesInstanceUID"] = export.series_instance_uid
    if level.depth >= 3:
        item["SOPInstanceUID"] = export.sop_instance_uid
    return dict(sorted(item.items()))  # Orthanc writes the keys in byte order


def _log_answer(name: str, items: list[dict], *, done: bool, last: int) -> dict:
    answer = {name: items, "Done": done, "Last": items[-1]["Seq"] if items else last}
    if items:
        answer["First"] = items[0]["Seq"]
    return dict(sorted(answer.items()))


def _page(qs: QuerySet, *, since: int, to: int | None, limit: int) -> tuple[list, bool]:
    """One keyset page of a log and whether it is the last one (rows in ascending ``seq``)."""
    if since > 0:
        qs = qs.filter(seq__gt=since)
    if to is not None:
        qs = qs.filter(seq__lte=to)
    if to is not None and since <= 0:
        # The newest entries up to ``to``, then put back in ascending order.
        rows = list(qs.order_by("-seq")[:limit + 1])
        return rows[:limit][::-1], len(rows) <= limit
    rows = list(qs.order_by("seq")[:limit + 1])
    return rows[:limit], len(rows) <= limit


def change_types_parse(text: str) -> set[int]:
    """The ``type`` argument: change type names separated by ``;`` ("all" or nothing: every type)."""
    if text in ("", "all", "All"):
        return set()
    types = set()
    for name in text.split(";"):
        if not name:
            continue
        try:
            types.add(int(ChangeType[name]))
        except KeyError:
            raise ParameterOutOfRange(f"Invalid value for a change: {name}") from None
    return types


def change_last_index() -> int:
    """The last sequence number the change log handed out (0 if none), cleared entries included."""
    table = Change._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            return int(row[0]) if row else 0
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'seq'))", [table])
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else 0
    return Change.objects.aggregate(m=Max("seq"))["m"] or 0


def changes_page(*, since: int = 0, limit: int = DEFAULT_LIMIT, to: int | None = None,
                 types: Collection[int] = ()) -> dict:
    """One page of ``/changes``: after ``since`` forward, or the last ones up to ``to``; ``types``
    keeps only those change types (Orthanc's ExtendedChanges)."""
    qs = Change.objects.all()
    if types:
        qs = qs.filter(change_type__in=sorted(types))
    rows, done = _page(qs, since=since, to=to, limit=limit)
    return _log_answer("Changes", [_change_json(c) for c in rows], done=done,
                       last=0 if rows else change_last_index())


def changes_last() -> dict:
    """``/changes?last``: the newest change only."""
    row = Change.objects.order_by("-seq").first()
    return _log_answer("Changes", [_change_json(row)] if row else [], done=True,
                       last=0 if row else change_last_index())


def changes_clear() -> None:
    """Empty the change log; sequence numbers go on from where they were."""
    Change.objects.all().delete()


def exports_page(*, since: int = 0, limit: int = DEFAULT_LIMIT) -> dict:
    """One page of ``/exports`` after ``since``."""
    rows, done = _page(ExportedResource.objects.all(), since=since, to=None, limit=limit)
    return _log_answer("Exports", [_export_json(e) for e in rows], done=done, last=since)


def exports_last() -> dict:
    """``/exports?last``: the newest export only."""
    row = ExportedResource.objects.order_by("-seq").first()
    return _log_answer("Exports", [_export_json(row)] if row else [], done=True, last=0)


def exports_clear() -> None:
    """Empty the export log."""
    ExportedResource.objects.all().delete()
