from __future__ import annotations

import pytest

from archive import selectors
from archive.errors import UnknownResource
from archive.levels import Level
from archive.models import Resource
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


def test_resource_get_reads_what_the_orm_reads(client):
    """resource_get runs plain SQL: the same fields, types and parent as the ORM's select_related lookup."""
    public_id = client.generic("POST", "/instances", make_dicom(), content_type="application/dicom").json()["ID"]
    got = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
    orm = Resource.objects.select_related("parent").get(public_id=public_id)
    for resource, expected in ((got, orm), (got.parent, orm.parent)):
        for field in Resource._meta.concrete_fields:
            value = getattr(resource, field.attname)
            assert value == getattr(expected, field.attname) and type(value) is type(getattr(expected, field.attname))
    assert got.last_update.tzinfo is not None and isinstance(got.main_tags, dict)
    assert not got._state.adding and Resource.parent.is_cached(got)
    patient = selectors.resource_get(level=Level.PATIENT, public_id=orm.parent.parent.parent.public_id)
    assert patient.parent_id is None and patient.main_tags["PatientID"] == "P1"


def test_resource_get_checks_the_level(client):
    public_id = client.generic("POST", "/instances", make_dicom(), content_type="application/dicom").json()["ID"]
    for level in (Level.STUDY, Level.SERIES):
        with pytest.raises(UnknownResource):
            selectors.resource_get(level=level, public_id=public_id)
    with pytest.raises(UnknownResource):
        selectors.resource_get(level=Level.INSTANCE, public_id="nope")


def test_lookup_by_dicom_id_with_a_nul_finds_nothing(client):
    """No stored identifier holds a NUL (cut there at ingest); PostgreSQL refused one in the query (500)."""
    client.post("/instances", make_dicom(StudyInstanceUID="5.9"), content_type="application/dicom")
    assert [r.level for r in selectors.lookup_by_dicom_id(value="5.9")] == [1]
    assert selectors.lookup_by_dicom_id(value="5.9\x00x") == []
