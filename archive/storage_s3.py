"""The storage area in an S3-compatible bucket: the same interface as ``archive.storage.DicomFileStorage``.

Selected with ``STORAGE_BACKEND=s3`` (see ``explorer/settings.py``); configured as django-storages'
``S3Storage`` is (``bucket_name``, ``endpoint_url``, ``region_name``, ``access_key``/``secret_key`` or boto3's
own credential chain, ``location`` as the key prefix). Objects are laid out as Orthanc lays out its folders,
``[prefix/]xx/yy/uuid``, so a bucket can be read by anyone who knows that layout.

Two-phase write without renames, one S3 request per stored instance
-------------------------------------------------------------------
S3 has no rename: a "move" is a server-side copy of the whole object plus a delete, which doubles the write
cost of every instance. So the bytes are written once, at their final key, and the "staged" state is carried
by a row of the index database, ``archive.models.StagedFile`` (uuid, created), not by the bucket:

- ``stage()`` inserts the row *first*, committed on its own (autocommit: ingest calls ``stage()`` outside any
  transaction, on a helper thread with its own database connection), then PUTs the object (a multipart
  upload above the transfer configuration's threshold, 8 MiB by default). A crash between the two leaves a
  row whose object may be missing; a crash after both leaves a row and its object. Never an object without a
  row, so no crash can leak an object that recovery would not find.
- ``publish()`` (after the index commit) deletes the row: a database statement, no S3 request.
- ``discard()`` deletes the object, then the row (row last, for the same reason as above).
- ``retire()`` (a file that a newer one replaced: an overwrite, a reconstruction) inserts such a row, dated
  so that recovery deletes the object REPLACED_GRACE seconds later: readers that listed it still read it.
- ``recover(known)`` reads only the rows (cost proportional to what was in flight, never to the archive),
  keeps the objects of the UUIDs the index knows and drops their rows, and deletes the objects of the others
  (DeleteObjects, 1000 keys a request), then their rows. Rows younger than ``recover_grace`` seconds are left
  alone: with several processes on one bucket (scale-out), a row that young may belong to an ingest still
  running in another process, whose object must not be deleted under it. Recovery is idempotent and cheap, so
  it can run periodically, which makes the grace period harmless.

So a stored instance costs one S3 request, the object PUT (one billed PUT on AWS), plus two one-row database
statements (markers kept as objects in the bucket would cost three S3 requests, two of them billed PUTs).

Between stage and publish the object is already at its final key, which is fine: nothing reads a UUID the
index does not reference yet, and ``read()`` needs no fallback (the filesystem version has to look in
``.incoming`` too). ``all_uuids()`` leaves out staged UUIDs, as the filesystem version does.

Reads are one GET. ``read()`` returns the bytes (what every caller wants today); ``stream()`` returns the
response body unread, a file-like object that pulls from the socket as it is read, for big files.

One boto3 client per thread (django-storages' thread-local connection), renewed after a fork; one database
connection per thread too (Django's), so the stage threads of ingest each use their own.

There is no local file behind a UUID: ``path_of()`` raises ``NoLocalPath``. No production code calls it (only
a test that corrupts a file on disk).
"""

from __future__ import annotations

import datetime
import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from botocore.exceptions import ClientError
from django.db import IntegrityError, connections, transaction
from storages.backends.s3 import S3Storage

from archive.metrics import registry as metrics
from archive.models import StagedFile
from archive.storage import REPLACED_GRACE

_ROW_BATCH = 500  # UUIDs per "DELETE ... WHERE uuid IN (...)" (SQLite's variable limit is far above)
_CONTENT_TYPE = "application/octet-stream"  # compressed or not: the index says which
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class NoLocalPath(NotImplementedError):
    """The attachment lives in a bucket: there is no file on a local disk to point at."""


def _relative_key(uuid: str) -> str:
    return f"{uuid[0:2]}/{uuid[2:4]}/{uuid}"


