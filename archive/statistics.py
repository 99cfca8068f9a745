"""Sizes and counts: /statistics and /{level}/{id}/statistics, in aggregate queries."""

from __future__ import annotations

from django.db.models import Count, Q, Sum

from archive.levels import Level
from archive.models import Attachment, ContentType, Resource


def _mb(size: int) -> int:
    return size // (1024 * 1024)


def global_statistics() -> dict:
    counts = dict(Resource.objects.values_list("level").annotate(n=Count("id")).values_list("level", "n"))
    sizes = Attachment.objects.aggregate(disk=Sum("compressed_size"), raw=Sum("uncompressed_size"))
    disk, raw = sizes["disk"] or 0, sizes["raw"] or 0
    return {
        "CountInstances": counts.get(3, 0),
        "CountPatients": counts.get(0, 0),
        "CountSeries": counts.get(2, 0),
        "CountStudies": counts.get(1, 0),
        "TotalDiskSize": str(disk),
        "TotalDiskSizeMB": _mb(disk),
        "TotalUncompressedSize": str(raw),
        "TotalUncompressedSizeMB": _mb(raw),
    }


def resource_statistics(*, resource: Resource) -> dict:
    """Counts of descendants and sizes of their attachments, as Orthanc's per-resource statistics."""
    level = list(Level)[resource.level]
    out: dict = {}
    groups = {level: Resource.objects.filter(id=resource.id)}
    qs = groups[level]
    names = {Level.STUDY: "CountStudies", Level.SERIES: "CountSeries", Level.INSTANCE: "CountInstances"}
    for lower in list(Level)[level.depth + 1:]:
        qs = Resource.objects.filter(parent__in=qs.values("id"))
        groups[lower] = qs
        out[names[lower]] = qs.count()
    everything = Q()
    for qs in groups.values():
        everything |= Q(resource__in=qs.values("id"))
    attachments = Attachment.objects.filter(everything)
    total = attachments.aggregate(disk=Sum("compressed_size"), raw=Sum("uncompressed_size"))
    dicom = attachments.filter(content_type=ContentType.Dicom).aggregate(
        disk=Sum("compressed_size"), raw=Sum("uncompressed_size"))
    disk, raw = total["disk"] or 0, total["raw"] or 0
    ddisk, draw = dicom["disk"] or 0, dicom["raw"] or 0
    out.update({
        "DicomDiskSize": str(ddisk), "DicomDiskSizeMB": _mb(ddisk),
        "DicomUncompressedSize": str(draw), "DicomUncompressedSizeMB": _mb(draw),
        "DiskSize": str(disk), "DiskSizeMB": _mb(disk),
        "UncompressedSize": str(raw), "UncompressedSizeMB": _mb(raw),
    })
    return out
