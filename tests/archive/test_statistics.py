"""archive.statistics: the running totals stay equal to what the tables hold, whatever the write."""

from __future__ import annotations

import pytest

from archive import attachments, ingest, services
from archive.errors import FullStorage
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment, Resource, StatisticsCounter
from archive.statistics import (
    Totals,
    global_statistics,
    resource_statistics,
    statistics_add,
    statistics_count_tables,
    statistics_recount,
    statistics_totals,
)
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")


def store(patient: str = "P1", study: str = "1.1", series: str = "1.1.1", sop: str = "1.1.1.1", **tags):
    return instance_store(data=make_dicom(PatientID=patient, StudyInstanceUID=study, SeriesInstanceUID=series,
                                          SOPInstanceUID=sop, **tags), origin=REST)


def assert_exact() -> Totals:
    totals = statistics_totals()
    assert totals == statistics_count_tables()
    return totals


def test_ingest_counts_new_levels_and_sizes():
    store()
    store(sop="1.1.1.2")
    store(series="1.1.2", sop="1.1.2.1")
    store(patient="P2", study="2.1", series="2.1.1", sop="2.1.1.1")
    totals = assert_exact()
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (2, 2, 3, 4)
    assert totals.disk_size == sum(Attachment.objects.values_list("compressed_size", flat=True)) > 0


def test_already_stored_changes_nothing():
    store()
    before = assert_exact()
    store()
    assert assert_exact() == before


def test_compressed_storage_counts_disk_and_uncompressed_sizes(orthanc_config):
    orthanc_config(StorageCompression=True)
    store()
    totals = assert_exact()
    assert totals.disk_size != totals.uncompressed_size


def test_overwrite_replaces_the_counted_instance(orthanc_config):
    orthanc_config(OverwriteInstances=True)
    store()
    store(InstanceNumber="123456")  # same instance, a file of another size
    totals = assert_exact()
    assert totals.instances == 1 and totals.patients == 1


@pytest.mark.parametrize("level", [Level.INSTANCE, Level.SERIES, Level.STUDY, Level.PATIENT])
def test_delete_subtracts_the_subtree_and_emptied_ancestors(level):
    first = store()
    store(sop="1.1.1.2")
    store(patient="P2", study="2.1", series="2.1.1", sop="2.1.1.1")
    services.resource_delete(level=level, public_id=getattr(first.ids, level.name.lower()))
    assert_exact()


def test_deleting_the_last_instance_removes_its_ancestors_from_the_counts():
    only = store()
    services.resource_delete(level=Level.INSTANCE, public_id=only.ids.instance)
    assert assert_exact() == Totals()


def test_recycling_keeps_the_counts_exact(orthanc_config):
    orthanc_config(MaximumPatientCount=2)
    for i in range(4):
        store(patient=f"P{i}", study=f"{i}.1", series=f"{i}.1.1", sop=f"{i}.1.1.1")
    totals = assert_exact()
    assert totals.patients == 2


def test_storage_size_limit_recycles_by_the_running_total(orthanc_config):
    orthanc_config(MaximumStorageSize=1)  # 1 MB: about seventeen of these 60 kB files
    for i in range(20):
        store(patient=f"P{i}", study=f"{i}.1", series=f"{i}.1.1", sop=f"{i}.1.1.1", ImageComments="x" * 60_000)
    totals = assert_exact()
    assert 1024 * 1024 - 61_000 < totals.disk_size <= 1024 * 1024
    assert totals.patients == 17


def test_storage_size_limit_is_decided_by_the_totals(orthanc_config):
    store()
    statistics_add(Totals(disk_size=1000 * 1024 * 1024))  # the totals alone say the storage is full
    orthanc_config(MaximumStorageSize=1000, MaximumStorageMode="Reject")
    with pytest.raises(FullStorage):
        store(patient="P2", study="2.1", series="2.1.1", sop="2.1.1.1")


def test_a_failed_ingest_leaves_the_counts_alone(monkeypatch):
    store()
    before = assert_exact()

    def fail(*args, **kwargs):
        raise RuntimeError("index failure after the counters moved")

    monkeypatch.setattr(ingest.services, "series_check_completed", fail)
    with pytest.raises(RuntimeError):
        store(patient="P2", study="2.1", series="2.1.1", sop="2.1.1.1", ImagesInAcquisition="1",
              NumberOfTemporalPositions="1")
    assert assert_exact() == before


def test_user_attachments_are_counted_on_put_replace_and_delete(orthanc_config):
    orthanc_config(UserContentType={"sample": 1024})
    ids = store().ids
    attachments.attachment_put(public_id=ids.study, name="sample", data=b"x" * 100, if_match=None)
    assert assert_exact().disk_size == Attachment.objects.get(content_type=1).compressed_size + 100
    attachments.attachment_put(public_id=ids.study, name="sample", data=b"y" * 7, if_match=None)
    assert_exact()
    attachments.attachment_set_compression(public_id=ids.study, name="sample", compressed=True)
    assert_exact()
    attachments.attachment_delete(public_id=ids.study, name="sample", if_match=None)
    assert_exact()
    attachments.attachment_put(public_id=ids.study, name="sample", data=b"z" * 10, if_match=None)
    services.resource_delete(level=Level.PATIENT, public_id=ids.patient)
    assert assert_exact() == Totals()


def test_totals_add_up_every_shard():
    StatisticsCounter.objects.create(shard=5, patients=2, instances=7, disk_size=10)
    statistics_add(Totals(patients=1, instances=1, disk_size=5))
    totals = statistics_totals()
    assert (totals.patients, totals.instances, totals.disk_size) == (3, 8, 15)


def test_recount_repairs_the_totals():
    store()
    StatisticsCounter.objects.update(instances=99)
    statistics_recount()
    assert assert_exact().instances == 1
    assert StatisticsCounter.objects.count() == 1


def test_global_statistics_answer(django_assert_num_queries):
    store()
    store(sop="1.1.1.2")
    disk = sum(Attachment.objects.values_list("compressed_size", flat=True))
    with django_assert_num_queries(1):
        answer = global_statistics()
    assert answer == {"CountInstances": 2, "CountPatients": 1, "CountSeries": 1, "CountStudies": 1,
                      "TotalDiskSize": str(disk), "TotalDiskSizeMB": 0, "TotalUncompressedSize": str(disk),
                      "TotalUncompressedSizeMB": 0}


def test_resource_statistics_answer(orthanc_config):
    orthanc_config(UserContentType={"sample": 1024})
    ids = store().ids
    store(sop="1.1.1.2")
    store(series="1.1.2", sop="1.1.2.1")
    attachments.attachment_put(public_id=ids.series, name="sample", data=b"x" * 100, if_match=None)
    dicom = sum(Attachment.objects.filter(content_type=1).values_list("compressed_size", flat=True))
    patient = Resource.objects.get(public_id=ids.patient)
    answer = resource_statistics(resource=patient)
    assert answer == {
        "CountStudies": 1, "CountSeries": 2, "CountInstances": 3,
        "DicomDiskSize": str(dicom), "DicomDiskSizeMB": 0, "DicomUncompressedSize": str(dicom),
        "DicomUncompressedSizeMB": 0, "DiskSize": str(dicom + 100), "DiskSizeMB": 0,
        "UncompressedSize": str(dicom + 100), "UncompressedSizeMB": 0}
    series = resource_statistics(resource=Resource.objects.get(public_id=ids.series))
    assert series["CountInstances"] == 2 and series["DiskSize"] == str(
        sum(Attachment.objects.filter(resource__parent__public_id=ids.series).values_list("compressed_size", flat=True))
        + 100)
