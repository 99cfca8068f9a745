"""The index: the patient/study/series/instance tree and what Orthanc attaches to its resources.

One table holds the four levels, as Orthanc's ``Resources`` table does: generic-by-level code stays
generic, children are one indexed lookup on ``parent``, and an instance's ancestors are a short chain.
"""

from __future__ import annotations

import enum

from django.db import models

from archive.json_nul import NulSafeDecoder, NulSafeEncoder


class LevelCode(models.IntegerChoices):
    PATIENT = 0, "Patient"
    STUDY = 1, "Study"
    SERIES = 2, "Series"
    INSTANCE = 3, "Instance"


class MetadataType(enum.IntEnum):
    """Orthanc's metadata numbers; names are what the REST API shows. 1024-65535 are user metadata."""

    IndexInSeries = 1
    ReceptionDate = 2
    RemoteAET = 3
    ExpectedNumberOfInstances = 4
    ModifiedFrom = 5
    AnonymizedFrom = 6
    LastUpdate = 7
    Origin = 8
    TransferSyntax = 9
    SopClassUid = 10
    RemoteIP = 11
    CalledAET = 12
    HttpUsername = 13
    PixelDataOffset = 14
    MainDicomTagsSignature = 15
    MainDicomSequences = 16
    PixelDataVR = 17


class ChangeType(enum.IntEnum):
    """Orthanc's change types, as numbered in its database."""

    CompletedSeries = 1
    Deleted = 2
    NewChildInstance = 3
    NewInstance = 4
    NewPatient = 5
    NewSeries = 6
    NewStudy = 7
    AnonymizedStudy = 8
    AnonymizedSeries = 9
    ModifiedStudy = 10
    ModifiedSeries = 11
    AnonymizedPatient = 12
    ModifiedPatient = 13
    StablePatient = 14
    StableStudy = 15
    StableSeries = 16
    UpdatedAttachment = 17
    UpdatedMetadata = 18


class ContentType(enum.IntEnum):
    """Orthanc's attachment types; 1024-65535 are user-defined (UserContentType)."""

    Dicom = 1
    DicomAsJson = 2
    DicomUntilPixelData = 3


class Resource(models.Model):
    level = models.PositiveSmallIntegerField(choices=LevelCode.choices)
    public_id = models.CharField(max_length=44, unique=True)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="children")
    # Main DICOM tags by keyword; a study also holds its patient's tags, as in Orthanc.
    main_tags = models.JSONField(default=dict)
    is_protected = models.BooleanField(default=False)
    is_stable = models.BooleanField(default=False)
    last_update = models.DateTimeField()
    index_in_series = models.IntegerField(null=True)
    # Series only: Orthanc's ExpectedNumberOfInstances, kept here too so ingest needs no metadata lookup.
    expected_instances = models.IntegerField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["level", "id"], name="resource_level_id"),
            models.Index(fields=["is_stable", "last_update"], name="resource_unstable"),
        ]

    def __str__(self) -> str:
        return f"{LevelCode(self.level).label} {self.public_id}"


class MainDicomTag(models.Model):
    """The main DICOM tags of a resource, one row per tag, for /tools/find (``Resource.main_tags`` stays the
    source of the JSON answers). A study's rows carry its patient's tags too, as Orthanc copies them.

    ``level`` repeats the resource's level so one index range answers "studies whose tag T is V" without
    touching the resource table; ``value_folded`` is ``matching.fold(value)`` for CaseSensitive false."""

    # No index of its own: the unique (resource, tag) constraint serves lookups by resource.
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="tag_rows", db_index=False)
    level = models.PositiveSmallIntegerField(choices=LevelCode.choices)
    tag = models.IntegerField()  # (group << 16) | element
    value = models.TextField()
    value_folded = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource", "tag"], name="maindicomtag_unique")]
        indexes = [
            # resource_id last: the index covers the semi-join "id IN (SELECT resource_id ...)". On
            # PostgreSQL the migration gives both value columns the "C" collation, so that comparisons, ranges
            # and ORDER BY follow byte order as on SQLite (and Orthanc), and LIKE 'prefix%' can use the index.
            models.Index(fields=["level", "tag", "value", "resource"], name="maindicomtag_value"),
            models.Index(fields=["level", "tag", "value_folded", "resource"], name="maindicomtag_folded"),
        ]


class Metadata(models.Model):
    # No index of its own: metadata_unique (resource, type) serves lookups by resource, and one index less is
    # ~1.5 WAL pages less per stored instance
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="metadata", db_index=False)
    type = models.IntegerField()
    value = models.TextField()
    revision = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource", "type"], name="metadata_unique")]


class Attachment(models.Model):
    # No index of its own: attachment_unique (resource, content_type) serves lookups by resource
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="attachments", db_index=False)
    content_type = models.IntegerField()
    uuid = models.CharField(max_length=36, unique=True)
    compressed_size = models.BigIntegerField()
    uncompressed_size = models.BigIntegerField()
    compression = models.SmallIntegerField(default=1)  # 1 none, 2 zlib with size prefix (Orthanc's numbers)
    compressed_md5 = models.CharField(max_length=32, default="")
    uncompressed_md5 = models.CharField(max_length=32, default="")
    revision = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource", "content_type"], name="attachment_unique")]


class Label(models.Model):
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource", "name"], name="label_unique")]
        indexes = [models.Index(fields=["name", "resource"], name="label_name")]


