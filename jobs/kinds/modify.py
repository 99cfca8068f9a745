"""The ResourceModification job: every instance of a patient, study or series modified and stored as a new
instance through instance_store, with ModifiedFrom metadata, one instance a step.

All or nothing: if an instance fails (or the job is canceled), the instances this run already stored are
deleted again, so a failed job leaves the archive as it was.
"""

from __future__ import annotations

from collections.abc import Iterator

from archive import selectors, services
from archive.identifiers import ResourceIds
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Metadata, MetadataType, Resource
from archive.modification import instance_modify, modification_parse
from jobs.models import Job


def _mark_modified_from(new: ResourceIds, old_instance: Resource, level: Level) -> None:
    """ModifiedFrom on the new instance and on each new ancestor up to the modified level."""
    new_ids = [new.patient, new.study, new.series, new.instance]
    old: Resource | None = old_instance
    for depth in range(Level.INSTANCE.depth, level.depth - 1, -1):
        if old is None:
            break
        if new_ids[depth] != old.public_id:
            resource_id = Resource.objects.filter(public_id=new_ids[depth]).values_list("id", flat=True).first()
            if resource_id is not None:
                Metadata.objects.update_or_create(resource_id=resource_id, type=MetadataType.ModifiedFrom,
                                                  defaults={"value": old.public_id})
        old = old.parent


def modify_job(job: Job) -> Iterator[float]:
    level, public_id = Level(job.parameters["level"]), job.parameters["public_id"]
    mod = modification_parse(job.parameters["body"], level=level)
    root = selectors.resource_get(level=level, public_id=public_id)
    instances = selectors.resource_descendants(resource=root, level=Level.INSTANCE)
    origin = Origin.rest(remote_ip=job.parameters.get("remote_ip", ""), username="")
    stored: list[str] = []
    last: ResourceIds | None = None
    completed = False
    try:
        for done, instance in enumerate(instances, start=1):
            data = instance_modify(selectors.instance_dicom(instance=instance), mod)
            last = instance_store(data=data, origin=origin, overwrite=True).ids
            stored.append(last.instance)
            _mark_modified_from(last, Resource.objects.select_related("parent__parent__parent").get(id=instance.id),
                                level)
            yield 99.0 * done / max(1, len(instances))
        completed = True
    finally:
        if not completed:
            for instance_id in stored:  # failed or canceled: nothing of this run remains
                services.resource_delete(level=Level.INSTANCE, public_id=instance_id)
    if not mod.keep_source:
        services.resource_delete(level=level, public_id=public_id)
    new_id = getattr(last, level.name.lower()) if last else public_id
    job.content = {"Description": "REST API", "FailedInstancesCount": 0, "ID": new_id,
                   "InstancesCount": len(instances), "IsAnonymization": False,
                   "Path": f"/{level.plural}/{new_id}", "PatientID": last.patient if last else "",
                   "Type": level.value}
