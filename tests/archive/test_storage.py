"""The local-disk storage area: two-phase writes, bytes kept exactly."""

import os

from archive.storage import INCOMING, WRITE_PIECE, DicomFileStorage


def test_a_file_bigger_than_one_write_piece_is_stored_byte_for_byte(tmp_path):
    storage = DicomFileStorage(str(tmp_path), sync=True)
    data = os.urandom(2 * WRITE_PIECE + 12345)       # written in three pieces
    storage.stage("0123abcd-uuid", data)
    assert (tmp_path / INCOMING / "0123abcd-uuid").read_bytes() == data
    storage.publish("0123abcd-uuid")
    assert not (tmp_path / INCOMING / "0123abcd-uuid").exists()
    assert (tmp_path / "01" / "23" / "0123abcd-uuid").read_bytes() == data
    assert storage.read("0123abcd-uuid") == data


def test_publishing_a_file_a_later_write_already_replaced_leaves_nothing(tmp_path):
    """Two PUTs of one attachment: the second commits after the first, removes the file it replaces (still
    staged) before the first publishes it. The first then has nothing to publish: no error (it was a 500)."""
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("aa11-first", b"first")
    storage.stage("bb22-second", b"second")
    storage.publish("bb22-second")
    storage.remove("aa11-first")
    storage.publish("aa11-first")
    assert storage.all_uuids() == {"bb22-second"} and storage.staged() == []


def test_a_staged_file_that_is_discarded_leaves_nothing(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("ffee-uuid", b"\x00" * 10)
    storage.discard("ffee-uuid")
    storage.discard("ffee-uuid")       # twice: no error
    assert list((tmp_path / INCOMING).iterdir()) == []


def test_a_staged_file_is_created_in_its_own_folder_and_named_in_incoming_only_whole(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    data = os.urandom(WRITE_PIECE + 7)
    storage.stage("abcd1234-uuid", data)
    staged = tmp_path / INCOMING / "abcd1234-uuid"
    assert staged.read_bytes() == data and staged.stat().st_nlink == 1
    # Its inode was made in ab/cd (O_TMPFILE), which therefore exists before the publish
    assert (tmp_path / "ab" / "cd").is_dir() and list((tmp_path / "ab" / "cd").iterdir()) == []
    storage.publish("abcd1234-uuid")
    assert (tmp_path / "ab" / "cd" / "abcd1234-uuid").read_bytes() == data and not staged.exists()


def test_a_write_that_fails_midway_leaves_no_staged_file(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    try:
        storage.stage("dead0000-uuid", 12345)     # not bytes: fails after the file was created
    except TypeError:
        pass
    else:
        raise AssertionError("stage accepted an int")
    assert storage.staged() == [] and list((tmp_path / "de" / "ad").iterdir()) == []


def test_without_unnamed_files_staging_writes_a_named_file(tmp_path, monkeypatch):
    monkeypatch.setattr("archive.storage._unnamed_files", [False])
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("0badcafe-uuid", b"abc")
    assert (tmp_path / INCOMING / "0badcafe-uuid").read_bytes() == b"abc" and not (tmp_path / "0b").exists()
    storage.publish("0badcafe-uuid")
    assert storage.read("0badcafe-uuid") == b"abc" and storage.staged() == []


def test_where_proc_cannot_name_an_unnamed_file_staging_falls_back_to_a_named_file(tmp_path, monkeypatch):
    monkeypatch.setattr("archive.storage._unnamed_files", [True])

    def no_proc() -> int:
        raise FileNotFoundError("/proc/self/fd")

    monkeypatch.setattr("archive.storage._proc_fds", no_proc)
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("fa11bacc-uuid", b"bytes")
    assert (tmp_path / INCOMING / "fa11bacc-uuid").read_bytes() == b"bytes"
    import archive.storage
    assert archive.storage._unnamed_files == [False]      # and so for the next ones
    storage.stage("fa11bacd-uuid", b"more")
    assert sorted(storage.staged()) == ["fa11bacc-uuid", "fa11bacd-uuid"]
