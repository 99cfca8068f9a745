"""What the jobs that store rewritten copies of instances share (modify, anonymize, merge, split; Orthanc's
CleaningInstancesJob and ResourceModificationJob): each source instance is read, rewritten and stored as a new
instance through instance_store, one instance a step.

All or nothing: if an instance fails (or the job is canceled or paused), the copies this run stored are
deleted again, so a failed job leaves the archive as it was. Copies get identifiers derived from the job ID
and the source identifiers (``derived_uid``), so a job that runs again after a restart stores the same
instances again instead of a second set. The sources are deleted at the end unless the job keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydicom.uid import generate_uid

from archive import selectors, services
from archive.identifiers import ResourceIds
from archive.ingest import Origin, StoreResult, instance_store
from archive.levels import Level
from archive.models import Label, Metadata, Resource

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root, as archive.modification uses


def derived_uid(seed: str, *parts: str) -> str:
    """A new UID that is the same every time for the same seed (a job ID) and source parts."""
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[seed, *parts])


@dataclass(frozen=True)
class Source:
    """A source instance with the public IDs of its ancestors (patient, study, series, instance)."""

    resource: Resource
    ids: ResourceIds


def sources_of(resources: list[Resource]) -> list[Source]:
    """The instances below each resource (in Orthanc's order), each once, with their ancestors' IDs."""
    seen: set[int] = set()
    instances: list[Resource] = []
    for resource in resources:
        for instance in selectors.resource_descendants(resource=resource, level=Level.INSTANCE):
            if instance.id not in seen:
                seen.add(instance.id)
                instances.append(instance)
    rows = Resource.objects.filter(id__in=[i.id for i in instances]).values_list(
        "id", "public_id", "parent__public_id", "parent__parent__public_id", "parent__parent__parent__public_id")
    ids = {rid: ResourceIds(patient=p, study=st, series=se, instance=i) for rid, i, se, st, p in rows}
    return [Source(resource=i, ids=ids[i.id]) for i in instances]


def _resource_ids(public_ids: list[str]) -> dict[str, int]:
    return dict(Resource.objects.filter(public_id__in=public_ids).values_list("public_id", "id"))


def mark_provenance(*, new: ResourceIds, old: ResourceIds, metadata_type: int | None, keep_labels: bool) -> None:
    """After one copy is stored: ``metadata_type`` (ModifiedFrom/AnonymizedFrom) on the new instance and on
    each new ancestor whose identifier differs from the source's (as Orthanc's modification job does), and,
    with KeepLabels, the source's labels at every level onto the copy's."""
    pairs = [(n, o) for n, o in zip(new, old, strict=True) if n != o]
    if not pairs:
        return
    rids = _resource_ids([p for pair in pairs for p in pair])
    if metadata_type is not None:
        for new_id, old_id in pairs:
            if new_id in rids:
                Metadata.objects.update_or_create(resource_id=rids[new_id], type=metadata_type,
                                                  defaults={"value": old_id})
    if keep_labels:
        for new_id, old_id in pairs:
            if new_id in rids and old_id in rids:
                for name in Label.objects.filter(resource_id=rids[old_id]).values_list("name", flat=True):
                    Label.objects.get_or_create(resource_id=rids[new_id], name=name)


def copies_store(*, sources: list[Source], rewrite: Callable[[Source, bytes], bytes], origin: Origin,
                 keep_source: bool, stored: Callable[[Source, StoreResult], None]) -> Iterator[float]:
    """Store ``rewrite(source, its file)`` for each source, one a step (yielding the progress, the last 1%
    left for the deletion of the sources); ``stored`` sees each result. All or nothing (see the module)."""
    done_ids: list[str] = []
    completed = False
    try:
        for done, source in enumerate(sources, start=1):
            data = rewrite(source, selectors.instance_dicom(instance=source.resource))
            result = instance_store(data=data, origin=origin, overwrite=True)
            if result.ids.instance != source.ids.instance:
                done_ids.append(result.ids.instance)
            stored(source, result)
            yield 99.0 * done / max(1, len(sources))
        completed = True
    finally:
        if not completed:  # failed, canceled or paused: nothing of this run remains
            for instance_id in done_ids:
                services.resource_delete(level=Level.INSTANCE, public_id=instance_id)
    if not keep_source:
        for source in sources:
            if source.ids.instance not in done_ids:
                services.resource_delete(level=Level.INSTANCE, public_id=source.ids.instance)
