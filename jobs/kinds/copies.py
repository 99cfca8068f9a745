"""What the jobs that store rewritten copies of instances share (modify, anonymize, merge, split; Orthanc's
CleaningInstancesJob and ResourceModificationJob): each source instance is read, rewritten and stored as a new
instance through instance_store, one instance a step.

All or nothing: if an instance fails (or the job is canceled or paused), the copies this run stored are
deleted again, so a failed job leaves the archive as it was. Copies get identifiers derived from the job ID
and the source identifiers (``derived_uid``), so a job that runs again after a restart stores the same
instances again instead of a second set. The sources are deleted at the end unless the job keeps them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from django.db import connections
from pydicom.uid import generate_uid

from archive import selectors, services
from archive.identifiers import ResourceIds
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment, ContentType, Label, Resource
from archive.storage import dicom_storage, uncompress

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's registered root, as archive.modification uses


def derived_uid(seed: str, *parts: str) -> str:
    """A new UID that is the same every time for the same seed (a job ID) and source parts."""
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[seed, *parts])


@dataclass(frozen=True)
class Source:
    """A source instance: the public IDs of it and its ancestors (patient, study, series, instance) and where
    its file is (fetched with the list: no query per instance). Picklable, for the worker processes."""

    ids: ResourceIds
    file_uuid: str
    compressed: bool

    def read(self) -> bytes:
        data = dicom_storage().read(self.file_uuid)
        return uncompress(data) if self.compressed else data


def sources_of(resources: list[Resource]) -> list[Source]:
    """The instances below each resource (in Orthanc's order), each once, with their ancestors' IDs."""
    seen: set[int] = set()
    instances: list[Resource] = []
    for resource in resources:
        for instance in selectors.resource_descendants(resource=resource, level=Level.INSTANCE):
            if instance.id not in seen:
                seen.add(instance.id)
                instances.append(instance)
    ids: dict[int, ResourceIds] = {}
    files: dict[int, tuple[str, bool]] = {}
    for chunk in range(0, len(instances), 500):
        some = [i.id for i in instances[chunk:chunk + 500]]
        rows = Resource.objects.filter(id__in=some).values_list(
            "id", "public_id", "parent__public_id", "parent__parent__public_id", "parent__parent__parent__public_id")
        ids.update({rid: ResourceIds(patient=p, study=st, series=se, instance=i) for rid, i, se, st, p in rows})
        files.update({rid: (uuid, compression == 2) for rid, uuid, compression in Attachment.objects.filter(
            resource_id__in=some, content_type=ContentType.Dicom).values_list("resource_id", "uuid", "compression")})
    return [Source(ids=ids[i.id], file_uuid=files[i.id][0], compressed=files[i.id][1])
            for i in instances if i.id in files]


def _resource_ids(public_ids: list[str]) -> dict[str, int]:
    return dict(Resource.objects.filter(public_id__in=public_ids).values_list("public_id", "id"))


def provenance(metadata_type: int, old: ResourceIds) -> Callable[[ResourceIds], list[tuple[Level, int, str]]]:
    """What instance_store writes with a copy, as Orthanc's modification job: ``metadata_type``
    (ModifiedFrom/AnonymizedFrom) on the new instance, and on each ancestor whose identifier differs from the
    source's."""
    def metadata(new: ResourceIds) -> list[tuple[Level, int, str]]:
        out = [(Level.INSTANCE, metadata_type, old.instance)]
        for level, n, o in zip((Level.PATIENT, Level.STUDY, Level.SERIES), new[:3], old[:3], strict=True):
            if n != o:
                out.append((level, metadata_type, o))
        return out

    return metadata


class LabelsKeeper:
    """KeepLabels: the source's labels at every level copied onto the copy's (each pair of resources once)."""

    def __init__(self) -> None:
        self.done: set[tuple[str, str]] = set()

    def __call__(self, new: ResourceIds, old: ResourceIds) -> None:
        pairs = [(n, o) for n, o in zip(new, old, strict=True) if n != o and (n, o) not in self.done]
        if not pairs:
            return
        self.done.update(pairs)
        rids = _resource_ids([p for pair in pairs for p in pair])
        for new_id, old_id in pairs:
            if new_id in rids and old_id in rids:
                for name in Label.objects.filter(resource_id=rids[old_id]).values_list("name", flat=True):
                    Label.objects.get_or_create(resource_id=rids[new_id], name=name)


def copy_workers() -> int:
    """Processes that store the copies of one job: Orthanc's "JobsEngineThreadsCount" "ResourceModification"
    (0: one per CPU core, our default; Orthanc's is 1); 1 when jobs run inline (tests: one connection)."""
    from django.conf import settings

    if getattr(settings, "JOBS_RUN_INLINE", False):
        return 1
    counts = settings.ORTHANC.get("JobsEngineThreadsCount") or {}
    wanted = int(counts.get("ResourceModification", 0) or 0) if isinstance(counts, dict) else 0
    return wanted if wanted > 0 else (os.cpu_count() or 1)


# Instances a worker process copies per task: fewer round trips, and still a progress step every few.
CHUNK = 8


@dataclass(frozen=True)
class Copier:
    """One step of a copies job, picklable so that worker processes can run it."""

    rewrite: Callable[[Source, bytes], bytes]
    origin: Origin
    metadata_type: int | None

    def __call__(self, source: Source) -> ResourceIds:
        data = self.rewrite(source, source.read())
        metadata = provenance(self.metadata_type, source.ids) if self.metadata_type else None
        return instance_store(data=data, origin=self.origin, overwrite=True, metadata=metadata).ids

    def chunk(self, sources: list[Source]) -> tuple[list[ResourceIds], BaseException | None]:
        """In a worker: the chunk's copies, stopping at the first error, which is returned (not raised) with
        what was stored before it, so that the job can remove those too."""
        done: list[ResourceIds] = []
        try:
            for source in sources:
                done.append(self(source))
        except BaseException as error:  # noqa: BLE001 - handed to the job, which fails cleanly
            return done, error
        return done, None


def _sequential(copier: Copier, sources: list[Source]) -> Iterator[tuple[Source, ResourceIds]]:
    for source in sources:
        yield source, copier(source)


def _parallel(copier: Copier, sources: list[Source], workers: int,
              late: list[ResourceIds]) -> Iterator[tuple[Source, ResourceIds]]:
    """The copies made by ``workers`` forked processes, CHUNK instances a task. Django's connections are
    closed before the fork (a child must not share the parent's socket); each process opens its own. When
    the job stops early, pending chunks are canceled and those already running finish: their copies go to
    ``late`` so the job removes them too."""
    chunks = [sources[k:k + CHUNK] for k in range(0, len(sources), CHUNK)]
    connections.close_all()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    futures = {pool.submit(copier.chunk, chunk): chunk for chunk in chunks}
    reported: set = set()
    try:
        for future in as_completed(futures):
            reported.add(future)
            done, error = future.result()
            yield from zip(futures[future], done, strict=False)
            if error is not None:
                raise error
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        for future in futures:
            if future not in reported and not future.cancelled():
                late.extend(future.result()[0])


def copies_store(*, sources: list[Source], rewrite: Callable[[Source, bytes], bytes], origin: Origin,
                 keep_source: bool, stored: Callable[[Source, ResourceIds], None],
                 metadata_type: int | None = None) -> Iterator[float]:
    """Store ``rewrite(source, its file)`` for each source (in copy_workers() processes), yielding the
    progress after each (the last 1% left for the deletion of the sources), with ``metadata_type`` provenance
    (see ``provenance``); ``stored`` sees each copy's IDs, in the job's process. ``rewrite`` must be
    picklable (a module-level function or a dataclass instance) and give the same result in any process.
    All or nothing (see the module)."""
    copier = Copier(rewrite=rewrite, origin=origin, metadata_type=metadata_type)
    workers = min(copy_workers(), -(-len(sources) // CHUNK))
    late: list[ResourceIds] = []
    copies = _parallel(copier, sources, workers, late) if workers > 1 else _sequential(copier, sources)
    done_ids: list[str] = []
    completed = False
    try:
        for done, (source, ids) in enumerate(copies, start=1):
            if ids.instance != source.ids.instance:
                done_ids.append(ids.instance)
            stored(source, ids)
            yield 99.0 * done / max(1, len(sources))
        completed = True
    finally:
        if not completed:  # failed, canceled or paused: nothing of this run remains
            copies.close()
            sources_ids = {source.ids.instance for source in sources}
            for instance_id in done_ids + [i.instance for i in late if i.instance not in sources_ids]:
                services.resource_delete(level=Level.INSTANCE, public_id=instance_id)
    if not keep_source:
        for source in sources:
            if source.ids.instance not in done_ids:
                services.resource_delete(level=Level.INSTANCE, public_id=source.ids.instance)
