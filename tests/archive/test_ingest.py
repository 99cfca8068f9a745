from __future__ import annotations

import pytest

from archive import ingest
from archive.errors import BadFileFormat, FullStorage, InexistentTag
from archive.ingest import Origin, StoreStatus, instance_store
from archive.models import Attachment, Change, ChangeType, ContentType, Metadata, MetadataType, Resource
from archive.statistics import statistics_totals
from archive.storage import dicom_storage, uncompress
from tests.dicom_factory import make_dicom
from tests.samples import sample_path

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1", username="alice")


def test_store_creates_the_four_levels_with_orthanc_ids():
    result = instance_store(data=make_dicom(PatientID="5Yp0E", StudyInstanceUID="1.2", SeriesInstanceUID="1.2.3",
                                           SOPInstanceUID="1.2.3.4"), origin=REST)
    assert result.status is StoreStatus.SUCCESS
    assert sorted(Resource.objects.values_list("level", flat=True)) == [0, 1, 2, 3]
    assert Resource.objects.get(level=3).public_id == result.ids.instance
    assert Resource.objects.get(level=0).main_tags["PatientID"] == "5Yp0E"


def test_second_store_is_already_stored_and_leaves_no_file(storage_dir):
    data = make_dicom()
    instance_store(data=data, origin=REST)
    again = instance_store(data=data, origin=REST)
    assert again.status is StoreStatus.ALREADY_STORED
    assert Attachment.objects.count() == 1
    assert dicom_storage().all_uuids() == set(Attachment.objects.values_list("uuid", flat=True))
    assert dicom_storage().staged() == []


def test_overwrite_replaces_the_file(orthanc_config):
    orthanc_config(OverwriteInstances=True)
    data = make_dicom(SOPInstanceUID="1.2.3.9")
    instance_store(data=data, origin=REST)
    first = Attachment.objects.get().uuid
    assert instance_store(data=data, origin=REST).status is StoreStatus.SUCCESS
    assert Attachment.objects.get().uuid != first
    assert dicom_storage().all_uuids() == {Attachment.objects.get().uuid}


