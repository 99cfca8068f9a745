"""archive.attachments: user attachments, the dicom attachment, revisions, compression, storage."""

from __future__ import annotations

import hashlib

import pytest

from archive import attachments
from archive.errors import ArchiveError, BadRange, InexistentItem, RevisionMismatch, UnknownResource
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment, Change, ChangeType, ContentType
from archive.storage import compress, dicom_storage
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")


@pytest.fixture(autouse=True)
def user_types(orthanc_config):
    orthanc_config(UserContentType={"sample": 1024, "report": [1025, "application/pdf"]})


DATA = make_dicom(SOPInstanceUID="1.2.3.4.1.1.1")


@pytest.fixture
def ids():
    return instance_store(data=DATA, origin=REST).ids


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(public_id: str, data: bytes, name: str = "sample", if_match: str | None = None):
    return attachments.attachment_put(public_id=public_id, name=name, data=data, if_match=if_match)


def attachment_changes() -> int:
    return Change.objects.filter(change_type=ChangeType.UpdatedAttachment).count()


# Names

@pytest.mark.parametrize(("name", "number"), [("dicom", 1), ("dicom-as-json", 2), ("dicom-until-pixel-data", 3),
                                              ("sample", 1024), ("report", 1025), ("1030", 1030)])
def test_content_type_numbers(name, number):
    assert attachments.content_type_number(name) == number


def test_unknown_attachment_name_is_inexistent_item():
    with pytest.raises(InexistentItem):
        attachments.content_type_number("nope")


def test_mime_types():
    assert [attachments.mime_type(n) for n in (1, 1024, 1025)] == [
        "application/dicom", "application/octet-stream", "application/pdf"]


# Reads

def test_instance_lists_its_dicom_attachment(ids):
    assert attachments.attachments_list(level=Level.INSTANCE, public_id=ids.instance) == ["dicom"]
    assert attachments.attachments_list(level=Level.INSTANCE, public_id=ids.instance, full=True) == {"dicom": 1}


def test_list_checks_the_level(ids):
    with pytest.raises(UnknownResource):
        attachments.attachments_list(level=Level.SERIES, public_id=ids.instance)


def test_dicom_attachment_data_is_the_stored_file(ids):
    data = DATA
    att = attachments.attachment_get(public_id=ids.instance, name="dicom")
    assert attachments.attachment_data(att) == data
    assert attachments.download_name(att) == att.uuid + ".dcm"
    assert attachments.attachment_info(att) == {
        "CompressedMD5": md5(data), "CompressedSize": len(data), "ContentType": 1, "UncompressedMD5": md5(data),
        "UncompressedSize": len(data), "Uuid": att.uuid}


def test_get_absent_attachment_is_unknown_resource(ids):
    with pytest.raises(UnknownResource):
        attachments.attachment_get(public_id=ids.instance, name="sample")


def test_operations_list_as_orthanc(ids):
    att = attachments.attachment_get(public_id=ids.instance, name="dicom")
    assert attachments.attachment_operations(att) == [
        "compress", "compressed-data", "compressed-md5", "compressed-size", "data", "info", "is-compressed",
        "md5", "size", "uncompress", "verify-md5"]


def test_operations_without_md5(ids, orthanc_config):
    orthanc_config(UserContentType={"sample": 1024}, StoreMD5ForAttachments=False)
    att = put(ids.patient, b"abc")
    assert "md5" not in attachments.attachment_operations(att)
    assert "verify-md5" not in attachments.attachment_operations(att)


# Writes

def test_put_creates_a_user_attachment_on_any_level(ids, storage_dir):
    att = put(ids.study, b"hello")
    assert (att.revision, att.content_type, att.uncompressed_md5) == (0, 1024, md5(b"hello"))
    assert attachments.attachments_list(level=Level.STUDY, public_id=ids.study) == ["sample"]
    assert dicom_storage().read(att.uuid) == b"hello"
    assert attachment_changes() == 1


def test_put_replaces_and_removes_the_old_file(ids):
    first = put(ids.instance, b"one")
    second = put(ids.instance, b"two")
    assert second.revision == 1 and second.uuid != first.uuid
    assert first.uuid not in dicom_storage().all_uuids()
    assert second.uuid in dicom_storage().all_uuids()
    assert Attachment.objects.filter(content_type=1024).count() == 1


def test_put_system_attachment_is_forbidden(ids):
    with pytest.raises(attachments.SystemAttachmentReadOnly):
        put(ids.instance, b"x", name="dicom")
    with pytest.raises(attachments.SystemAttachmentReadOnly):
        put(ids.instance, b"x", name="99999")


def test_put_on_unknown_resource_leaves_no_file():
    with pytest.raises(UnknownResource):
        put("nope", b"x")
    assert dicom_storage().all_uuids() == set() and dicom_storage().staged() == []


def test_put_with_stale_if_match_keeps_the_old_attachment(ids):
    first = put(ids.instance, b"one")
    with pytest.raises(RevisionMismatch):
        put(ids.instance, b"two", if_match=f"0-{md5(b'other')}")
    assert Attachment.objects.get(content_type=1024).uuid == first.uuid
    assert dicom_storage().staged() == []


def test_put_with_matching_if_match(ids):
    put(ids.instance, b"one")
    assert put(ids.instance, b"two", if_match=f'"0-{md5(b"one")}"').revision == 1


def test_check_revisions_refuses_blind_replace(ids, orthanc_config):
    orthanc_config(UserContentType={"sample": 1024}, CheckRevisions=True)
    put(ids.instance, b"one")
    with pytest.raises(RevisionMismatch):
        put(ids.instance, b"two")


