"""The MergeStudy and SplitStudy jobs (archive.restructure): the copies are stored one instance a step, all or
nothing, the sources deleted at the end unless KeepSource (jobs.kinds.copies)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from archive.identifiers import ResourceIds
from archive.ingest import Origin
from archive.models import Resource
from archive.restructure import Restructure, instance_restructure
from jobs.kinds.copies import LabelsKeeper, Source, copies_store, derived_uid, sources_of
from jobs.models import Job


@dataclass(frozen=True)
class RestructureRewrite:
    """A copy's file, in the target study with UIDs derived from the job (picklable, for the workers)."""

    plan: Restructure
    seed: str

    def __call__(self, source: Source, data: bytes) -> bytes:
        return instance_restructure(data, self.plan, series_uid=derived_uid(self.seed, "series", source.ids.series),
                                    sop_uid=derived_uid(self.seed, source.ids.instance))


def _run(job: Job, *, keep_labels: bool, on_stored=None) -> Iterator[float]:
    p = job.parameters
    plan = Restructure.from_dict(p["plan"])
    resources = list(Resource.objects.filter(public_id__in=p["resources"]))
    order = {public_id: k for k, public_id in enumerate(p["resources"])}
    sources = sources_of(sorted(resources, key=lambda r: order[r.public_id]))
    job.content["InstancesCount"] = len(sources)

    labels = LabelsKeeper() if keep_labels else None

    def stored(source: Source, ids: ResourceIds) -> None:
        if labels is not None:
            labels(ids, source.ids)
        if on_stored is not None:
            on_stored(ids)

    yield from copies_store(sources=sources, rewrite=RestructureRewrite(plan=plan, seed=job.id), origin=Origin.rest(remote_ip=p.get("remote_ip", "")),
                            keep_source=p["keep_source"], stored=stored)


def merge_job(job: Job) -> Iterator[float]:
    yield from _run(job, keep_labels=False)


def split_job(job: Job) -> Iterator[float]:
    def stored(ids: ResourceIds) -> None:
        job.content["TargetStudy"] = ids.study

    yield from _run(job, keep_labels=job.parameters.get("keep_labels", False), on_stored=stored)
