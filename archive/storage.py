"""The storage area behind ``storages["dicom"]``: attachments stored by UUID, as Orthanc lays them out.

A file is written under ``.incoming/`` first and moved to ``xx/yy/uuid`` once the index transaction that
references it has committed. After a crash, ``recover()`` settles every file left in ``.incoming/``: moved
into place if the index knows its UUID, deleted otherwise. So index and storage always agree, and the
recovery only looks at in-flight files, never at the whole area.

A file that a newer one replaced (an overwritten instance, a reconstruction, a new revision of an attachment)
moves to ``.replaced/<minute>/`` and is deleted ``REPLACED_GRACE`` seconds later: the readers that looked its
UUID up before the replacement (a C-MOVE, a ZIP archive or a job reading the files of a study it listed at its
start) still read it. One folder per minute of retirement, so that the purge removes whole folders (no stat of
each file, no folder of a million entries when a whole archive is sent again). A deleted resource's files go
at once.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from django.core.files.storage import FileSystemStorage, storages

from archive.metrics import registry as metrics

INCOMING = ".incoming"
REPLACED = ".replaced"
# Seconds: longer than a C-MOVE or an archive download of a big study; 0 deletes at once, as Orthanc does
REPLACED_GRACE = float(os.environ.get("STORAGE_REPLACED_GRACE", "900"))
WRITE_PIECE = 1 << 16
# Direct I/O (O_DIRECT) for a synced area: file offsets, lengths and memory aligned to this, in pieces of at most
# DIRECT_PIECE bytes copied into a reused page-aligned buffer.
DIRECT_ALIGN = 4096
DIRECT_PIECE = 1 << 20


def _relative_path(uuid: str) -> str:
    return os.path.join(uuid[0:2], uuid[2:4], uuid)


# Whether this process stages unnamed files (O_TMPFILE, linked when complete); False once the file system says no.
_unnamed_files = [hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")]
_proc_fd_dir: tuple[int, int] | None = None
_proc_fd_lock = threading.Lock()


# Whether this process writes synced attachments with O_DIRECT; False once the file system refuses it (tmpfs).
_direct_files = [hasattr(os, "O_DIRECT")]
_direct_buffers: list[mmap.mmap] = []     # page-aligned, reused: a fresh mapping costs a page fault per 4 KB
_direct_buffers_lock = threading.Lock()


def _locks_renew() -> None:
    """A fork while another thread held one of these locks must not leave the child's locked for good (the
    copies job forks its workers from a process whose stage threads may be writing)."""
    global _proc_fd_lock, _direct_buffers_lock
    _proc_fd_lock, _direct_buffers_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_locks_renew)


def _write_direct(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd``, opened with O_DIRECT at offset 0: the aligned bulk directly from a page-aligned
    buffer, then the last partial block through the page cache (O_DIRECT dropped from the descriptor)."""
    with _direct_buffers_lock:
        buffer = _direct_buffers.pop() if _direct_buffers else mmap.mmap(-1, DIRECT_PIECE)
    try:
        view, pos = memoryview(data), 0
        bulk = len(view) - len(view) % DIRECT_ALIGN
        with memoryview(buffer) as target:
            while pos < bulk:
                size = min(DIRECT_PIECE, bulk - pos)
                target[:size] = view[pos:pos + size]
                try:
                    written = os.write(fd, target[:size])
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
                    _direct_files[0] = False    # a file system that opens with O_DIRECT but cannot write so
                    break
                pos += written
                if written % DIRECT_ALIGN:
                    break           # a short write off the alignment: the rest through the page cache
    finally:
        with _direct_buffers_lock:
            _direct_buffers.append(buffer)
    if pos < len(view):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        _write_buffered(fd, view[pos:])


def _write_buffered(fd: int, view: memoryview) -> None:
    # In pieces: one write(2) of a whole 0.5 MB instance costs ~1 ms on ext4 where 64 KB pieces
    # cost ~0.1 ms in all (Linux 6.18; with 4 writers at once 256 KB pieces were as slow as one write).
    while view:
        written = os.write(fd, view[:WRITE_PIECE])
        view = view[written:]


def _named(fd: int, path: Path) -> bool:
    """Give the complete unnamed file ``fd`` its staged name (a crash before this leaves nothing); False when
    /proc cannot name it."""
    try:
        os.link(str(fd), path, src_dir_fd=_proc_fds(), follow_symlinks=True)
    except OSError:
        return False
    return True


