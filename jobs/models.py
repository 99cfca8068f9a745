"""A job as Orthanc shows it on /jobs/{id}, plus what the engine needs to run, pause and resume it."""

from __future__ import annotations

import uuid

from django.db import models

from archive.json_nul import NulSafeDecoder, NulSafeEncoder


class State(models.TextChoices):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"


def new_job_id() -> str:
    return str(uuid.uuid4())


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_job_id, editable=False)
    type = models.CharField(max_length=64)                 # Orthanc's "Type": Archive, Media, ResourceModification...
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    priority = models.IntegerField(default=0)
    progress = models.IntegerField(default=0)              # percent
    parameters = models.JSONField(default=dict, encoder=NulSafeEncoder, decoder=NulSafeDecoder)            # what the kind needs to run (resource IDs, options)
    content = models.JSONField(default=dict, encoder=NulSafeEncoder, decoder=NulSafeDecoder)               # Orthanc's "Content"
    user_data = models.JSONField(null=True, default=None, encoder=NulSafeEncoder, decoder=NulSafeDecoder)  # the request's "UserData" (Orthanc 1.12.9), shown as is
    outputs = models.JSONField(default=dict, encoder=NulSafeEncoder, decoder=NulSafeDecoder)               # key -> {"path", "content_type", "filename"}
    error_code = models.IntegerField(default=0)
    error_description = models.CharField(max_length=256, default="Success")
    error_details = models.TextField(default="")
    error_payload = models.JSONField(null=True, default=None, encoder=NulSafeEncoder, decoder=NulSafeDecoder)   # ArchiveError.payload of the failure
    creation_time = models.DateTimeField(auto_now_add=True)
    completion_time = models.DateTimeField(null=True)
    runtime = models.FloatField(default=0.0)               # seconds spent running ("EffectiveRuntime")
    timestamp = models.DateTimeField(auto_now=True)
    # Set by pause/cancel while the job runs; the runner reads it between steps.
    request = models.CharField(max_length=16, default="")

    class Meta:
        indexes = [models.Index(fields=["state", "priority", "creation_time"], name="job_dispatch"),
                   models.Index(fields=["-creation_time", "-id"], name="job_newest")]   # the jobs page (keyset)