def _is_missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("NoSuchKey", "404", "NotFound") or status == 404


class S3DicomStorage(S3Storage):
    """Attachments in an S3 bucket, with a two-phase write (stage, then publish after commit)."""

    # stage() commits its in-flight row first: it must not run while its caller holds the index's write
    # transaction (SQLite: the two would wait for each other; see ingest's sole_writer)
    stage_writes_index = True

    def __init__(self, recover_grace: float = 300.0, **settings):
        # django-storages rejects options it does not know, so ours are taken out first.
        self.recover_grace = float(recover_grace)
        settings.setdefault("file_overwrite", True)
        super().__init__(**settings)
        self.prefix = self.location.strip("/")
        self._pid = os.getpid()

    # -- keys ------------------------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def key_of(self, uuid: str) -> str:
        """The object key of a published attachment (``[prefix/]xx/yy/uuid``)."""
        return self._key(_relative_key(uuid))

    @property
    def client(self):
        """The low-level boto3 client of this thread (django-storages keeps one connection per thread)."""
        if self._pid != os.getpid():
            # A forked child (gunicorn, q2 or DICOM workers) must not share its parent's pooled sockets.
            self._connections = threading.local()
            self._bucket = None
            self._pid = os.getpid()
        return self.connection.meta.client

    # -- two-phase write -------------------------------------------------------------------------------

    def stage(self, uuid: str, data: bytes) -> None:
        """Write the bytes of a new attachment, recorded in-flight so a crash cannot make them look published.

        The StagedFile row is committed before the PUT (call this outside any transaction, as ingest does:
        inside one the row would only commit with it, and a rollback after the PUT would leak the object)."""
        self._rows_ready()
        StagedFile.objects.create(uuid=uuid, created=time.time())
        if len(data) <= self.transfer_config.multipart_threshold:
            self.client.put_object(Bucket=self.bucket_name, Key=self.key_of(uuid), Body=data,
                                   ContentType=_CONTENT_TYPE)
        else:  # big files in parallel parts (BytesIO shares the bytes, no copy)
            self.client.upload_fileobj(io.BytesIO(data), self.bucket_name, self.key_of(uuid),
                                       ExtraArgs={"ContentType": _CONTENT_TYPE}, Config=self.transfer_config)
        metrics.counter_add(name="orthanc_storage_written_bytes", amount=len(data))

    def publish(self, uuid: str) -> None:
        """Forget the in-flight row; call after the index commit. The object is already in place (no S3 request)."""
        self._delete_rows([uuid])

    def discard(self, uuid: str) -> None:
        """Forget a staged attachment whose index transaction failed (object first, row last)."""
        self._delete(self.key_of(uuid))
        self._rows_ready()
        self._delete_rows([uuid])

    # -- reads -----------------------------------------------------------------------------------------

    def read(self, uuid: str) -> bytes:
        """The stored bytes, in one GET; FileNotFoundError when the object is missing."""
        body = self.stream(uuid)
        try:
            data = body.read()
        finally:
            body.close()
        metrics.counter_add(name="orthanc_storage_read_bytes", amount=len(data))
        return data

    def stream(self, uuid: str) -> IO[bytes]:
        """The stored bytes as a file-like object read from the network as it is consumed (close it)."""
        try:
            answer = self.client.get_object(Bucket=self.bucket_name, Key=self.key_of(uuid))
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"No such attachment in s3://{self.bucket_name}: {uuid}") from error
            raise
        return answer["Body"]

    def path_of(self, uuid: str) -> str:
        raise NoLocalPath(f"Attachment {uuid} is stored in s3://{self.bucket_name}/{self.key_of(uuid)}, "
                          "not on a local disk: use read() or stream()")

    # -- removal and recovery --------------------------------------------------------------------------

    def remove(self, uuid: str) -> None:
        """Delete a published attachment (one request; a leftover row is settled by ``recover``)."""
        self._delete(self.key_of(uuid))

    def retire(self, uuid: str) -> None:
        """Delete a file that a newer one replaced REPLACED_GRACE seconds from now (archive/storage.py says why).
        The object stays at its key (readers need no fallback) under an in-flight row dated so that ``recover``,
        which deletes the objects of rows the index does not reference once older than ``recover_grace``, takes
        it then: no S3 request now, one batched DeleteObjects later. Deleted at once with STORAGE_REPLACED_GRACE
        0, when recovery does not run periodically (``recover_grace`` 0), or when the replaced write is itself
        still in flight (its row exists, and its publish, still to come, drops it)."""
        if self.recover_grace <= 0 or REPLACED_GRACE <= 0:
            self.remove(uuid)
            return
        self._rows_ready()
        try:
            with transaction.atomic(using=StagedFile.objects.db):
                StagedFile.objects.create(uuid=uuid, created=time.time() + max(0.0, REPLACED_GRACE - self.recover_grace))
        except IntegrityError:
            self.remove(uuid)

    def purge_replaced(self, grace: float | None = None) -> int:
        return 0     # the periodic recovery deletes retired objects (see retire)

    def staged(self) -> list[str]:
        """The UUIDs in flight (or left by a crash): the StagedFile rows."""
        return list(StagedFile.objects.values_list("uuid", flat=True))

    def recover(self, known: Callable[[Iterable[str]], set[str]], *,
                grace: float | None = None) -> tuple[int, int]:
        """Settle attachments left staged by a crash; ``known`` says which UUIDs the index references.

        Rows younger than ``grace`` seconds (default ``recover_grace``) may be
        ingests in flight in another process and are left for a later pass."""
        grace = self.recover_grace if grace is None else grace
        rows = StagedFile.objects.all()
        if grace > 0:
            rows = rows.filter(created__lte=time.time() - grace)
        pending = list(rows.values_list("uuid", flat=True))
        if not pending:
            return 0, 0
        referenced = known(pending)
        drop = [uuid for uuid in pending if uuid not in referenced]
        # Objects before rows, as in discard(): a crash in the middle leaves rows to retry with.
        self._delete_many([self.key_of(uuid) for uuid in drop])
        self._delete_rows(pending)
        return len(pending) - len(drop), len(drop)

    def all_uuids(self) -> set[str]:
        """Every published attachment (lists the whole bucket: for consistency checks and tests only)."""
        outputs = self._key("jobs/")  # job outputs (jobs/outputs.py) live beside the attachments
        found = {key.rsplit("/", 1)[-1] for key, _ in self._list(self._key("")) if not key.startswith(outputs)}
        return found - set(self.staged())

    # -- helpers ---------------------------------------------------------------------------------------

    def _rows_ready(self) -> None:
        """Drop this thread's database connection if an error left it unusable (the database restarted...):
        a stage thread serves no request, so Django's request-end check never runs there. Only a broken
        connection is dropped (not an old one: it may carry session settings) and never in a transaction."""
        connection = connections[StagedFile.objects.db]
        if connection.connection is None or not connection.errors_occurred or connection.in_atomic_block:
            return
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()

    def _delete_rows(self, uuids: list[str]) -> None:
        # One DELETE statement per batch, in autocommit (QuerySet.delete() would wrap it in a transaction).
        for i in range(0, len(uuids), _ROW_BATCH):
            rows = StagedFile.objects.filter(uuid__in=uuids[i:i + _ROW_BATCH])
            rows._raw_delete(rows.db)

    def _list(self, prefix: str) -> Iterator[tuple[str, datetime.datetime]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                yield item["Key"], item["LastModified"]

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket_name, Key=key)
        except ClientError as error:
            if not _is_missing(error):  # S3 answers 204 for a missing key; some servers say 404
                raise

    def _delete_many(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = keys[i:i + _DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket_name, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = [e for e in answer.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise OSError(f"S3 DeleteObjects failed for {len(errors)} keys, first: {errors[0]}")
