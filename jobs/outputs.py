"""Files a job leaves for the client (/jobs/{id}/archive), named by the job, kept through the storage area.

A job writes its output to a local file first (a ZIP needs a seekable file). On the filesystem storage that
file is the output (``StorageDirectory/jobs/<job>.<key>``); on a remote storage (S3) it is uploaded as
``jobs/<job>.<key>`` beside the attachments and the local copy removed, so that any server process, on any
host, serves it: the processes stay stateless.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage

from archive.storage import dicom_storage
from jobs.models import Job


def outputs_dir() -> Path:
    folder = Path(settings.ORTHANC.get("StorageDirectory", "OrthancStorage")) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_path(job: Job, key: str) -> Path:
    """Where the job writes the output (locally). The job ID is a UUID and the key one of ours: never text
    from a request or a DICOM file."""
    return outputs_dir() / f"{job.id}.{key}"


def _remote():
    storage = dicom_storage()
    return None if isinstance(storage, FileSystemStorage) else storage


def _name(job: Job, key: str) -> str:
    return f"jobs/{job.id}.{key}"


def output_register(job: Job, key: str, *, content_type: str, filename: str) -> None:
    """Publish the output written at ``output_path``: uploaded first when the storage is remote."""
    remote = _remote()
    if remote is not None:
        path = output_path(job, key)
        with open(path, "rb") as f:
            remote.save(_name(job, key), File(f))
        os.unlink(path)
    job.outputs = {**job.outputs, key: {"content_type": content_type, "filename": filename}}
    Job.objects.filter(id=job.id).update(outputs=job.outputs)


def output_open(job: Job, key: str) -> BinaryIO:
    """The output as an open binary file (streamed from the bucket on a remote storage)."""
    remote = _remote()
    return open(output_path(job, key), "rb") if remote is None else remote.open(_name(job, key), "rb")


def output_remove(job: Job, key: str) -> bool:
    if key not in job.outputs:
        return False
    remote = _remote()
    try:
        if remote is None:
            os.unlink(output_path(job, key))
        else:
            remote.delete(_name(job, key))
    except FileNotFoundError:
        pass
    job.outputs = {k: v for k, v in job.outputs.items() if k != key}
    Job.objects.filter(id=job.id).update(outputs=job.outputs)
    return True


def outputs_remove(job: Job) -> None:
    for key in list(job.outputs):
        output_remove(job, key)
