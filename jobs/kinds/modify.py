"""The ResourceModification job (/modify, /anonymize, /tools/bulk-modify, /tools/bulk-anonymize): every instance
of the given resources modified or anonymized and stored as a new instance, one instance a step, all or nothing
(jobs.kinds.copies), with ModifiedFrom/AnonymizedFrom on each new resource as Orthanc's job writes them.

Parameters: ``anonymize`` (bool), ``level`` (the modification level), ``resources`` (public IDs), ``single``
(a /{level}/{id} route: its Content names the one new resource; bulk routes list all of them), ``body`` (the
request), ``transcode``/``quality``, ``remote_ip``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from archive import modification
from archive.identifiers import ResourceIds
from archive.ingest import Origin
from archive.levels import Level
from archive.models import MetadataType, Resource
from archive.modification import Modification
from jobs.kinds.copies import LabelsKeeper, Source, copies_store, sources_of
from jobs.models import Job


def job_modification(job: Job) -> Modification:
    """The job's Modification, its new identifiers derived from the job ID so a rerun makes the same ones."""
    p = job.parameters
    if p.get("anonymize"):
        mod = modification.anonymization_parse(p["body"], level=Level(p["level"]), patient_name=p.get("patient_name"))
    else:
        mod = modification.modification_parse(p["body"], level=Level(p["level"]))
    mod.uid_seed = job.id
    return mod


@dataclass(frozen=True)
class ModifyRewrite:
    """A copy's file: modified, then transcoded if asked (picklable, for the worker processes)."""

    mod: Modification
    transcode: str | None
    quality: int

    def __call__(self, source: Source, data: bytes) -> bytes:
        data = modification.instance_modify(data, self.mod)
        if self.transcode:
            from archive.dicom.transcode import TranscodingFailed, file_transcode

            try:  # Orthanc keeps the original transfer syntax of an instance it cannot transcode
                data = file_transcode(data, syntax=self.transcode, quality=self.quality)
            except TranscodingFailed:
                pass
        return data


def _content(job: Job, *, count: int, stored: list[ResourceIds]) -> dict:
    p = job.parameters
    content: dict = {"Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": count,
                     "IsAnonymization": bool(p.get("anonymize"))}
    if p.get("single"):
        if stored:
            level = Level(p["level"])
            new_id = getattr(stored[0], level.name.lower())
            content.update({"ID": new_id, "Path": f"/{level.plural}/{new_id}", "PatientID": stored[0].patient,
                            "Type": level.value})
    else:
        found: list[dict] = []
        for depth, level in ((3, Level.INSTANCE), (2, Level.SERIES), (1, Level.STUDY), (0, Level.PATIENT)):
            found += [{"ID": i, "Path": f"/{level.plural}/{i}", "Type": level.value}
                      for i in sorted({r[depth] for r in stored})]
        content["Resources"] = found
    if p.get("transcode"):
        content["Transcode"] = p["transcode"]
    return dict(sorted(content.items()))


def modify_job(job: Job) -> Iterator[float]:
    p = job.parameters
    mod = job_modification(job)
    order = {public_id: k for k, public_id in enumerate(p["resources"])}
    roots = sorted(Resource.objects.filter(public_id__in=p["resources"]), key=lambda r: order[r.public_id])
    sources = sources_of(roots)
    metadata_type = MetadataType.AnonymizedFrom if p.get("anonymize") else MetadataType.ModifiedFrom
    keep_labels = bool(p["body"].get("KeepLabels", False))
    transcode, quality = p.get("transcode"), int(p.get("quality", 90))
    results: list[ResourceIds] = []

    labels = LabelsKeeper() if keep_labels else None

    def stored(source: Source, ids: ResourceIds) -> None:
        results.append(ids)
        if labels is not None:
            labels(ids, source.ids)

    rewrite = ModifyRewrite(mod=mod, transcode=transcode, quality=quality)
    yield from copies_store(sources=sources, rewrite=rewrite, origin=Origin.rest(remote_ip=p.get("remote_ip", "")),
                            keep_source=bool(p["body"].get("KeepSource", True)), stored=stored,
                            metadata_type=metadata_type)
    job.content = _content(job, count=len(sources), stored=results)
