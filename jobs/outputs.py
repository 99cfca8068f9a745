"""Files a job leaves for the client (/jobs/{id}/archive): kept beside the storage area, named by the job."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from jobs.models import Job


def outputs_dir() -> Path:
    folder = Path(settings.ORTHANC.get("StorageDirectory", "OrthancStorage")) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_path(job: Job, key: str) -> Path:
    # The job ID is a UUID and the key one of ours: never text from a request or a DICOM file.
    return outputs_dir() / f"{job.id}.{key}"


def output_register(job: Job, key: str, *, content_type: str, filename: str) -> None:
    job.outputs = {**job.outputs, key: {"content_type": content_type, "filename": filename}}
    Job.objects.filter(id=job.id).update(outputs=job.outputs)


def output_remove(job: Job, key: str) -> bool:
    if key not in job.outputs:
        return False
    try:
        os.unlink(output_path(job, key))
    except FileNotFoundError:
        pass
    job.outputs = {k: v for k, v in job.outputs.items() if k != key}
    Job.objects.filter(id=job.id).update(outputs=job.outputs)
    return True


def outputs_remove(job: Job) -> None:
    for key in list(job.outputs):
        output_remove(job, key)