class Change(models.Model):
    """The change log of /changes. As Orthanc's Changes rows (their resource ON DELETE CASCADE), the changes of a
    resource go when it is deleted (services._delete), found by their public ID."""

    seq = models.BigAutoField(primary_key=True)
    change_type = models.SmallIntegerField()
    level = models.PositiveSmallIntegerField(choices=LevelCode.choices)
    public_id = models.CharField(max_length=44)
    date = models.CharField(max_length=15)  # YYYYMMDDTHHMMSS, as Orthanc stores it

    class Meta:
        indexes = [models.Index(fields=["change_type", "seq"], name="change_type_seq"),
                   models.Index(fields=["public_id"], name="change_public_id")]


class ExportedResource(models.Model):
    """The log of /exports (resources sent to modalities and peers)."""

    seq = models.BigAutoField(primary_key=True)
    level = models.PositiveSmallIntegerField(choices=LevelCode.choices)
    public_id = models.CharField(max_length=44)
    remote_modality = models.CharField(max_length=256)
    patient_id = models.CharField(max_length=256, default="")
    study_instance_uid = models.CharField(max_length=256, default="")
    series_instance_uid = models.CharField(max_length=256, default="")
    sop_instance_uid = models.CharField(max_length=256, default="")
    date = models.CharField(max_length=15)


class GlobalProperty(models.Model):
    """Server-wide values shared by every process (runtime options such as the log level), as Orthanc's
    GlobalProperties table."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.TextField()


class StatisticsCounter(models.Model):
    """Running totals behind /statistics, so that it never counts or sums whole tables: every write that
    adds or removes resources or attachments adds its delta here in the same transaction (see
    archive/statistics.py). The totals are the sum over the rows. On PostgreSQL each connection adds to
    the row ``pg_backend_pid() % 16``, so concurrent ingests do not queue on one row lock until commit."""

    shard = models.SmallIntegerField(primary_key=True)
    patients = models.BigIntegerField(default=0)
    studies = models.BigIntegerField(default=0)
    series = models.BigIntegerField(default=0)
    instances = models.BigIntegerField(default=0)
    disk_size = models.BigIntegerField(default=0)           # compressed sizes of all attachments
    uncompressed_size = models.BigIntegerField(default=0)


class DicomQuery(models.Model):
    """A C-FIND SCU and its answers, for /queries/{id} (archive/network/queries.py). Orthanc keeps them in memory,
    the QueryRetrieveSize most recent; here they live in the database so that every process sees them."""

    id = models.CharField(max_length=36, primary_key=True)  # a UUID, as Orthanc's SharedArchive names them
    modality = models.CharField(max_length=256)              # the symbolic name
    remote = models.JSONField(default=dict, encoder=NulSafeEncoder, decoder=NulSafeDecoder)                  # the modality's parameters when queried
    level = models.CharField(max_length=16)
    query = models.JSONField(default=dict, encoder=NulSafeEncoder, decoder=NulSafeDecoder)                   # {"gggg,eeee": "value"}, as asked
    answers = models.JSONField(default=list, encoder=NulSafeEncoder, decoder=NulSafeDecoder)                 # each in Orthanc's full format
    normalize = models.BooleanField(default=True)
    local_aet = models.CharField(max_length=64)
    timeout = models.IntegerField(default=0)                 # 0: the default of the association
    created = models.DateTimeField(auto_now_add=True, db_index=True)


class StorageCommitmentReport(models.Model):
    """A storage commitment request we sent, and the report the remote modality sent back (N-EVENT-REPORT),
    for /storage-commitment/{id}. Orthanc keeps the 100 most recent in memory."""

    transaction_uid = models.CharField(max_length=64, primary_key=True)
    remote_aet = models.CharField(max_length=64)
    complete = models.BooleanField(default=False)
    success = models.JSONField(default=list)    # [[SOPClassUID, SOPInstanceUID]]
    failures = models.JSONField(default=list)   # [[SOPClassUID, SOPInstanceUID, FailureReason]]
    created = models.DateTimeField(auto_now_add=True, db_index=True)


class DicomRetrieveMessage(models.Model):
    """A C-MOVE we sent, by "{our AET}-{message ID}": the C-STORE sub-operations it causes name it as their Move
    Originator (PS3.7 C.4.2.1.3), so the SCP can tell the job which instances arrived (Orthanc 1.12.10)."""

    key = models.CharField(max_length=96, primary_key=True)
    job_id = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)


class DicomRetrieveReceived(models.Model):
    """An instance received by C-STORE for one of our C-MOVEs (see DicomRetrieveMessage)."""

    key = models.CharField(max_length=96, db_index=True)
    instance = models.CharField(max_length=44)


class ProcessMetrics(models.Model):
    """Each server process's own Prometheus figures (active requests, durations, logged errors...), written by
    the process every few seconds (archive/metrics.py) so that whichever HTTP process answers
    /tools/metrics-prometheus reports the whole deployment. Gauges count only rows ``updated`` recently (live
    processes); counters of dead processes are folded into the row ``process="retired"`` and kept."""

    process = models.CharField(max_length=128, primary_key=True)   # "host:pid"
    values = models.JSONField(default=dict)                          # metric name -> number
    updated = models.FloatField(db_index=True)                       # time.time() of the last write


class StagedFile(models.Model):
    """An attachment in flight in an S3 storage area (archive/storage_s3.py): written before the bytes are PUT,
    deleted once the index transaction that references them has committed (or the bytes were discarded).
    S3 has no rename, so the filesystem's ``.incoming/`` move cannot carry the "staged" state; keeping it here
    instead of in a marker object makes a stored instance cost one S3 request (the PUT) instead of three.
    After a crash, recovery looks only at these rows: objects the index knows are kept, the others deleted."""

    uuid = models.CharField(max_length=36, primary_key=True)
    created = models.FloatField(db_index=True)  # time.time() when staged: recovery leaves young rows alone
