from __future__ import annotations

import datetime as dt

import pytest

from archive import services
from archive.errors import UnknownResource
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment, Change, ChangeType, Metadata, Resource
from archive.storage import dicom_storage
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")


def store(**tags):
    return instance_store(data=make_dicom(**tags), origin=REST)


def test_delete_instance_keeps_series_with_other_instances():
    a = store(SOPInstanceUID="1.1")
    store(SOPInstanceUID="1.2")
    remaining = services.resource_delete(level=Level.INSTANCE, public_id=a.ids.instance)
    assert remaining == {"ID": a.ids.series, "Path": f"/series/{a.ids.series}", "Type": "Series"}
    assert Resource.objects.filter(level=3).count() == 1


def test_delete_last_instance_removes_empty_ancestors_and_files(storage_dir):
    a = store()
    assert services.resource_delete(level=Level.INSTANCE, public_id=a.ids.instance) is None
    assert Resource.objects.count() == 0
    assert Metadata.objects.count() == 0 and Attachment.objects.count() == 0
    assert dicom_storage().all_uuids() == set()


def test_delete_study_keeps_patient_with_other_study():
    a = store(StudyInstanceUID="5.1")
    store(StudyInstanceUID="5.2", SeriesInstanceUID="5.2.1")
    remaining = services.resource_delete(level=Level.STUDY, public_id=a.ids.study)
    assert remaining["Type"] == "Patient"
    assert Resource.objects.filter(level=1).count() == 1


def test_delete_unknown_raises():
    with pytest.raises(UnknownResource):
        services.resource_delete(level=Level.PATIENT, public_id="nope")


def test_delete_with_wrong_level_raises():
    a = store()
    with pytest.raises(UnknownResource):
        services.resource_delete(level=Level.STUDY, public_id=a.ids.patient)


def test_resources_become_stable_after_stable_age():
    a = store()
    assert services.resources_stabilize(stable_age=60) == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    assert services.resources_stabilize(stable_age=60, now=later) == 3
    assert Resource.objects.get(public_id=a.ids.series).is_stable
    kinds = list(Change.objects.filter(change_type__in=[14, 15, 16]).order_by("seq")
                 .values_list("change_type", flat=True))
    assert kinds == [ChangeType.StableSeries, ChangeType.StableStudy, ChangeType.StablePatient]


def test_a_new_instance_makes_its_ancestors_unstable_again():
    a = store(SOPInstanceUID="1.1")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    services.resources_stabilize(stable_age=60, now=later)
    store(SOPInstanceUID="1.2")
    assert not Resource.objects.get(public_id=a.ids.study).is_stable


def test_completed_series_is_logged_once_when_all_expected_instances_arrived():
    for i in (1, 2):
        store(SOPInstanceUID=f"9.{i}", InstanceNumber=str(i), ImagesInAcquisition="2", NumberOfTemporalPositions="1")
    assert Change.objects.filter(change_type=ChangeType.CompletedSeries).count() == 1
