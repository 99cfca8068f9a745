"""The MergeStudy and SplitStudy jobs (archive.restructure): the copies are stored one instance a step, all or
nothing, the sources deleted at the end unless KeepSource (jobs.kinds.copies)."""

from __future__ import annotations

from collections.abc import Iterator

from archive.ingest import Origin, StoreResult
from archive.models import Resource
from archive.restructure import Restructure, instance_restructure
from jobs.kinds.copies import Source, copies_store, derived_uid, mark_provenance, sources_of
from jobs.models import Job


def _run(job: Job, *, keep_labels: bool, on_stored=None) -> Iterator[float]:
    p = job.parameters
    plan = Restructure.from_dict(p["plan"])
    resources = list(Resource.objects.filter(public_id__in=p["resources"]))
    order = {public_id: k for k, public_id in enumerate(p["resources"])}
    sources = sources_of(sorted(resources, key=lambda r: order[r.public_id]))
    job.content["InstancesCount"] = len(sources)

    def rewrite(source: Source, data: bytes) -> bytes:
        return instance_restructure(data, plan, series_uid=derived_uid(job.id, "series", source.ids.series),
                                    sop_uid=derived_uid(job.id, source.ids.instance))

    def stored(source: Source, result: StoreResult) -> None:
        mark_provenance(new=result.ids, old=source.ids, metadata_type=None, keep_labels=keep_labels)
        if on_stored is not None:
            on_stored(result)

    yield from copies_store(sources=sources, rewrite=rewrite, origin=Origin.rest(remote_ip=p.get("remote_ip", "")),
                            keep_source=p["keep_source"], stored=stored)


def merge_job(job: Job) -> Iterator[float]:
    yield from _run(job, keep_labels=False)


def split_job(job: Job) -> Iterator[float]:
    def stored(result: StoreResult) -> None:
        job.content["TargetStudy"] = result.ids.study

    yield from _run(job, keep_labels=job.parameters.get("keep_labels", False), on_stored=stored)
