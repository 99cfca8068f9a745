"""archive.labels: Orthanc's label rule, idempotent add/remove, level checks, /tools/labels."""

from __future__ import annotations

import pytest

from archive import labels
from archive.errors import ParameterOutOfRange, UnknownResource
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Change, Label
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")


@pytest.fixture
def ids():
    return instance_store(data=make_dicom(), origin=REST).ids


@pytest.mark.parametrize("name", ["a", "Z9", "with_underscore", "with-dash", "x" * 64])
def test_valid_labels(name):
    assert labels.label_validate(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "with space", "dot.ted", "é", "slash/"])
def test_invalid_labels_are_parameter_out_of_range_with_orthancs_message(name):
    with pytest.raises(ParameterOutOfRange) as info:
        labels.label_validate(name)
    assert info.value.details == ("A label must be a non-empty, alphanumeric string, possibly with '_' or '-' "
                                  f"characters, with maximum 64 characters, but got: {name}")


def test_add_is_idempotent_and_logs_no_change(ids):
    changes = Change.objects.count()
    labels.label_add(level=Level.STUDY, public_id=ids.study, name="b")
    labels.label_add(level=Level.STUDY, public_id=ids.study, name="a")
    labels.label_add(level=Level.STUDY, public_id=ids.study, name="b")
    assert labels.labels_get(level=Level.STUDY, public_id=ids.study) == ["a", "b"]
    assert Change.objects.count() == changes


def test_remove_is_idempotent(ids):
    labels.label_add(level=Level.SERIES, public_id=ids.series, name="a")
    labels.label_remove(level=Level.SERIES, public_id=ids.series, name="a")
    labels.label_remove(level=Level.SERIES, public_id=ids.series, name="a")
    assert Label.objects.count() == 0


def test_test_label(ids):
    labels.label_add(level=Level.INSTANCE, public_id=ids.instance, name="seen")
    assert labels.label_test(level=Level.INSTANCE, public_id=ids.instance, name="seen")
    assert not labels.label_test(level=Level.INSTANCE, public_id=ids.instance, name="other")
    assert not labels.label_test(level=Level.INSTANCE, public_id=ids.instance, name="not valid")


def test_labels_check_the_level(ids):
    with pytest.raises(UnknownResource):
        labels.label_add(level=Level.PATIENT, public_id=ids.study, name="a")
    with pytest.raises(UnknownResource):
        labels.labels_get(level=Level.PATIENT, public_id=ids.study)


def test_invalid_label_is_refused_before_the_resource_is_looked_up():
    with pytest.raises(ParameterOutOfRange):
        labels.label_add(level=Level.PATIENT, public_id="nope", name="bad label")


def test_labels_all_is_sorted_unique_and_case_sensitive(ids):
    labels.label_add(level=Level.PATIENT, public_id=ids.patient, name="b")
    labels.label_add(level=Level.STUDY, public_id=ids.study, name="b")
    labels.label_add(level=Level.STUDY, public_id=ids.study, name="B")
    labels.label_add(level=Level.INSTANCE, public_id=ids.instance, name="a")
    assert labels.labels_all() == ["B", "a", "b"]


def test_labels_go_with_their_resource(ids):
    from archive import services

    labels.label_add(level=Level.INSTANCE, public_id=ids.instance, name="a")
    services.resource_delete(level=Level.PATIENT, public_id=ids.patient)
    assert labels.labels_all() == []
