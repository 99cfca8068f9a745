"""A file that a newer one replaced stays readable for REPLACED_GRACE seconds (archive/storage.py): readers that
listed a study's files before an overwrite, a reconstruction or a new attachment revision still read them."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from archive import housekeeping, reconstruct, selectors, services
from archive import storage as storage_module
from archive.attachments import attachment_put
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment, ContentType, Resource
from archive.storage import INCOMING, REPLACED, DicomFileStorage, dicom_storage
from jobs.kinds import archive as zip_archive
from tests.dicom_factory import make_dicom

REST = Origin.rest(remote_ip="127.0.0.1")


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _retired_earlier(root, minutes: int) -> None:
    """As if every file in .replaced/ had been retired ``minutes`` earlier (its folder names the minute)."""
    for folder in sorted((root / REPLACED).iterdir()):
        folder.rename(folder.with_name(str(int(folder.name) - minutes)))


def test_a_retired_file_is_read_until_purged_after_its_grace(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("ab12-old", b"old bytes")
    storage.publish("ab12-old")
    minutes = {str(int(time.time() // 60))}
    storage.retire("ab12-old")
    minutes.add(str(int(time.time() // 60)))
    assert not (tmp_path / "ab" / "12" / "ab12-old").exists()
    retired = [p.relative_to(tmp_path / REPLACED).parts for p in (tmp_path / REPLACED).rglob("*") if p.is_file()]
    assert len(retired) == 1 and retired[0][0] in minutes and retired[0][1] == "ab12-old"   # its minute's folder
    assert storage.read("ab12-old") == b"old bytes"
    with storage.stream("ab12-old") as f:
        assert f.read() == b"old bytes"
    assert storage.all_uuids() == set()          # not an attachment of the archive any more
    assert storage.purge_replaced(grace=60) == 0
    _retired_earlier(tmp_path, 2)
    assert storage.purge_replaced(grace=60) == 1
    assert list((tmp_path / REPLACED).iterdir()) == []
    with pytest.raises(FileNotFoundError):
        storage.read("ab12-old")


def test_the_grace_counts_from_the_replacement_not_from_the_write(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("cd34-old", b"x")
    storage.publish("cd34-old")
    _age(tmp_path / "cd" / "34" / "cd34-old", 3600)     # written an hour ago
    storage.retire("cd34-old")
    assert storage.purge_replaced(grace=60) == 0 and storage.read("cd34-old") == b"x"


def test_a_replaced_file_still_staged_is_retired_and_its_late_publish_does_nothing(tmp_path):
    """Two writes of one attachment: the second commits first and retires the first's file, still staged."""
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("ef56-first", b"first")
    storage.retire("ef56-first")
    storage.publish("ef56-first")
    assert storage.all_uuids() == set() and storage.staged() == []
    assert storage.read("ef56-first") == b"first"
    assert list((tmp_path / INCOMING).iterdir()) == []


def test_retiring_a_missing_file_or_without_the_folder_is_no_error(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.retire("0000-never")
    storage.stage("2222-file", b"2")
    storage.publish("2222-file")
    storage.retire("2222-file")
    shutil.rmtree(tmp_path / REPLACED)
    storage.stage("1111-file", b"1")
    storage.publish("1111-file")
    storage.retire("1111-file")
    assert storage.read("1111-file") == b"1" and storage.all_uuids() == set()


@pytest.mark.django_db
def test_a_move_that_listed_the_files_before_an_overwrite_still_sends_them(orthanc_config):
    """C-MOVE/C-GET and the store jobs look a study's files up first, then read them one by one."""
    orthanc_config(OverwriteInstances=True)
    first = make_dicom(SOPInstanceUID="1.2.3.9", InstanceNumber="1")
    instance_id = instance_store(data=first, origin=REST).ids.instance
    instance = Resource.objects.get(public_id=instance_id)
    listed = selectors.instance_dicom_files([instance])
    instance_store(data=make_dicom(SOPInstanceUID="1.2.3.9", InstanceNumber="2"), origin=REST)
    assert selectors.dicom_file_read(listed[instance.id]) == first
    assert selectors.instance_dicom_files([instance]) != listed
    assert dicom_storage().all_uuids() == set(Attachment.objects.values_list("uuid", flat=True))


@pytest.mark.django_db
def test_a_zip_archive_listed_before_a_reconstruction_is_read_whole():
    data = make_dicom()
    instance_id = instance_store(data=data, origin=REST).ids.instance
    entries = zip_archive.archive_entries(resources=[(Level.INSTANCE, instance_id)])
    reconstruct.resource_reconstruct(resource=Resource.objects.get(public_id=instance_id), files=True)
    assert Attachment.objects.get(content_type=ContentType.Dicom).uuid != entries[0].uuid
    assert zip_archive._read(entries[0]) == data


@pytest.mark.django_db
def test_an_attachment_revision_keeps_the_previous_file_readable():
    instance_id = instance_store(data=make_dicom(), origin=REST).ids.instance
    old = attachment_put(public_id=instance_id, name="1025", data=b"first", if_match=None).uuid
    attachment_put(public_id=instance_id, name="1025", data=b"second", if_match=None)
    assert dicom_storage().read(old) == b"first"
    assert old not in dicom_storage().all_uuids()


@pytest.mark.django_db
def test_a_deleted_resource_frees_its_files_at_once(storage_dir):
    """Only replacements wait: a deletion (or recycling) is meant to free the disk."""
    instance_id = instance_store(data=make_dicom(), origin=REST).ids.instance
    uuid = Attachment.objects.get().uuid
    services.resource_delete(level=Level.INSTANCE, public_id=instance_id)
    with pytest.raises(FileNotFoundError):
        dicom_storage().read(uuid)
    assert list((storage_dir / REPLACED).iterdir()) == []


@pytest.mark.django_db
def test_the_housekeeper_purges_retired_files_once_their_grace_is_over(orthanc_config, storage_dir, monkeypatch):
    orthanc_config(OverwriteInstances=True)
    data = make_dicom(SOPInstanceUID="1.2.3.7")
    instance_store(data=data, origin=REST)
    old = Attachment.objects.get().uuid
    instance_store(data=data, origin=REST)
    monkeypatch.setattr(housekeeping, "_last_purge", [-1e9])
    housekeeping.housekeeper_tick()
    assert dicom_storage().read(old) == data          # within the grace
    _retired_earlier(storage_dir, 16)
    monkeypatch.setattr(housekeeping, "_last_purge", [-1e9])
    housekeeping.housekeeper_tick()
    assert list((storage_dir / REPLACED).iterdir()) == []
    assert dicom_storage().all_uuids() == {Attachment.objects.get().uuid}


def test_without_a_grace_a_replaced_file_goes_at_once_as_in_orthanc(tmp_path, monkeypatch):
    """STORAGE_REPLACED_GRACE=0."""
    monkeypatch.setattr(storage_module, "REPLACED_GRACE", 0.0)
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("3333-old", b"old")
    storage.publish("3333-old")
    storage.retire("3333-old")
    with pytest.raises(FileNotFoundError):
        storage.read("3333-old")
    assert list((tmp_path / REPLACED).iterdir()) == []
