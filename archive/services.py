"""Writes other than ingest: delete, stability, series completion, protection.

Each public function states its contract in its first docstring line. The change log (``Change``) is written
only by these functions and by ingest.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, QuerySet

from archive.errors import UnknownResource
from archive.levels import Level
from archive.models import Attachment, Change, ChangeType, Label, MainDicomTag, Metadata, Resource
from archive.statistics import Totals, statistics_add
from archive.storage import dicom_storage
from archive.timeutil import iso, utcnow

logger = logging.getLogger(__name__)

# Rows that point to a resource. Deletes use _raw_delete (no Django cascade, no per-row signals), so each
# of these is removed explicitly before its resources; the foreign keys make a forgotten one fail loudly.
_DEPENDENTS = (Attachment, Metadata, Label, MainDicomTag)
DEPENDENT_TABLES = tuple(model._meta.db_table for model in _DEPENDENTS)   # for index_writes' plain SQL

_STABLE_CHANGE = {0: ChangeType.StablePatient, 1: ChangeType.StableStudy, 2: ChangeType.StableSeries}


def _descendant_querysets(root_id: int, depth: int) -> list[QuerySet]:
    """Querysets of the root and of each level below it, as subqueries (no id lists in memory)."""
    levels = [Resource.objects.filter(id=root_id)]
    for _ in range(depth, 3):
        levels.append(Resource.objects.filter(parent__in=levels[-1].values("id")))
    return levels


@dataclass(frozen=True)
class Deleted:
    files: list[str]              # UUIDs of the files to remove once the transaction has committed
    totals: Totals                # what left the index, for the running totals
    remaining: Resource | None    # the nearest ancestor left, Orthanc's RemainingAncestor


def resource_delete_in_transaction(*, level: Level, public_id: str) -> Deleted:
    """Delete a resource, its descendants and the ancestors it leaves empty. Must run inside a transaction,
    whose last statement subtracts ``totals`` (statistics_add) and after which ``files`` are removed."""
    return _delete(level=level, public_id=public_id)


def _delete(*, level: Level, public_id: str) -> Deleted:
    try:
        resource = Resource.objects.select_for_update().get(public_id=public_id, level=level.depth)
    except Resource.DoesNotExist:
        raise UnknownResource() from None
    groups = _descendant_querysets(resource.id, level.depth)
    # Lock the whole subtree, top down, before deleting anything. Otherwise, on PostgreSQL, a label,
    # metadata, attachment or child that another transaction adds to a descendant while this one deletes
    # its dependents (their foreign key check only takes a KEY SHARE lock) makes the final delete of the
    # resource fail on the foreign key (a 500). Locked, such writers wait, then find the resource gone.
    # One statement per level, so each one also sees the children committed while it waited.
    for qs in groups[1:]:
        list(qs.select_for_update().values_list("id", flat=True))
    removed: list[str] = []
    counts = [0, 0, 0, 0]   # resources removed per level, for the running totals
    sizes = [0, 0]          # their attachments' compressed and uncompressed sizes

    def forget_files(rows: Iterable[tuple[str, int, int]]) -> None:
        for uuid, disk, raw in rows:
            removed.append(uuid)
            sizes[0] += disk
            sizes[1] += raw

    for depth, qs in reversed(list(enumerate(groups, start=level.depth))):  # bottom-up: no dangling parent
        ids = qs.values("id")
        # Orthanc's Changes rows reference their resource ON DELETE CASCADE: a deleted resource leaves /changes
        Change.objects.filter(public_id__in=qs.values("public_id"))._raw_delete(Change.objects.db)
        forget_files(Attachment.objects.filter(resource__in=ids)
                     .values_list("uuid", "compressed_size", "uncompressed_size"))
        for model in _DEPENDENTS:
            model.objects.filter(resource__in=ids)._raw_delete(model.objects.db)
        counts[depth] += qs._raw_delete(Resource.objects.db)

    # Climb: an ancestor left without children goes too; the first one that remains is the answer.
    now = utcnow()
    parent_id = resource.parent_id
    remaining = None
    while parent_id is not None:
        parent = Resource.objects.get(id=parent_id)
        if Resource.objects.filter(parent_id=parent_id).exists():
            remaining = parent
            break
        forget_files(Attachment.objects.filter(resource_id=parent_id)
                     .values_list("uuid", "compressed_size", "uncompressed_size"))
        for model in _DEPENDENTS:
            model.objects.filter(resource_id=parent_id)._raw_delete(model.objects.db)
        Change.objects.filter(public_id=parent.public_id)._raw_delete(Change.objects.db)
        counts[parent.level] += Resource.objects.filter(id=parent_id)._raw_delete(Resource.objects.db)
        parent_id = parent.parent_id
    if remaining is not None:
        # Orthanc 1.12: deleting a resource updates the LastUpdate of its remaining ancestors.
        ids = [remaining.id]
        up = remaining.parent_id
        while up is not None:
            ids.append(up)
            up = Resource.objects.filter(id=up).values_list("parent_id", flat=True).first()
        Resource.objects.filter(id__in=ids).update(last_update=now)
    return Deleted(removed, Totals(*counts, *sizes), remaining)


def resource_delete(*, level: Level, public_id: str) -> dict | None:
    """Delete a resource and its files; returns Orthanc's RemainingAncestor (or None)."""
    with transaction.atomic():
        deleted = _delete(level=level, public_id=public_id)
        statistics_add(-deleted.totals)
    storage = dicom_storage()
    for uuid in deleted.files:
        storage.remove(uuid)
    remaining = deleted.remaining
    if remaining is None:
        return None
    lvl = list(Level)[remaining.level]
    return {"ID": remaining.public_id, "Path": f"/{lvl.plural}/{remaining.public_id}", "Type": lvl.value}