def test_instance_metadata_as_orthanc_records_it():
    result = instance_store(data=make_dicom(InstanceNumber="7"), origin=REST)
    instance = Resource.objects.get(public_id=result.ids.instance)
    md = {MetadataType(t).name: v for t, v in Metadata.objects.filter(resource=instance).values_list("type", "value")}
    assert md["IndexInSeries"] == "7"
    assert md["Origin"] == "RestApi"
    assert md["RemoteIP"] == "127.0.0.1"
    assert md["HttpUsername"] == "alice"
    assert md["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert md["SopClassUid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert int(md["PixelDataOffset"]) > 0
    assert "MainDicomTagsSignature" in md
    assert len(md["ReceptionDate"]) == 15


def test_changes_are_logged_instance_first():
    instance_store(data=make_dicom(), origin=REST)
    assert list(Change.objects.order_by("seq").values_list("change_type", flat=True)) == [
        ChangeType.NewInstance, ChangeType.NewSeries, ChangeType.NewStudy, ChangeType.NewPatient]


def test_not_dicom_is_refused_with_orthanc_message():
    with pytest.raises(BadFileFormat) as err:
        instance_store(data=b"not a dicom file", origin=REST)
    assert err.value.details == "Cannot parse an invalid DICOM file (size: 16 bytes)"
    assert Resource.objects.count() == 0


def test_truncated_file_is_refused_and_nothing_is_stored(storage_dir):
    data = make_dicom()
    with pytest.raises(BadFileFormat):
        instance_store(data=data[:-20], origin=REST)
    assert Resource.objects.count() == 0
    assert dicom_storage().all_uuids() == set()
    assert dicom_storage().staged() == []


def test_absent_sop_instance_uid_is_inexistent_tag_as_in_orthanc():
    with pytest.raises(InexistentTag):
        instance_store(data=make_dicom(SOPInstanceUID=None), origin=REST)
    assert Resource.objects.count() == 0


def test_empty_study_instance_uid_is_bad_file_format_as_in_orthanc():
    with pytest.raises(BadFileFormat, match="missing StudyInstanceUID"):
        instance_store(data=make_dicom(StudyInstanceUID=""), origin=REST)
    assert Resource.objects.count() == 0


def test_failed_indexing_leaves_no_file(monkeypatch, storage_dir):
    def explode(*args, **kwargs):
        raise RuntimeError("index failure")

    monkeypatch.setattr(ingest, "_index_instance", explode)
    with pytest.raises(RuntimeError):
        instance_store(data=make_dicom(), origin=REST)
    assert Resource.objects.count() == 0
    assert dicom_storage().all_uuids() == set()
    assert dicom_storage().staged() == []


def test_sole_writer_stores_the_same_instance_and_file(storage_dir):
    """sole_writer: the commit waits for the file instead of the transaction's start; same outcome."""
    data = make_dicom()
    result = instance_store(data=data, origin=REST, sole_writer=True)
    assert result.status is StoreStatus.SUCCESS
    attachment = Attachment.objects.get(resource__public_id=result.ids.instance)
    assert dicom_storage().read(attachment.uuid) == data
    assert dicom_storage().staged() == []
    assert instance_store(data=data, origin=REST, sole_writer=True).status is StoreStatus.ALREADY_STORED
    assert dicom_storage().all_uuids() == {attachment.uuid}


@pytest.mark.parametrize("failing", ["stage", "index"])
def test_sole_writer_failure_leaves_nothing(monkeypatch, storage_dir, failing):
    """A stage that fails while the index statements run, or an index that fails while the stage runs: the
    transaction rolls back and the file is removed once its stage is over (none left staged)."""
    def explode(*args, **kwargs):
        raise RuntimeError(f"{failing} failure")

    monkeypatch.setattr(ingest, "_stage" if failing == "stage" else "_index_instance", explode)
    with pytest.raises(RuntimeError):
        instance_store(data=make_dicom(), origin=REST, sole_writer=True)
    assert Resource.objects.count() == 0
    assert dicom_storage().all_uuids() == set()
    assert dicom_storage().staged() == []


def test_patient_count_limit_recycles_the_oldest_unprotected(orthanc_config):
    orthanc_config(MaximumPatientCount=2)
    first = instance_store(data=make_dicom(PatientID="A", StudyInstanceUID="1.1"), origin=REST)
    second = instance_store(data=make_dicom(PatientID="B", StudyInstanceUID="1.2"), origin=REST)
    Resource.objects.filter(public_id=first.ids.patient).update(is_protected=True)
    instance_store(data=make_dicom(PatientID="C", StudyInstanceUID="1.3"), origin=REST)
    patients = set(Resource.objects.filter(level=0).values_list("public_id", flat=True))
    assert first.ids.patient in patients
    assert second.ids.patient not in patients
    assert len(patients) == 2


def test_reject_mode_refuses_when_full(orthanc_config):
    orthanc_config(MaximumPatientCount=1, MaximumStorageMode="Reject")
    instance_store(data=make_dicom(PatientID="A"), origin=REST)
    with pytest.raises(FullStorage):
        instance_store(data=make_dicom(PatientID="B", StudyInstanceUID="9.9"), origin=REST)
    assert Resource.objects.filter(level=0).count() == 1


def test_compressed_storage_round_trips(orthanc_config):
    from archive.selectors import instance_dicom

    orthanc_config(StorageCompression=True)
    data = make_dicom()
    result = instance_store(data=data, origin=REST)
    att = Attachment.objects.get(content_type=ContentType.Dicom)
    assert att.compression == 2 and att.uncompressed_size == len(data)
    assert instance_dicom(instance=Resource.objects.get(public_id=result.ids.instance)) == data
    # as Orthanc: the file up to its pixel data beside it, so that tags are read without inflating it all
    header = Attachment.objects.get(content_type=ContentType.DicomUntilPixelData)
    offset = int(Metadata.objects.get(type=MetadataType.PixelDataOffset).value)
    assert header.compression == 2 and header.uncompressed_size == offset
    assert uncompress(dicom_storage().read(header.uuid)) == data[:offset]
    assert statistics_totals().disk_size == att.compressed_size + header.compressed_size


def test_compressed_storage_without_pixel_data_has_no_header_attachment(orthanc_config):
    orthanc_config(StorageCompression=True)
    instance_store(data=make_dicom(PixelData=None), origin=REST)
    assert list(Attachment.objects.values_list("content_type", flat=True)) == [ContentType.Dicom]


@pytest.mark.parametrize(("keyword", "dtype", "tag"), [("FloatPixelData", "<f4", "7fe0,0008"),
                                                       ("DoubleFloatPixelData", "<f8", "7fe0,0009")])
def test_float_pixel_data_has_no_pixel_data_offset_nor_header(orthanc_config, keyword, dtype, tag):
    """Orthanc 1.10.1 (compared): PixelDataOffset and the "dicom-until-pixel-data" header are about PixelData
    (7FE0,0010) only. /tags of a file of float pixels shows their element, and no PixelData (the header
    attachment made ours inject an empty PixelData). Its value (Null on 1.10.1) follows our OF/OD rule."""
    import numpy as np
    from django.test import Client

    orthanc_config(StorageCompression=True)
    data = make_dicom(PixelData=None, BitsAllocated=32, BitsStored=None, HighBit=None, PixelRepresentation=None,
                      **{keyword: np.arange(64, dtype=dtype).tobytes()})
    result = instance_store(data=data, origin=REST)
    assert list(Attachment.objects.values_list("content_type", flat=True)) == [ContentType.Dicom]
    assert not Metadata.objects.filter(type__in=(MetadataType.PixelDataOffset, MetadataType.PixelDataVR)).exists()
    tags = Client().get(f"/instances/{result.ids.instance}/tags").json()
    assert list(tags)[-1] == tag and tags[tag]["Name"] == keyword and "7fe0,0010" not in tags


def test_failed_compressed_store_leaves_no_file(monkeypatch, orthanc_config, storage_dir):
    orthanc_config(StorageCompression=True)
    monkeypatch.setattr(ingest, "_index_instance", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        instance_store(data=make_dicom(), origin=REST)
    assert dicom_storage().all_uuids() == set() and dicom_storage().staged() == []


@pytest.mark.parametrize(("number", "metadata", "index"), [
    ("0008", "0008", 8),      # the text, as Orthanc keeps it
    ("+3", "+3", 3),
    (None, None, None),       # no InstanceNumber nor ImageIndex: no metadata, null in the resource JSON
])
def test_index_in_series_is_the_instance_number_text(number, metadata, index):
    result = instance_store(data=make_dicom(InstanceNumber=number), origin=REST)
    instance = Resource.objects.get(public_id=result.ids.instance)
    stored = Metadata.objects.filter(resource=instance, type=MetadataType.IndexInSeries).values_list("value", flat=True)
    assert list(stored) == ([] if metadata is None else [metadata])
    assert instance.index_in_series == index


def test_index_in_series_falls_back_to_image_index():
    result = instance_store(data=make_dicom(InstanceNumber=None, ImageIndex=12), origin=REST)
    assert Resource.objects.get(public_id=result.ids.instance).index_in_series == 12


def _expected_of(data: bytes) -> int | None:
    result = instance_store(data=data, origin=REST)
    return Resource.objects.get(public_id=result.ids.series).expected_instances


# What real Orthanc 1.10.1 answered in the series' ExpectedNumberOfInstances for the same files.
@pytest.mark.parametrize(("tags", "expected"), [
    ({"NumberOfSlices": 4, "NumberOfTimeSlices": 3}, 12),           # cardio-PET: the product
    ({"NumberOfSlices": 448}, None),                                # NumberOfSlices alone: unknown
    ({"CardiacNumberOfImages": "12"}, 12),
    ({"CardiacNumberOfImages": "+6"}, 6),
    ({"ImagesInAcquisition": "5", "CardiacNumberOfImages": "7"}, 7),  # a rule needs both of its tags
    ({"ImagesInAcquisition": "0", "NumberOfTemporalPositions": "2", "CardiacNumberOfImages": "7"}, None),
    ({"NumberOfSlices": 4, "NumberOfTimeSlices": 0, "CardiacNumberOfImages": "7"}, None),
])
def test_expected_number_of_instances_follows_orthanc_rules(tags, expected):
    assert _expected_of(make_dicom(**tags)) == expected


def test_expected_number_of_instances_is_unknown_on_a_value_with_a_leading_space():
    # boost::lexical_cast refuses " 5": Orthanc gives up, without falling back to CardiacNumberOfImages
    data = make_dicom(ImagesInAcquisition="5", NumberOfTemporalPositions="2", CardiacNumberOfImages="7")
    patched = data.replace(b"\x20\x00\x02\x10IS\x02\x005 ", b"\x20\x00\x02\x10IS\x02\x00 5")
    assert patched != data
    assert _expected_of(patched) is None


def test_whole_body_pet_series_has_no_expected_number():
    # NumberOfSlices 448 without NumberOfTimeSlices: Orthanc answers null and Status "Unknown"
    data = sample_path("2020-11-16-SalimKanounAnonymization.dcm").read_bytes()
    result = instance_store(data=data, origin=REST)
    series = Resource.objects.get(public_id=result.ids.series)
    assert series.main_tags["NumberOfSlices"] == "448"
    assert series.expected_instances is None
    assert not Metadata.objects.filter(resource=series, type=MetadataType.ExpectedNumberOfInstances).exists()


def test_a_nul_inside_a_main_tag_value_is_stored_on_every_backend():
    """PostgreSQL text refuses NUL: a value with one inside (a writer's bug seen in the wild) is cut there, as
    DCMTK reads a string, instead of failing the store on PostgreSQL alone."""
    result = instance_store(data=make_dicom(PatientID="P\x001", PatientName="DOE\x00JUNK",
                                           StudyDescription="HEAD\x00"), origin=REST)
    assert result.status is StoreStatus.SUCCESS
    assert Resource.objects.get(level=0).main_tags["PatientName"] == "DOE"
    assert Resource.objects.get(level=1).main_tags["StudyDescription"] == "HEAD"


def _index_state() -> dict:
    """What an overwrite leaves in the index, without row ids, times and file UUIDs (new each store)."""
    from archive.models import Label

    by_id = dict(Resource.objects.values_list("id", "public_id"))
    return {
        "resources": sorted(Resource.objects.values_list("level", "public_id", "main_tags", "is_stable")),
        "attachments": sorted((by_id[r], t, s, m) for r, t, s, m in Attachment.objects.values_list(
            "resource_id", "content_type", "uncompressed_size", "uncompressed_md5")),
        "metadata": sorted((by_id[r], t, v) for r, t, v in Metadata.objects.exclude(
            type=MetadataType.ReceptionDate).values_list("resource_id", "type", "value")),
        "labels": sorted((by_id[r], n) for r, n in Label.objects.values_list("resource_id", "name")),
        "changes": list(Change.objects.order_by("seq").values_list("change_type", "level", "public_id")),
        "statistics": statistics_totals(),
    }


@pytest.mark.parametrize("siblings", [0, 2])
def test_overwrite_leaves_the_index_as_a_deletion_then_a_store_would(orthanc_config, monkeypatch, siblings):
    """The overwrite of an instance whose series keeps others runs a few plain statements
    (IndexWriter.delete_instance_with_siblings), not services' deletion: both must leave the same index (the
    old instance's changes, metadata, labels and attachments gone, the statistics counting one instance)."""
    from archive.index_writes import IndexWriter
    from archive.labels import label_add
    from archive.levels import Level
    from archive.statistics import statistics_recount

    orthanc_config(OverwriteInstances=True)
    states = []
    for plain in (True, False):
        Resource.objects.all().delete()
        Change.objects.all().delete()
        statistics_recount()
        if not plain:
            monkeypatch.setattr(IndexWriter, "delete_instance_with_siblings", lambda self, **kwargs: None)
        for k in range(siblings):
            instance_store(data=make_dicom(SOPInstanceUID=f"1.2.3.5.{k}", InstanceNumber=str(k + 2)), origin=REST)
        first = instance_store(data=make_dicom(SOPInstanceUID="1.2.3.5.9", ImageComments="first"), origin=REST)
        label_add(level=Level.INSTANCE, public_id=first.ids.instance, name="old")
        Metadata.objects.create(resource=Resource.objects.get(public_id=first.ids.instance), type=1024, value="x")
        again = instance_store(data=make_dicom(SOPInstanceUID="1.2.3.5.9", ImageComments="second"), origin=REST)
        assert again.status is StoreStatus.SUCCESS
        assert Attachment.objects.filter(resource__public_id=first.ids.instance).count() == 1
        states.append(_index_state())
    assert states[0] == states[1]
    assert states[0]["statistics"].instances == siblings + 1 and states[0]["labels"] == []
