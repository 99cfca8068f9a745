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

A page never gets ahead of a change still being written. On PostgreSQL the sequence numbers are handed out
at insert time and transactions commit in any order, so a change with a lower ``seq`` can become visible after
a higher one: a client that had been given the higher one as ``Last`` would never see it. A page whose rows
are not exactly ``since + 1, since + 2, ...`` (or that is empty) is therefore read again up to a number taken
*before* waiting for every transaction then writing to the log (``_settled``): below it, nothing can appear
any more. SQLite's writers are serialized and commit in the order of their numbers, so there only the
``Last`` of an empty page needs care: it is read before a second look at the log.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db import connection, transaction
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


def _settled() -> int:
    """PostgreSQL: a sequence number below which every change is committed or rolled back for good. The
    number is read first; then taking a SHARE lock on the log waits for each transaction holding the ROW
    EXCLUSIVE lock of an insert (taken before its ``nextval``), so any number handed out until then is
    settled. Released at once: writers that queued behind it wait for that lock only."""
    last = change_last_index()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {Change._meta.db_table} IN SHARE MODE")
    return last


def _contiguous(rows: list[Change], since: int) -> bool:
    """The rows are since + 1, since + 2, ...: no number in between can still appear."""
    return bool(rows) and since >= 0 and rows[0].seq == since + 1 and rows[-1].seq == since + len(rows)


def changes_page(*, since: int = 0, limit: int = DEFAULT_LIMIT, to: int | None = None,
                 types: Collection[int] = ()) -> dict:
    """One page of ``/changes``: after ``since`` forward, or the last ones up to ``to``; ``types``
    keeps only those change types (Orthanc's ExtendedChanges). Never ahead of a change still being written
    (see the module's docstring)."""
    qs = Change.objects.all()
    if types:
        qs = qs.filter(change_type__in=sorted(types))
    rows, done = _page(qs, since=since, to=to, limit=limit)
    last = 0
    if connection.vendor == "postgresql" and not (_contiguous(rows, since) and (to is None or since > 0)):
        last = _settled()
        rows, done = _page(qs.filter(seq__lte=last), since=since, to=to, limit=limit)
    elif not rows:
        # The Last of an empty page is read before a second look at the log, never after the first: a change
        # committed in between would be skipped by a client that goes on from that Last.
        last = change_last_index()
        rows, done = _page(qs, since=since, to=to, limit=limit)
    return _log_answer("Changes", [_change_json(c) for c in rows], done=done, last=0 if rows else last)


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
