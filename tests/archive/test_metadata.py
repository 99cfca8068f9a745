"""archive.metadata: names and numbers, revisions, change log, Orthanc's order of checks."""

from __future__ import annotations

import hashlib

import pytest

from archive import metadata
from archive.errors import InexistentItem, ParameterOutOfRange, RevisionMismatch, UnknownResource
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Change, ChangeType, Metadata
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")


@pytest.fixture
def ids():
    return instance_store(data=make_dicom(), origin=REST).ids


@pytest.fixture(autouse=True)
def user_metadata(orthanc_config):
    orthanc_config(UserMetadata={"Sample": 1024, "Other": 2000})


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def updated_metadata_changes() -> int:
    return Change.objects.filter(change_type=ChangeType.UpdatedMetadata).count()


# Names and numbers

@pytest.mark.parametrize(("name", "number"), [("IndexInSeries", 1), ("LastUpdate", 7), ("PixelDataVR", 17),
                                              ("Sample", 1024), ("Other", 2000), ("1025", 1025), ("3", 3)])
def test_metadata_number_knows_system_user_and_numeric_names(name, number):
    assert metadata.metadata_number(name) == number


def test_unknown_metadata_name_is_inexistent_item():
    with pytest.raises(InexistentItem):
        metadata.metadata_number("Nope")


def test_metadata_name_falls_back_to_the_number():
    assert [metadata.metadata_name(n) for n in (3, 1024, 1500)] == ["RemoteAET", "Sample", "1500"]


# Reads

def test_list_instance_metadata_in_number_order(ids):
    names = metadata.metadata_list(level=Level.INSTANCE, public_id=ids.instance)
    assert names[:4] == ["IndexInSeries", "ReceptionDate", "RemoteAET", "Origin"]
    assert "MainDicomTagsSignature" in names


def test_list_numeric_gives_numbers(ids):
    numbers = metadata.metadata_list(level=Level.INSTANCE, public_id=ids.instance, numeric=True)
    assert numbers == sorted(numbers) and numbers[0] == 1 and all(isinstance(n, int) for n in numbers)


def test_list_expanded_has_sorted_keys_and_values(ids):
    values = metadata.metadata_list(level=Level.INSTANCE, public_id=ids.instance, expand=True)
    assert list(values) == sorted(values)
    assert values["Origin"] == "RestApi" and values["RemoteIP"] == "127.0.0.1"


def test_list_expanded_numeric_keys_sort_as_text(ids):
    values = metadata.metadata_list(level=Level.INSTANCE, public_id=ids.instance, numeric=True, expand=True)
    assert list(values) == sorted(values) and "10" in values and list(values).index("10") < list(values).index("2")


def test_patient_metadata_shows_last_update(ids):
    assert "LastUpdate" in metadata.metadata_list(level=Level.PATIENT, public_id=ids.patient)


def test_list_checks_the_level(ids):
    with pytest.raises(UnknownResource):
        metadata.metadata_list(level=Level.PATIENT, public_id=ids.instance)


def test_get_returns_value_and_revision(ids):
    found = metadata.metadata_get(level=Level.INSTANCE, public_id=ids.instance, name="Origin")
    assert (found.value, found.revision) == ("RestApi", 0)
    assert found.etag == f'"0-{md5("RestApi")}"'


def test_get_absent_metadata_is_none(ids):
    assert metadata.metadata_get(level=Level.INSTANCE, public_id=ids.instance, name="Sample") is None


def test_get_unknown_name_is_checked_before_the_resource():
    with pytest.raises(InexistentItem):
        metadata.metadata_get(level=Level.INSTANCE, public_id="nope", name="Nope")


# Writes

def test_set_creates_revision_zero_then_increments(ids):
    first = metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    second = metadata.metadata_set(public_id=ids.instance, name="Sample", value="b", if_match=None)
    assert (first.revision, second.revision) == (0, 1)
    assert Metadata.objects.get(type=1024).value == "b"


def test_set_logs_updated_metadata(ids):
    metadata.metadata_set(public_id=ids.study, name="Sample", value="a", if_match=None)
    change = Change.objects.filter(change_type=ChangeType.UpdatedMetadata).get()
    assert (change.level, change.public_id) == (1, ids.study)


