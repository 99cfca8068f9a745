"""archive.storage_s3 against a real S3-compatible server (moto_server in its own process, over HTTP)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid as uuidlib
from pathlib import Path

import pytest
import requests
from django.core.files.storage import storages
from django.db import connection
from pydicom.data import get_testdata_file

from archive import ingest, storage_s3
from archive.ingest import Origin, instance_store
from archive.models import Attachment, ContentType, Resource, StagedFile
from archive.settings import reset_archive_settings
from archive.storage import compress, dicom_storage, uncompress
from archive.storage_s3 import NoLocalPath, S3DicomStorage
from tests.dicom_factory import make_dicom
from tests.s3server import CREDENTIALS, S3Server, s3_server

SAMPLES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm")


def _reset_storages() -> None:
    storages.__dict__.pop("backends", None)  # a cached_property
    storages._backends = None
    storages._storages = {}
    reset_archive_settings()


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> S3Server:
    with s3_server(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def bucket(s3) -> str:
    name = f"dicom-{uuidlib.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def keys(s3, bucket):
    """Every key in the bucket, as S3 lists it (not as the storage class sees it)."""
    def list_keys() -> set[str]:
        pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", ())}

    return list_keys


@pytest.fixture
def s3_dicom(s3, bucket, settings, storage_dir):
    """STORAGES["dicom"] on the S3 server, under a prefix (after conftest's filesystem storage_dir)."""
    settings.STORAGES = {**settings.STORAGES, "dicom": {"BACKEND": "archive.storage_s3.S3DicomStorage",
                                                        "OPTIONS": s3.storage_options(bucket, "orthanc")}}
    _reset_storages()
    storage = dicom_storage()
    assert isinstance(storage, S3DicomStorage)
    yield storage
    _reset_storages()


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@pytest.fixture
def s3_requests(s3_dicom):
    """Every request the storage sends to S3, as (operation, HTTP method), from any thread: a botocore
    ``before-send`` hook on the session of each thread's client (django-storages makes one per thread)."""
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(request, event_name, **kwargs):
        with lock:
            sent.append((event_name.rsplit(".", 1)[-1], request.method))

    create_session = s3_dicom._create_session

    def hooked_session():
        session = create_session()
        session.events.register("before-send.s3.*", record)
        return session

    s3_dicom._create_session = hooked_session
    assert not hasattr(s3_dicom._connections, "connection")  # a fresh storage: every client gets the hook
    return sent


pytestmark = pytest.mark.django_db  # the in-flight state is a database row (StagedFile)


def test_stage_publish_read_remove_with_orthanc_layout(s3_dicom, keys):
    uuid = new_uuid()
    s3_dicom.stage(uuid, b"DICM bytes")
    assert keys() == {f"orthanc/{uuid[:2]}/{uuid[2:4]}/{uuid}"}  # the object only: no marker object
    assert s3_dicom.staged() == [uuid] and s3_dicom.all_uuids() == set()
    assert StagedFile.objects.get(uuid=uuid).created == pytest.approx(time.time(), abs=60)
    s3_dicom.publish(uuid)
    assert keys() == {f"orthanc/{uuid[:2]}/{uuid[2:4]}/{uuid}"}
    assert s3_dicom.staged() == [] and s3_dicom.all_uuids() == {uuid}
    assert not StagedFile.objects.exists()
    assert s3_dicom.read(uuid) == b"DICM bytes"
    s3_dicom.remove(uuid)
    assert keys() == set()
    with pytest.raises(FileNotFoundError):
        s3_dicom.read(uuid)


def test_discard_leaves_nothing(s3_dicom, keys):
    uuid = new_uuid()
    s3_dicom.stage(uuid, b"x" * 100)
    s3_dicom.discard(uuid)
    assert keys() == set() and not StagedFile.objects.exists()
    s3_dicom.discard(uuid)  # idempotent
    s3_dicom.remove(uuid)


def test_recover_keeps_known_and_deletes_unknown_staged_files(s3_dicom, keys):
    published, known, unknown = new_uuid(), new_uuid(), new_uuid()
    s3_dicom.stage(published, b"published")
    s3_dicom.publish(published)
    s3_dicom.stage(known, b"committed, then the process died")
    s3_dicom.stage(unknown, b"died before the commit")
    asked = []

    def index_knows(uuids):
        asked.extend(uuids)
        return {published, known} & set(uuids)

    assert s3_dicom.recover(index_knows, grace=0) == (1, 1)
    assert sorted(asked) == sorted([known, unknown])  # only the in-flight ones, never the whole bucket
    assert s3_dicom.staged() == [] and not StagedFile.objects.exists()
    assert s3_dicom.all_uuids() == {published, known}
    assert s3_dicom.read(known) == b"committed, then the process died"
    assert not any(unknown in key for key in keys())
    assert s3_dicom.recover(index_knows, grace=0) == (0, 0)


def test_recover_deletes_unknown_objects_in_batches(s3_dicom, keys, s3_requests, monkeypatch):
    assert storage_s3._DELETE_BATCH == 1000  # S3's limit per DeleteObjects; 2 here to see the batching
    monkeypatch.setattr(storage_s3, "_DELETE_BATCH", 2)
    for _ in range(5):
        s3_dicom.stage(new_uuid(), b"")
    assert len(keys()) == 5
    del s3_requests[:]
    assert s3_dicom.recover(lambda staged: set(), grace=0) == (0, 5)
    assert keys() == set() and not StagedFile.objects.exists()
    assert [op for op, _ in s3_requests if op != "ListObjectsV2"] == ["DeleteObjects"] * 3


def test_recover_drops_a_row_whose_object_was_never_written(s3_dicom, keys):
    StagedFile.objects.create(uuid=new_uuid(), created=time.time() - 3600)  # crash between the row and the PUT
    assert s3_dicom.recover(lambda uuids: set()) == (0, 1)
    assert keys() == set() and not StagedFile.objects.exists()


def test_a_replaced_object_stays_readable_until_recovery_after_the_grace(s3_dicom, keys, s3_requests):
    """archive/storage.py's REPLACED_GRACE on S3: an in-flight row dated ahead, no S3 request until recovery."""
    from archive.storage import REPLACED_GRACE

    uuid = new_uuid()
    s3_dicom.stage(uuid, b"replaced")
    s3_dicom.publish(uuid)
    del s3_requests[:]
    s3_dicom.retire(uuid)
    assert s3_requests == []
    assert s3_dicom.read(uuid) == b"replaced" and s3_dicom.all_uuids() == set()
    assert s3_dicom.recover(lambda uuids: set()) == (0, 0)           # not due yet
    assert s3_dicom.read(uuid) == b"replaced"
    StagedFile.objects.filter(uuid=uuid).update(created=time.time() - REPLACED_GRACE)   # REPLACED_GRACE later
    assert s3_dicom.recover(lambda uuids: set()) == (0, 1)
    assert keys() == set() and not StagedFile.objects.exists()


def test_retiring_a_write_still_in_flight_deletes_it_at_once(s3_dicom, keys):
    """Two writes of one attachment: the second commits first and retires the first's object, still staged;
    the first's publish then drops its row, so a dated row could not stay: the object goes now."""
    uuid = new_uuid()
    s3_dicom.stage(uuid, b"first")
    s3_dicom.retire(uuid)
    assert keys() == set()
    s3_dicom.publish(uuid)
    assert not StagedFile.objects.exists() and s3_dicom.all_uuids() == set()


def test_recover_leaves_young_rows_to_ingests_in_flight_elsewhere(s3_dicom, keys):
    uuid, old = new_uuid(), new_uuid()
    s3_dicom.stage(uuid, b"another process is indexing this")
    s3_dicom.stage(old, b"staged long ago")
    StagedFile.objects.filter(uuid=old).update(created=time.time() - s3_dicom.recover_grace - 1)
    assert s3_dicom.recover_grace > 0
    assert s3_dicom.recover(lambda uuids: set()) == (0, 1)
    assert s3_dicom.staged() == [uuid] and keys() == {s3_dicom.key_of(uuid)}


def test_big_file_is_uploaded_in_parts_and_streamed_in_chunks(s3_dicom, s3, bucket):
    uuid = new_uuid()
    data = bytes(range(256)) * (40 * 4096)  # 40 MiB, above the multipart threshold
    s3_dicom.stage(uuid, data)
    s3_dicom.publish(uuid)
    assert "-" in s3.client().head_object(Bucket=bucket, Key=s3_dicom.key_of(uuid))["ETag"]  # multipart
    digest, size = hashlib.sha256(), 0
    body = s3_dicom.stream(uuid)
    try:
        while chunk := body.read(1 << 20):
            assert len(chunk) <= 1 << 20
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    assert size == len(data) and digest.digest() == hashlib.sha256(data).digest()


def test_a_forked_process_opens_its_own_connection(s3_dicom):
    parent = s3_dicom.client
    s3_dicom._pid = -1  # as in a child forked after the parent used the storage
    assert s3_dicom.client is not parent
    assert s3_dicom.client is s3_dicom.client
    uuid = new_uuid()
    s3_dicom.stage(uuid, b"from the child")
    assert s3_dicom.read(uuid) == b"from the child"


def test_path_of_has_no_local_path(s3_dicom):
    with pytest.raises(NoLocalPath, match="s3://"):
        s3_dicom.path_of(new_uuid())


def test_storage_compression_round_trips(s3_dicom):
    uuid, data = new_uuid(), make_dicom()
    s3_dicom.stage(uuid, compress(data))
    s3_dicom.publish(uuid)
    assert s3_dicom.read(uuid)[:8] == compress(data)[:8]
    assert uncompress(s3_dicom.read(uuid)) == data


def test_all_uuids_stays_inside_the_prefix(s3_dicom, s3, bucket):
    s3.client().put_object(Bucket=bucket, Key="elsewhere/ab/cd/abcd", Body=b"not ours")
    uuid = new_uuid()
    s3_dicom.stage(uuid, b"ours")
    s3_dicom.publish(uuid)
    assert s3_dicom.all_uuids() == {uuid}


# -- through the archive and the REST API ------------------------------------------------------------------

# ingest stages on a helper thread, with a database connection of its own: real commits, not a test transaction.
pytest_db = pytest.mark.django_db(transaction=True)


@pytest_db
def test_an_overwritten_instance_keeps_its_old_object_for_readers(s3_dicom, keys, orthanc_config):
    orthanc_config(OverwriteInstances=True)
    first = make_dicom(SOPInstanceUID="1.2.3.11", InstanceNumber="1")
    instance_store(data=first, origin=Origin.rest(remote_ip="127.0.0.1"))
    old = Attachment.objects.get().uuid
    instance_store(data=make_dicom(SOPInstanceUID="1.2.3.11", InstanceNumber="2"), origin=Origin.rest(remote_ip="::1"))
    new = Attachment.objects.get().uuid
    assert new != old and s3_dicom.read(old) == first
    assert s3_dicom.all_uuids() == {new} and len(keys()) == 2


@pytest_db
@pytest.mark.parametrize("compression", [False, True])  # staged on a helper thread / on the caller's thread
def test_failed_indexing_leaves_nothing_in_the_bucket(s3_dicom, monkeypatch, keys, orthanc_config, compression):
    orthanc_config(StorageCompression=compression)

    def explode(*args, **kwargs):
        raise RuntimeError("index failure")

    monkeypatch.setattr(ingest, "_index_instance", explode)
    with pytest.raises(RuntimeError):
        instance_store(data=make_dicom(), origin=Origin.rest(remote_ip="127.0.0.1", username="alice"))
    assert keys() == set() and not StagedFile.objects.exists()


@pytest_db
@pytest.mark.parametrize("compression", [False, True])
def test_a_stored_file_costs_one_s3_request(client, s3_dicom, s3_requests, orthanc_config, compression):
    """Compressed, the file up to its pixel data is stored beside it, as Orthanc does: one PUT each."""
    orthanc_config(StorageCompression=compression)
    answer = client.generic("POST", "/instances", make_dicom(), content_type="application/dicom")
    assert answer.status_code == 200, answer.content
    assert s3_requests == [("PutObject", "PUT")] * (2 if compression else 1)
    assert s3_dicom.all_uuids() == set(Attachment.objects.values_list("uuid", flat=True))
    assert not StagedFile.objects.exists()


@pytest_db
def test_the_row_is_committed_before_the_put(s3_dicom):
    """Seen from another connection when the PUT leaves: a crash during or after the PUT leaves the row."""
    uuid, seen = new_uuid(), []

    def look_from_another_connection(**kwargs):
        def look():
            try:
                seen.append(StagedFile.objects.filter(uuid=uuid).exists())
            finally:
                connection.close()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()

    s3_dicom.client.meta.events.register("before-send.s3.PutObject", look_from_another_connection)
    s3_dicom.stage(uuid, b"bytes")
    assert seen == [True]
    s3_dicom.discard(uuid)


@pytest_db
def test_a_lone_association_store_waits_for_no_row_of_its_own(s3_dicom, monkeypatch, keys):
    """The stage's in-flight row is its own transaction: a store told it is the sole writer (the DICOM
    server's only association) must not hold the index transaction while the stage still has to write that
    row, or the two wait for each other (SQLite's write lock). The stage is slowed so that its row comes
    after the store's transaction has begun, as it may on a busy machine."""
    rows_ready = S3DicomStorage._rows_ready

    def late(self):
        time.sleep(0.3)
        rows_ready(self)

    monkeypatch.setattr(S3DicomStorage, "_rows_ready", late)
    started = time.monotonic()
    result = instance_store(data=make_dicom(), origin=Origin.dicom(remote_ip="127.0.0.1", calling_aet="SCU",
                                                                     called_aet="ORTHANC"), sole_writer=True)
    assert result.status.name == "SUCCESS"
    assert time.monotonic() - started < 5
    assert len(keys()) == 1 and not StagedFile.objects.exists()


@pytest_db
@pytest.mark.parametrize("compression", [False, True])
def test_rest_upload_download_delete_agree_with_the_bucket(client, s3_dicom, keys, orthanc_config, compression):
    orthanc_config(StorageCompression=compression)
    files = {name: Path(get_testdata_file(name)).read_bytes() for name in SAMPLES}
    ids = {}
    for name, data in files.items():
        answer = client.generic("POST", "/instances", data, content_type="application/dicom")
        assert answer.status_code == 200, answer.content
        ids[name] = answer.json()["ID"]
    uuids = set(Attachment.objects.values_list("uuid", flat=True))
    assert Attachment.objects.filter(content_type=ContentType.Dicom).count() == len(SAMPLES)
    assert s3_dicom.all_uuids() == uuids and s3_dicom.staged() == [] and not StagedFile.objects.exists()
    assert {key.rsplit("/", 1)[-1] for key in keys()} == uuids
    for name, data in files.items():
        assert client.get(f"/instances/{ids[name]}/file").content == data
    if compression:
        some = Attachment.objects.filter(content_type=ContentType.Dicom).first()
        assert uncompress(s3_dicom.read(some.uuid))[128:132] == b"DICM"

    gone = ids.pop("CT_small.dcm")
    assert client.delete(f"/instances/{gone}").status_code == 200
    assert client.get(f"/instances/{gone}/file").status_code == 404
    uuids = set(Attachment.objects.values_list("uuid", flat=True))
    assert Attachment.objects.filter(content_type=ContentType.Dicom).count() == len(SAMPLES) - 1
    assert s3_dicom.all_uuids() == uuids and {key.rsplit("/", 1)[-1] for key in keys()} == uuids
    for public_id in ids.values():
        client.delete(f"/instances/{public_id}")
    assert Resource.objects.count() == 0 and keys() == set()


def test_live_server_configured_by_environment(tmp_path, monkeypatch, s3, bucket, keys):
    """``manage.py serve`` with STORAGE_BACKEND=s3 and friends in its environment: explorer/settings.py wiring."""
    from tests.live import live_server

    for name, value in {**CREDENTIALS, "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket,
                        "S3_ENDPOINT_URL": s3.endpoint_url, "S3_PREFIX": "live"}.items():
        monkeypatch.setenv(name, value)
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with live_server(tmp_path) as server:
        answer = requests.post(server.url + "/instances", data=data, timeout=30)
        assert answer.status_code == 200, answer.text
        public_id = answer.json()["ID"]
        stored = keys()
        assert len(stored) == 1 and next(iter(stored)).startswith("live/")
        assert requests.get(f"{server.url}/instances/{public_id}/file", timeout=30).content == data
        assert requests.delete(f"{server.url}/instances/{public_id}", timeout=30).status_code == 200
        assert keys() == set()
    assert not (tmp_path / "storage").exists() or not any(p.is_file() for p in (tmp_path / "storage").rglob("*"))


def test_job_outputs_live_in_the_bucket(tmp_path, monkeypatch, s3, bucket, keys):
    """An asynchronous archive's ZIP is uploaded beside the attachments, so any server process (on any host)
    serves it; none stays on the local disk; DELETE of the output removes the object."""
    import zipfile

    from tests.live import live_server

    for name, value in {**CREDENTIALS, "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket,
                        "S3_ENDPOINT_URL": s3.endpoint_url, "S3_PREFIX": "live"}.items():
        monkeypatch.setenv(name, value)
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with live_server(tmp_path) as server:
        study = requests.post(server.url + "/instances", data=data, timeout=30).json()["ParentStudy"]
        job = requests.post(f"{server.url}/studies/{study}/archive", json={"Asynchronous": True},
                            timeout=30).json()["ID"]
        deadline = time.time() + 60
        while requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["State"] != "Success":
            assert time.time() < deadline
            time.sleep(0.2)
        assert f"live/jobs/{job}.archive" in keys()
        assert not any((tmp_path / "storage").rglob(f"{job}*"))
        archive = requests.get(f"{server.url}/jobs/{job}/archive", timeout=30)
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
            assert [z.read(n) for n in z.namelist() if not n.endswith("/")] == [data]
        assert requests.delete(f"{server.url}/jobs/{job}/archive", timeout=30).status_code == 200
        assert f"live/jobs/{job}.archive" not in keys()