def _proc_fds() -> int:
    """An open /proc/self/fd of this process: linkat(2) through it names an O_TMPFILE file (open(2)). Kept per
    process, as a forked child's /proc/self is not its parent's."""
    global _proc_fd_dir
    if _proc_fd_dir is None or _proc_fd_dir[0] != os.getpid():
        with _proc_fd_lock:
            if _proc_fd_dir is None or _proc_fd_dir[0] != os.getpid():
                _proc_fd_dir = (os.getpid(), os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _proc_fd_dir[1]


class DicomFileStorage(FileSystemStorage):
    """Attachments on the local disk, with a two-phase write (stage, then publish after commit)."""

    stage_writes_index = False    # stage() touches only the disk (see S3DicomStorage)

    def __init__(self, location: str, sync: bool = False, **kwargs):
        super().__init__(location=location, **kwargs)
        self.sync = sync
        self.root = Path(location)
        (self.root / INCOMING).mkdir(parents=True, exist_ok=True)
        (self.root / REPLACED).mkdir(exist_ok=True)

    def stage(self, uuid: str, data: bytes) -> None:
        """Write the bytes of a new attachment where a crash cannot make it look published."""
        path = self.root / INCOMING / uuid
        fd, unnamed, direct = self._create(uuid, path)
        try:
            if direct:
                _write_direct(fd, data)
            else:
                _write_buffered(fd, memoryview(data))
            if self.sync:
                os.fsync(fd)
            if unnamed and not _named(fd, path):
                _unnamed_files[0] = False       # no /proc here (a sandbox): named files from now on
                os.close(fd)
                fd = -1
                return self.stage(uuid, data)
        finally:
            if fd >= 0:
                os.close(fd)
        metrics.counter_add(name="orthanc_storage_written_bytes", amount=len(data))

    def _create(self, uuid: str, path: Path) -> tuple[int, bool, bool]:
        """An open file for a staged attachment: (fd, unnamed, direct). Where the system allows, an unnamed file
        (O_TMPFILE) in the attachment's own directory, linked into ``.incoming/`` once written: ext4 places
        a file's inode in its directory's block group, so the files spread over the groups as Orthanc's do,
        instead of all crowding the group of ``.incoming/``. There, on ext4 without a journal, each new inode
        is looked up past every inode freed in the last minutes (deleted studies): measured 1.2 ms per
        instance of C-STORE against Orthanc's 0.06."""
        if _unnamed_files[0]:
            folder = os.path.join(self.location, os.path.dirname(_relative_path(uuid)))
            try:
                try:
                    fd, direct = self._open(folder, os.O_WRONLY | os.O_TMPFILE)
                except FileNotFoundError:    # the folder's first file (mkdir each time cost ~1% of a C-STORE)
                    os.makedirs(folder, exist_ok=True)
                    fd, direct = self._open(folder, os.O_WRONLY | os.O_TMPFILE)
                return fd, True, direct
            except OSError as error:
                # No O_TMPFILE on this file system (EOPNOTSUPP; EISDIR before Linux 3.11): named files from now on
                if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                _unnamed_files[0] = False
        fd, direct = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        return fd, False, direct

    def _open(self, path: str | Path, flags: int) -> tuple[int, bool]:
        """(fd, direct). A synced area's files are written with O_DIRECT: their bytes go to the disk before the
        index commit anyway (fsync); through the page cache they would be copied once more, into pages freshly
        taken for files written once and seldom read soon (on this project's VM that copy was 4% of a C-STORE run's
        CPU samples at 4 associations, up to 30% when the host was slow to provide memory), and would push out
        what is read (the index, recent files)."""
        if self.sync and _direct_files[0]:
            try:
                return os.open(path, flags | os.O_DIRECT, 0o644), True
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                fd = os.open(path, flags, 0o644)     # fails too where O_DIRECT was not the cause (no O_TMPFILE)
                _direct_files[0] = False             # a file system without direct I/O (tmpfs)
                return fd, False
        return os.open(path, flags, 0o644), False

    def publish(self, uuid: str) -> None:
        """Move a staged attachment to its place; call after the index commit. A file already removed was
        replaced meanwhile: a later write of the same attachment committed after ours and removed the file
        it replaced, ours, before we got here; there is nothing left to publish."""
        target = self.root / _relative_path(uuid)
        try:
            os.replace(self.root / INCOMING / uuid, target)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(self.root / INCOMING / uuid, target)
            except FileNotFoundError:
                if (self.root / INCOMING / uuid).exists():
                    raise

    def discard(self, uuid: str) -> None:
        """Forget a staged attachment whose index transaction failed."""
        try:
            os.unlink(self.root / INCOMING / uuid)
        except FileNotFoundError:
            pass

    def read(self, uuid: str) -> bytes:
        with self.stream(uuid) as f:
            data = f.read()
        metrics.counter_add(name="orthanc_storage_read_bytes", amount=len(data))
        return data

    def stream(self, uuid: str) -> BinaryIO:
        """The stored bytes as an open binary file (close it): for callers that stream big files."""
        try:
            return open(self.root / _relative_path(uuid), "rb")
        except FileNotFoundError:
            pass
        try:
            # The commit happened but the move did not yet (or a crash stopped it): the staged file is it.
            return open(self.root / INCOMING / uuid, "rb")
        except FileNotFoundError:
            pass
        for minute in sorted(_listed(self.root / REPLACED), reverse=True):
            try:
                return open(self.root / REPLACED / minute / uuid, "rb")
            except FileNotFoundError:
                pass
        raise FileNotFoundError(f"No such attachment: {uuid}")

    def path_of(self, uuid: str) -> str:
        return str(self.root / _relative_path(uuid))

    def remove(self, uuid: str) -> None:
        for path in (self.root / _relative_path(uuid), self.root / INCOMING / uuid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def retire(self, uuid: str) -> None:
        """Remove, after REPLACED_GRACE seconds, a file that a newer one replaced (see the module's docstring);
        a file still staged (the replaced write had not published it yet) goes too."""
        if REPLACED_GRACE <= 0:
            self.remove(uuid)
            return
        target = self.root / REPLACED / str(int(time.time() // 60)) / uuid
        for path in (self.root / _relative_path(uuid), self.root / INCOMING / uuid):
            try:
                os.replace(path, target)
                return
            except FileNotFoundError:
                if not path.exists():
                    continue
            target.parent.mkdir(parents=True, exist_ok=True)     # the minute's first file
            try:
                os.replace(path, target)
                return
            except FileNotFoundError:
                continue

    def purge_replaced(self, grace: float | None = None) -> int:
        """Delete the replaced files retired more than ``grace`` seconds (REPLACED_GRACE) ago, by whole minutes;
        returns how many."""
        deadline = time.time() - (REPLACED_GRACE if grace is None else grace)
        purged = 0
        for minute in _listed(self.root / REPLACED):
            if minute.isdigit() and (int(minute) + 1) * 60 <= deadline:
                folder = self.root / REPLACED / minute
                purged += len(_listed(folder))
                shutil.rmtree(folder, ignore_errors=True)     # another process may purge it too
        return purged

    def staged(self) -> list[str]:
        return [p.name for p in (self.root / INCOMING).iterdir() if p.is_file()]

    def recover(self, known: Callable[[Iterable[str]], set[str]]) -> tuple[int, int]:
        """Settle files left staged by a crash; ``known`` says which UUIDs the index references."""
        staged = self.staged()
        if not staged:
            return 0, 0
        referenced = known(staged)
        published = discarded = 0
        for uuid in staged:
            if uuid in referenced:
                self.publish(uuid)
                published += 1
            else:
                self.discard(uuid)
                discarded += 1
        return published, discarded

    def all_uuids(self) -> set[str]:
        """Every published attachment (a full walk: for consistency checks and tests, not hot paths)."""
        found = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == str(self.root):
                dirnames[:] = [d for d in dirnames if d not in (INCOMING, REPLACED)]
            found.update(filenames)
        return found


def _listed(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def dicom_storage() -> DicomFileStorage:
    return storages["dicom"]


# Orthanc's "zlib with size" compression: uint64 little-endian uncompressed size, then a zlib stream.
def compress(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + zlib.compress(data, 6)


def uncompress(data: bytes) -> bytes:
    if len(data) < 8:
        raise ValueError("Truncated compressed attachment")
    (size,) = struct.unpack("<Q", data[:8])
    out = zlib.decompress(data[8:])
    if len(out) != size:
        raise ValueError("Corrupted compressed attachment")
    return out