def test_set_system_metadata_is_forbidden(ids):
    with pytest.raises(metadata.SystemMetadataReadOnly):
        metadata.metadata_set(public_id=ids.instance, name="IndexInSeries", value="9", if_match=None)
    assert updated_metadata_changes() == 0


def test_set_numbers_above_user_range_are_forbidden(ids):
    with pytest.raises(metadata.SystemMetadataReadOnly):
        metadata.metadata_set(public_id=ids.instance, name="99999", value="x", if_match=None)


def test_set_finds_the_resource_at_any_level_as_orthanc(ids):
    metadata.metadata_set(public_id=ids.instance, name="1500", value="x", if_match=None)
    assert metadata.metadata_get(level=Level.INSTANCE, public_id=ids.instance, name="1500").value == "x"


def test_set_on_unknown_resource(ids):
    with pytest.raises(UnknownResource):
        metadata.metadata_set(public_id="nope", name="Sample", value="x", if_match=None)


def test_set_with_matching_if_match(ids):
    metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    stored = metadata.metadata_set(public_id=ids.instance, name="Sample", value="b", if_match=f'"0-{md5("a")}"')
    assert stored.revision == 1


def test_set_with_stale_if_match_is_a_revision_conflict(ids):
    metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    with pytest.raises(RevisionMismatch):
        metadata.metadata_set(public_id=ids.instance, name="Sample", value="b", if_match=f"0-{md5('other')}")
    assert Metadata.objects.get(type=1024).value == "a"


def test_if_match_is_ignored_by_a_first_write(ids):
    stored = metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match="7-abc")
    assert stored.revision == 0


def test_malformed_if_match_is_parameter_out_of_range(ids):
    with pytest.raises(ParameterOutOfRange, match="should contain the ETag"):
        metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match="5")


def test_check_revisions_refuses_blind_overwrite(ids, orthanc_config):
    orthanc_config(UserMetadata={"Sample": 1024}, CheckRevisions=True)
    metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    with pytest.raises(RevisionMismatch):
        metadata.metadata_set(public_id=ids.instance, name="Sample", value="b", if_match=None)


def test_delete_removes_and_logs(ids):
    metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    metadata.metadata_delete(public_id=ids.instance, name="Sample", if_match=None)
    assert not Metadata.objects.filter(type=1024).exists()
    assert updated_metadata_changes() == 2


def test_delete_absent_metadata_is_unknown_resource(ids):
    with pytest.raises(UnknownResource):
        metadata.metadata_delete(public_id=ids.instance, name="Sample", if_match=None)


def test_delete_system_metadata_is_forbidden(ids):
    with pytest.raises(metadata.SystemMetadataReadOnly):
        metadata.metadata_delete(public_id=ids.instance, name="Origin", if_match=None)


def test_delete_with_check_revisions_needs_if_match(ids, orthanc_config):
    orthanc_config(UserMetadata={"Sample": 1024}, CheckRevisions=True)
    metadata.metadata_set(public_id=ids.instance, name="Sample", value="a", if_match=None)
    with pytest.raises(RevisionMismatch, match='"If-Match" is missing'):
        metadata.metadata_delete(public_id=ids.instance, name="Sample", if_match=None)
    metadata.metadata_delete(public_id=ids.instance, name="Sample", if_match=f"0-{md5('a')}")
    assert not Metadata.objects.filter(type=1024).exists()


@pytest.mark.parametrize(("header", "parsed"), [('"3-abc"', (3, "abc")), (" 3-abc ", (3, "abc")),
                                                ("0-", (0, "")), ("12-a-b", (12, "a-b"))])
def test_etag_parse_reads_orthanc_etags(header, parsed):
    assert metadata.etag_parse(header, header="If-Match") == parsed


@pytest.mark.parametrize("header", ["", "3", "*", "x-y", "-1-abc"])
def test_etag_parse_refuses_other_values(header):
    with pytest.raises(ParameterOutOfRange):
        metadata.etag_parse(header, header="If-Match")
