"""The local-disk storage area: two-phase writes, bytes kept exactly."""

import ctypes
import errno
import mmap
import os

import pytest

from archive.storage import DIRECT_ALIGN, DIRECT_PIECE, INCOMING, WRITE_PIECE, DicomFileStorage


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


def _resident_pages(path) -> list[bool]:
    """Which of the file's pages are in the page cache (mincore(2) on a read-only mapping, which faults none in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with open(path, "rb") as f:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        vector = ctypes.create_string_buffer(pages)
        assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
        return [bool(byte & 1) for byte in vector.raw]
    finally:
        libc.munmap(address, size)


def _direct_io_refused(folder) -> bool:
    try:
        os.close(os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644))
    except OSError:
        return True
    os.unlink(folder / "probe")
    return False


@pytest.mark.parametrize("size", [0, 1, DIRECT_ALIGN - 1, DIRECT_ALIGN, DIRECT_ALIGN + 1, 130_000,
                                  DIRECT_PIECE, 2 * DIRECT_PIECE + 12_345])
def test_a_synced_area_writes_with_direct_io_byte_for_byte(tmp_path, monkeypatch, size):
    """SyncStorageArea: the bytes skip the page cache (only the last partial page goes through it)."""
    if _direct_io_refused(tmp_path):
        pytest.skip(f"the file system of {tmp_path} refuses O_DIRECT (CI's does not)")
    monkeypatch.setattr("archive.storage._direct_files", [True])
    storage = DicomFileStorage(str(tmp_path), sync=True)
    data = os.urandom(size)
    storage.stage("d1ec0000-uuid", data)
    storage.publish("d1ec0000-uuid")
    path = tmp_path / "d1" / "ec" / "d1ec0000-uuid"
    if size >= DIRECT_ALIGN:
        resident = _resident_pages(path)
        assert not any(resident[:size // DIRECT_ALIGN]), "the aligned bulk went through the page cache"
    assert path.read_bytes() == data and storage.read("d1ec0000-uuid") == data and storage.staged() == []


def test_an_area_that_is_not_synced_writes_through_the_page_cache(tmp_path):
    storage = DicomFileStorage(str(tmp_path), sync=False)
    data = os.urandom(130_000)
    storage.stage("cace0000-uuid", data)
    storage.publish("cace0000-uuid")
    path = tmp_path / "ca" / "ce" / "cace0000-uuid"
    assert all(_resident_pages(path)) and path.read_bytes() == data


def test_a_file_system_refusing_direct_io_gets_buffered_writes(tmp_path, monkeypatch):
    """No file system at hand refuses O_DIRECT (tmpfs accepts it since Linux 6.6): open(2) is made to answer
    EINVAL for it, as such a file system does; the write falls back, and so do the next ones."""
    import archive.storage

    monkeypatch.setattr("archive.storage._direct_files", [True])
    real_open = os.open

    def no_direct_io(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(archive.storage.os, "open", no_direct_io)
    storage = DicomFileStorage(str(tmp_path), sync=True)
    data = os.urandom(DIRECT_ALIGN * 3)
    storage.stage("b0ff0000-uuid", data)
    assert archive.storage._direct_files == [False]
    storage.stage("b0ff0001-uuid", data[::-1])
    storage.publish("b0ff0000-uuid")
    storage.publish("b0ff0001-uuid")
    assert storage.read("b0ff0000-uuid") == data and storage.read("b0ff0001-uuid") == data[::-1]


def test_a_file_system_refusing_direct_writes_after_the_open_gets_buffered_writes(tmp_path, monkeypatch):
    """Some file systems (FUSE ones) accept O_DIRECT at open(2) and refuse the writes (EINVAL): write(2) is made
    to answer so on a descriptor in direct mode. The file is written whole all the same, and the next ones
    are opened without O_DIRECT."""
    import fcntl

    import archive.storage

    monkeypatch.setattr("archive.storage._direct_files", [True])
    real_write = os.write

    def no_direct_write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(archive.storage.os, "write", no_direct_write)
    storage = DicomFileStorage(str(tmp_path), sync=True)
    data = os.urandom(DIRECT_PIECE + 3 * DIRECT_ALIGN + 5)
    storage.stage("fa5e0000-uuid", data)
    assert archive.storage._direct_files == [False]
    storage.publish("fa5e0000-uuid")
    assert storage.read("fa5e0000-uuid") == data


def test_a_folder_removed_after_its_first_file_is_made_again_for_the_next(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("abab0001-uuid", b"one")
    storage.publish("abab0001-uuid")
    storage.remove("abab0001-uuid")
    folder = tmp_path / "ab" / "ab"
    if folder.exists():
        folder.rmdir()          # as a deletion that removes the folders it empties (another process's)
    storage.stage("abab0002-uuid", b"two")
    storage.publish("abab0002-uuid")
    assert storage.read("abab0002-uuid") == b"two" and (folder / "abab0002-uuid").is_file()


def test_a_child_forked_while_a_stage_held_the_storage_locks_can_stage(tmp_path, monkeypatch):
    """The copies job forks worker processes while this process's stage threads may be writing."""
    import time

    import archive.storage

    monkeypatch.setattr("archive.storage._direct_files", [True])
    storage = DicomFileStorage(str(tmp_path), sync=True)
    held = (archive.storage._direct_buffers_lock, archive.storage._proc_fd_lock)
    for lock in held:
        lock.acquire()          # as a stage thread holds them in the middle of a write
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                archive.storage._proc_fd_dir = None      # as in a child: its /proc/self is not the parent's
                storage.stage("f0f00000-uuid", os.urandom(3 * DIRECT_ALIGN + 1))
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the child hung on a lock held at the fork")
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        for lock in held:
            lock.release()
    assert storage.staged() == ["f0f00000-uuid"]
