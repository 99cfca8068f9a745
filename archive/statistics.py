"""Sizes and counts: /statistics and /{level}/{id}/statistics.

The global figures come from running totals (``StatisticsCounter``) that every write adding or removing
resources or attachments updates in its own transaction: ingest (archive/ingest.py), delete and recycling
(archive/services.py), attachment writes (archive/attachments.py). So /statistics, the Prometheus metrics
and MaximumStorageSize/MaximumPatientCount read a few rows instead of counting and summing whole tables.
``statistics_recount`` rebuilds the totals from the tables (the migration that introduced them; repairs).
Per-resource figures are aggregates over the resource's subtree, one indexed query per level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from archive.levels import Level
from archive.models import Attachment, ContentType, Resource, StatisticsCounter

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

_SHARDS = 16
_COLUMNS = ("patients", "studies", "series", "instances", "disk_size", "uncompressed_size")


@dataclass(frozen=True)
class Totals:
    """The running totals, or a change to them."""

    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    disk_size: int = 0
    uncompressed_size: int = 0

    # Spelled out (not dataclasses.astuple, which deep-copies): these run on every ingest.
    def values(self) -> tuple[int, int, int, int, int, int]:
        return (self.patients, self.studies, self.series, self.instances, self.disk_size, self.uncompressed_size)

    def __add__(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def __neg__(self) -> Totals:
        return Totals(*(-a for a in self.values()))

    def __sub__(self, other: Totals) -> Totals:
        return Totals(*(a - b for a, b in zip(self.values(), other.values(), strict=True)))


def _add_sql(vendor: str) -> str:
    # An upsert, so a missing row (a new database, a flushed test database) starts from zero.
    shard = f"mod(pg_backend_pid(), {_SHARDS})" if vendor == "postgresql" else "0"
    table = StatisticsCounter._meta.db_table
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _COLUMNS)
    return (f"INSERT INTO {table} (shard, {', '.join(_COLUMNS)}) VALUES ({shard}, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (shard) DO UPDATE SET {sets}")


_ADD_SQL = {vendor: _add_sql(vendor) for vendor in ("sqlite", "postgresql")}


def statistics_add(delta: Totals, *, cursor: CursorWrapper | None = None) -> None:
    """Add a change to the running totals, in the transaction of the write it accounts for. Make it the
    transaction's last statement: on PostgreSQL it locks the connection's counter row until the commit,
    and a transaction that waited for another lock while holding it could deadlock with one that holds
    that lock and waits for the row. One statement (``cursor``: the caller's, to save opening one on the
    ingest hot path); nothing for an empty change."""
    params = delta.values()
    if not any(params):
        return
    sql = _ADD_SQL[connection.vendor]
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as own:
        own.execute(sql, params)


_TOTALS_SQL = (f"SELECT {', '.join(f'SUM({c})' for c in _COLUMNS)} "
               f"FROM {StatisticsCounter._meta.db_table}")


def statistics_totals() -> Totals:
    """The running totals: one query over at most 16 rows."""
    # Plain SQL: /statistics is polled by monitoring, and compiling the ORM aggregate cost more than running it.
    with connection.cursor() as cursor:
        cursor.execute(_TOTALS_SQL)
        row = cursor.fetchone()
    return Totals(*(int(value or 0) for value in row))


def statistics_count_tables() -> Totals:
    """The totals counted from the tables (whole-table scans: for repairs and tests, never a hot path)."""
    counts = dict(Resource.objects.values_list("level").annotate(n=Count("id")).values_list("level", "n"))
    sizes = Attachment.objects.aggregate(disk=Sum("compressed_size"), raw=Sum("uncompressed_size"))
    return Totals(counts.get(0, 0), counts.get(1, 0), counts.get(2, 0), counts.get(3, 0),
                  int(sizes["disk"] or 0), int(sizes["raw"] or 0))


def statistics_recount() -> Totals:
    """Reset the running totals to what the tables hold (after a restore or a manual edit of the index)."""
    with transaction.atomic():
        totals = statistics_count_tables()
        StatisticsCounter.objects.all().delete()
        StatisticsCounter.objects.create(shard=0, **{c: getattr(totals, c) for c in _COLUMNS})
    return totals


def _mb(size: int) -> int:
    return size // (1024 * 1024)


def global_statistics() -> dict:
    totals = statistics_totals()
    return {
        "CountInstances": totals.instances,
        "CountPatients": totals.patients,
        "CountSeries": totals.series,
        "CountStudies": totals.studies,
        "TotalDiskSize": str(totals.disk_size),
        "TotalDiskSizeMB": _mb(totals.disk_size),
        "TotalUncompressedSize": str(totals.uncompressed_size),
        "TotalUncompressedSizeMB": _mb(totals.uncompressed_size),
    }


def resource_statistics(*, resource: Resource) -> dict:
    """Counts of descendants and sizes of their attachments, as Orthanc's per-resource statistics.

    One query per level of the subtree, each through the parent and attachment indexes: the level's
    count and its attachments' sums together (a single OR of subqueries over all levels made the planner
    scan the whole attachment table)."""
    level = list(Level)[resource.level]
    out: dict = {}
    names = {Level.STUDY: "CountStudies", Level.SERIES: "CountSeries", Level.INSTANCE: "CountInstances"}
    dicom = Q(attachments__content_type=ContentType.Dicom)
    sums = {"disk": Sum("attachments__compressed_size"), "raw": Sum("attachments__uncompressed_size"),
            "ddisk": Sum("attachments__compressed_size", filter=dicom),
            "draw": Sum("attachments__uncompressed_size", filter=dicom)}
    totals = dict.fromkeys(sums, 0)
    qs = Resource.objects.filter(id=resource.id)
    for lower in list(Level)[level.depth:]:
        if lower is not level:
            qs = Resource.objects.filter(parent__in=qs.values("id"))
        # each attachment row joins one resource, so the sums are exact; the count is of distinct resources
        row = qs.aggregate(n=Count("id", distinct=True), **sums)
        if lower is not level:
            out[names[lower]] = row["n"]
        for key in sums:
            totals[key] += row[key] or 0
    disk, raw, ddisk, draw = totals["disk"], totals["raw"], totals["ddisk"], totals["draw"]
    out.update({
        "DicomDiskSize": str(ddisk), "DicomDiskSizeMB": _mb(ddisk),
        "DicomUncompressedSize": str(draw), "DicomUncompressedSizeMB": _mb(draw),
        "DiskSize": str(disk), "DiskSizeMB": _mb(disk),
        "UncompressedSize": str(raw), "UncompressedSizeMB": _mb(raw),
    })
    return out