def series_check_completed(*, series_id: int, expected: int, now_iso: str) -> None:
    """Log CompletedSeries when a series with an expected size has just become complete (once)."""
    from archive.selectors import series_indexes, series_status_from

    # Runs on every instance of such a series: a count on the parent index settles the common case (not
    # all there yet) before the instances' indexes are read.
    if Resource.objects.filter(parent_id=series_id).count() < expected:
        return
    indexes = series_indexes(series_ids=[series_id]).get(series_id, [])
    if len(indexes) != expected or series_status_from(indexes, expected) != "Complete":
        return
    public_id = Resource.objects.filter(id=series_id).values_list("public_id", flat=True).first()
    if not Change.objects.filter(change_type=ChangeType.CompletedSeries, public_id=public_id).exists():
        Change.objects.create(change_type=ChangeType.CompletedSeries, level=2, public_id=public_id, date=now_iso)


def resources_stabilize(*, stable_age: int, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Mark resources unchanged for StableAge seconds as stable and log Stable* changes; returns how many."""
    now = now or utcnow()
    limit = now - dt.timedelta(seconds=stable_age)
    with transaction.atomic():
        due = list(Resource.objects.select_for_update(skip_locked=True)
                   .filter(is_stable=False, last_update__lte=limit)
                   .order_by("last_update", "id").values_list("id", "level", "public_id")[:batch])
        if not due:
            return 0
        Resource.objects.filter(id__in=[d[0] for d in due]).update(is_stable=True)
        date = iso(now)
        # Deepest first, as Orthanc reports the series before its study and patient.
        due.sort(key=lambda d: -d[1])
        Change.objects.bulk_create(
            Change(change_type=_STABLE_CHANGE[lvl], level=lvl, public_id=pid, date=date)
            for _id, lvl, pid in due if lvl in _STABLE_CHANGE
        )
    return len(due)


def patient_protection_set(*, public_id: str, protected: bool) -> None:
    """Protect a patient from recycling (or release it); idempotent."""
    updated = Resource.objects.filter(public_id=public_id, level=0).update(is_protected=protected)
    if not updated:
        raise UnknownResource()


def children_counts(ids: list[int]) -> dict[int, int]:
    """How many children each resource has, in one query."""
    rows = Resource.objects.filter(parent_id__in=ids).values("parent_id").annotate(n=Count("id"))
    return {r["parent_id"]: r["n"] for r in rows}
