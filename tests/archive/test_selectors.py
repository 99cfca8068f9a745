from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

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


def test_identifier_lookup_matches_normalised_values(client):
    """As Orthanc's LookupIdentifierExact: both sides normalised; a fold that only looks normalised ("ı" folds to
    the ASCII "I", which Orthanc drops) is checked again on the stored value."""
    from archive.models import IdentifierAlias

    ids = {}
    for patient in ("abc_1", "ABC 1", "ı", "Plain"):
        data = make_dicom(PatientID=patient, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
                          SOPInstanceUID=generate_uid(), SpecificCharacterSet="ISO_IR 192")
        ids[patient] = client.generic("POST", "/instances", data, content_type="application/dicom").json()["ParentPatient"]

    def found(value):
        return [r.public_id for r in selectors.identifier_lookup(level=Level.PATIENT, tag=0x00100020, value=value)]

    assert sorted(found("ABC_1")) == sorted(found("abc 1")) == sorted([ids["abc_1"], ids["ABC 1"]])
    assert found("plain") == [ids["Plain"]]
    assert found("I") == [] and found("ı") == found("") == [ids["ı"]]
    # rows only for the values whose normalised form is not their fold
    assert sorted(IdentifierAlias.objects.values_list("value", flat=True)) == ["", "ABC 1"]


def test_identifier_aliases_go_with_their_resource(client):
    from archive.models import IdentifierAlias

    answer = client.generic("POST", "/instances", make_dicom(PatientID="with_under"), content_type="application/dicom")
    assert IdentifierAlias.objects.filter(level=0, value="WITH UNDER").count() == 1
    assert client.delete(f"/patients/{answer.json()['ParentPatient']}").status_code == 200
    assert not IdentifierAlias.objects.exists()


def test_identifier_aliases_of_stored_resources_are_filled_by_the_migration(client):
    """The migration computes the rows of an archive stored before it."""
    import importlib

    from django.apps import apps

    from archive.models import IdentifierAlias

    client.generic("POST", "/instances", make_dicom(PatientID="mig_1", AccessionNumber=" acc"),
                   content_type="application/dicom")
    expected = sorted(IdentifierAlias.objects.values_list("level", "tag", "value"))
    assert expected == [(0, 0x00100020, "MIG 1"), (1, 0x00080050, "ACC")]
    IdentifierAlias.objects.all().delete()
    importlib.import_module("archive.migrations.0013_identifier_alias")._aliases_fill(apps, None)
    assert sorted(IdentifierAlias.objects.values_list("level", "tag", "value")) == expected


def test_identifier_aliases_are_written_again_by_reconstruct(client):
    from archive.models import IdentifierAlias

    patient = client.generic("POST", "/instances", make_dicom(PatientID="rc_1"),
                             content_type="application/dicom").json()["ParentPatient"]
    IdentifierAlias.objects.all().delete()
    assert client.post(f"/patients/{patient}/reconstruct", "{}", content_type="application/json").status_code == 200
    assert list(IdentifierAlias.objects.values_list("level", "value")) == [(0, "RC 1")]
    found = selectors.identifier_lookup(level=Level.PATIENT, tag=0x00100020, value="rc 1")
    assert [r.public_id for r in found] == [patient]