def test_storage_compression_compresses_new_attachments(ids, orthanc_config):
    orthanc_config(UserContentType={"sample": 1024}, StorageCompression=True)
    att = put(ids.instance, b"a" * 1000)
    assert att.compression == attachments.COMPRESSION_ZLIB and att.compressed_size < 1000
    assert dicom_storage().read(att.uuid) == compress(b"a" * 1000)
    assert attachments.attachment_data(att) == b"a" * 1000


def test_delete_user_attachment_removes_file_and_logs(ids):
    att = put(ids.instance, b"one")
    attachments.attachment_delete(public_id=ids.instance, name="sample", if_match=None)
    assert not Attachment.objects.filter(content_type=1024).exists()
    assert att.uuid not in dicom_storage().all_uuids()
    assert attachment_changes() == 2


def test_delete_dicom_attachment_is_forbidden(ids):
    with pytest.raises(attachments.SystemAttachmentReadOnly):
        attachments.attachment_delete(public_id=ids.instance, name="dicom", if_match=None)
    assert Attachment.objects.filter(content_type=ContentType.Dicom).exists()


def test_delete_absent_attachment_is_unknown_resource(ids):
    with pytest.raises(UnknownResource):
        attachments.attachment_delete(public_id=ids.instance, name="sample", if_match=None)


def test_delete_with_check_revisions_needs_if_match(ids, orthanc_config):
    orthanc_config(UserContentType={"sample": 1024}, CheckRevisions=True)
    put(ids.instance, b"one")
    with pytest.raises(RevisionMismatch):
        attachments.attachment_delete(public_id=ids.instance, name="sample", if_match=None)


# Compression and verification

def test_compress_then_uncompress_rewrites_the_file(ids):
    data = DATA
    before = attachments.attachment_get(public_id=ids.instance, name="dicom")
    attachments.attachment_set_compression(public_id=ids.instance, name="dicom", compressed=True)
    packed = attachments.attachment_get(public_id=ids.instance, name="dicom")
    assert packed.compression == attachments.COMPRESSION_ZLIB and packed.revision == 1
    assert packed.uuid != before.uuid and before.uuid not in dicom_storage().all_uuids()
    assert dicom_storage().read(packed.uuid) == compress(data)
    assert attachments.attachment_data(packed) == data
    attachments.attachment_set_compression(public_id=ids.instance, name="dicom", compressed=False)
    plain = attachments.attachment_get(public_id=ids.instance, name="dicom")
    assert (plain.compression, plain.revision, plain.compressed_md5) == (1, 2, md5(data))
    assert dicom_storage().read(plain.uuid) == data
    assert attachment_changes() == 0  # Orthanc logs UpdatedAttachment for user attachments only


def test_compress_twice_is_a_no_op(ids):
    attachments.attachment_set_compression(public_id=ids.instance, name="dicom", compressed=True)
    uuid = attachments.attachment_get(public_id=ids.instance, name="dicom").uuid
    attachments.attachment_set_compression(public_id=ids.instance, name="dicom", compressed=True)
    assert attachments.attachment_get(public_id=ids.instance, name="dicom").uuid == uuid


def test_compress_absent_attachment_is_unknown_resource(ids):
    with pytest.raises(UnknownResource):
        attachments.attachment_set_compression(public_id=ids.instance, name="sample", compressed=True)


def test_verify_md5_passes_on_intact_files(ids):
    assert attachments.attachment_verify_md5(public_id=ids.instance, name="dicom") is True
    attachments.attachment_set_compression(public_id=ids.instance, name="dicom", compressed=True)
    assert attachments.attachment_verify_md5(public_id=ids.instance, name="dicom") is True


def test_verify_md5_fails_on_a_damaged_file(ids):
    att = attachments.attachment_get(public_id=ids.instance, name="dicom")
    storage = dicom_storage()  # damage it through the storage API, so this runs on S3 too
    damaged = bytearray(storage.read(att.uuid))
    damaged[200:202] = b"\xff\xfe"
    storage.remove(att.uuid)
    storage.stage(att.uuid, bytes(damaged))
    storage.publish(att.uuid)
    assert attachments.attachment_verify_md5(public_id=ids.instance, name="dicom") is False


def test_verify_md5_without_attachment_is_none(ids):
    assert attachments.attachment_verify_md5(public_id=ids.instance, name="sample") is None


# Ranges (Orthanc's parser)

@pytest.mark.parametrize(("header", "part", "content_range"), [
    ("bytes=0-3", b"0123", "bytes 0-3/10"), ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-2", b"012", "bytes 0-2/10"), ("bytes=2-2", b"2", "bytes 2-2/10")])
def test_ranges_as_orthanc_reads_them(header, part, content_range):
    byte_range = attachments.ByteRange.parse(header)
    assert byte_range.extract(b"0123456789") == part
    assert byte_range.content_range(10) == content_range


@pytest.mark.parametrize("header", ["items=0-1", "bytes=0-1,3-4", "bytes=5"])
def test_malformed_ranges_are_bad_range(header):
    with pytest.raises(BadRange):
        attachments.ByteRange.parse(header)


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=0-10"])
def test_ranges_past_the_end_are_refused_not_clamped(header):
    with pytest.raises(BadRange):
        attachments.ByteRange.parse(header).extract(b"0123456789")


def test_reversed_range_is_bad_sequence_of_calls():
    with pytest.raises(ArchiveError) as info:
        attachments.ByteRange.parse("bytes=5-2")
    assert info.value.http_status == 400 and info.value.orthanc_error.code == 6
