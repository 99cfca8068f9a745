"""ReadOnly in the archive: instance_store refuses before writing a file; the connection guard refuses any
write to the index, whoever issues it, and leaves the other tables (jobs, queries...) writable."""

from __future__ import annotations

import pytest
from django.db import connection

from archive.errors import ReadOnlyArchive
from archive.ingest import Origin, instance_store
from archive.models import DicomQuery, Label, Resource
from archive.read_only import index_tables, writes_index
from tests.dicom_factory import make_dicom

# transaction=True: a refused write marks the surrounding transaction for rollback, as it would a request's
pytestmark = pytest.mark.django_db(transaction=True)
REST = Origin.rest(remote_ip="127.0.0.1")


@pytest.mark.parametrize(("sql", "expected"), [
    ('INSERT INTO "archive_resource" ("level") VALUES (%s)', True),
    ("insert into archive_metadata (resource_id, type, value) values (?, ?, ?)", True),
    ("INSERT OR IGNORE INTO archive_label (resource_id, name) VALUES (?, ?)", True),
    ('  UPDATE "archive_resource" SET "is_stable" = %s', True),
    ('DELETE FROM "archive_change"', True),
    ('SELECT "archive_resource"."id" FROM "archive_resource"', False),
    ('INSERT INTO "archive_dicomquery" ("id") VALUES (%s)', False),
    ('UPDATE "jobs_job" SET "state" = %s', False),
    ('INSERT INTO "django_session" ("session_key") VALUES (%s)', False),
])
def test_which_statements_write_the_index(sql, expected):
    assert writes_index(sql, index_tables()) is expected


def test_store_refused_without_writing_a_file(orthanc_config, storage_dir):
    orthanc_config(ReadOnly=True)
    with pytest.raises(ReadOnlyArchive) as caught:
        instance_store(data=make_dicom(), origin=REST)
    assert caught.value.http_status == 403
    assert not [p for p in storage_dir.rglob("*") if p.is_file()]
    assert Resource.objects.count() == 0


def test_guard_refuses_index_writes_and_allows_the_rest(orthanc_config):
    ids = instance_store(data=make_dicom(), origin=REST).ids
    orthanc_config(ReadOnly=True)
    resource = Resource.objects.get(public_id=ids.study)
    with pytest.raises(ReadOnlyArchive):
        Label.objects.create(resource=resource, name="x")
    with pytest.raises(ReadOnlyArchive):
        Resource.objects.filter(public_id=ids.study).update(is_protected=True)
    with pytest.raises(ReadOnlyArchive), connection.cursor() as cursor:
        cursor.execute("DELETE FROM archive_resource")
    assert Resource.objects.count() == 4 and not Label.objects.exists()
    # a query to a modality keeps its answers in the database: not the index, so allowed
    DicomQuery.objects.create(id="q1", modality="m", level="Study", local_aet="ORTHANC")
    assert DicomQuery.objects.filter(id="q1").exists()
