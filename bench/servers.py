"""Start real Orthanc and our server on spare loopback ports with a temporary configuration, for the benches.

    with orthanc_server(http_port=None, dicom_port=None) as base_url:   # real Orthanc 1.10.1
        requests.get(base_url + "/system")
        base_url.pid, base_url.rss_mb()    # the URL is a str carrying the server's details
    with ours_server() as base_url:        # manage.py migrate, then manage.py serve --config FILE
        ...

Ports default to spare ones. ``python bench/servers.py orthanc|ours`` starts one and waits for Ctrl-C.

Each server gets a fresh temporary folder (configuration, StorageDirectory, IndexDirectory, log), removed at
exit. Both context managers stop their server on exit, exceptions and Ctrl-C included: the server runs in its
own session (process group), which is terminated, then killed after a grace period.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = PROJECT / ".venv" / "bin" / "python"
ORTHANC_BINARY = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class Server(str):
    """The base URL (``http://127.0.0.1:PORT``, no trailing slash), so ``with orthanc_server() as base_url``
    reads naturally, carrying the server's details: ``name``, ``http_port``, ``dicom_port``, ``pid`` (the
    process group leader: Orthanc itself, or ``manage.py serve`` with its gunicorn workers below it),
    ``workdir`` (temporary folder), ``log``."""

    name: str
    http_port: int
    dicom_port: int
    pid: int
    workdir: Path
    log: Path

    def __new__(cls, name: str, url: str, http_port: int, dicom_port: int, pid: int, workdir: Path,
                log: Path) -> Server:
        self = super().__new__(cls, url)
        self.name, self.http_port, self.dicom_port = name, http_port, dicom_port
        self.pid, self.workdir, self.log = pid, workdir, log
        return self

    @property
    def url(self) -> str:
        return str.__str__(self)

    def rss_mb(self) -> float:
        """Resident set size summed over the server and all its descendants, in MB (10^6 bytes)."""
        return tree_rss_bytes(self.pid) / 1e6

    def pss_mb(self) -> float:
        """Proportional set size summed over the tree, in MB: pages shared by forked workers counted once,
        so a preforking server is not charged several times for the same memory, as the RSS sum does."""
        return tree_pss_bytes(self.pid) / 1e6

    def cpu_seconds(self) -> float:
        """CPU time used so far by the live processes of the server's tree."""
        return tree_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log, lines)


class KeepAliveClient:
    """One keep-alive HTTP/1.1 connection to a server (TCP_NODELAY), reopened once when the server closed it
    meanwhile (Orthanc closes idle ones): what every bench's client shares."""

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def exchange(self, send: Callable[[http.client.HTTPConnection], None]
                 ) -> tuple[http.client.HTTPResponse, float]:
        """``send`` a request on the connection and read the answer's headers: (response, perf_counter() just
        before sending, so a time taken from it excludes opening the connection)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
                self.reconnects += attempt
            started = time.perf_counter()
            try:
                send(self.conn)
                return self.conn.getresponse(), started
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, bytes, float]:
        """(status, Content-Type, body, seconds)."""
        resp, started = self.exchange(lambda conn: conn.request(method, path, body=body, headers=headers or {}))
        try:
            data = resp.read()
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        elapsed = time.perf_counter() - started
        if resp.will_close:
            self.close()
        return resp.status, resp.getheader("Content-Type", ""), data, elapsed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def upload(self, files: list[bytes]) -> list[dict]:
        """POST /instances of each file; the answers (ID, ParentSeries, ParentStudy...). Exits on a failure."""
        answers = []
        for data in files:
            status, _, body, _ = self.call("POST", "/instances", body=data,
                                           headers={"Content-Type": "application/dicom"})
            if status != 200:
                raise SystemExit(f"upload failed: {status} {body[:200]!r}")
            answers.append(json.loads(body))
        return answers


def free_port() -> int:
    """A port free now, never one this process handed out before: the port of a server not started yet is still
    free, and a second call could return it again (two ports of one server alike)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


_given_ports: set[int] = set()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _tree_sum(pid: int, measure) -> int:
    """Sum ``measure(p)`` over the live processes of the tree (a process gone meanwhile counts 0)."""
    total = 0
    for p in process_tree(pid):
        try:
            total += measure(p)
        except OSError:
            pass
    return total


def _rss(p: int) -> int:
    with open(f"/proc/{p}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def _pss(p: int) -> int:
    with open(f"/proc/{p}/smaps_rollup") as f:
        return next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)


def tree_rss_bytes(pid: int) -> int:
    return _tree_sum(pid, _rss)


def tree_pss_bytes(pid: int) -> int:
    return _tree_sum(pid, _pss)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def filesystem_of(path: str | Path) -> str:
    """The file system holding ``path``, as the benches print it: "ext4 on vda, no journal". Whether ext4 has a
    journal matters to the figures: without one, each new inode is looked up past the inodes freed in the last
    minutes (the servers' storage areas of earlier runs), which makes a server's files cost more than on a
    journaled file system, the more so the more they crowd into one block group."""
    path = os.path.realpath(path)
    best = ("", "", "")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, mount_point, fstype = line.split()[:3]
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best[1]):
                best = (device, mount_point, fstype)
    device, _, fstype = best
    name = os.path.basename(device)
    if fstype != "ext4":
        return f"{fstype} on {name}"
    journal = os.path.exists(f"/proc/fs/jbd2/{name}-8")
    return f"ext4 on {name}, {'journaled' if journal else 'no journal'}"


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the live processes of the tree, in seconds."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return total / CLOCK_TICKS


def wait_for_system(url: str, proc: subprocess.Popen, *, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before answering /system; "
                               f"log {log}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url + "/system", timeout=2) as r:
                if r.status == 200:
                    json.loads(r.read())
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url}/system after {timeout:.0f} s ({last}); log {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen, *, grace: float = 15.0) -> None:
    """SIGTERM the process group (the server and its workers), SIGKILL what is left after ``grace``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Even when the leader has exited, workers may linger in its group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def _workdir(prefix: str, keep: bool, existing: Path | None = None) -> Iterator[Path]:
    """A temporary folder emptied when the server stops and removed when this process exits (``_retire``), or
    ``existing`` (created if needed, always kept): a bench reuses a big populated archive across runs
    (bench/find.py)."""
    if existing is not None:
        existing.mkdir(parents=True, exist_ok=True)
        yield existing
        return
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            _retire(path)


_retired: list[Path] = []


def _retire(folder: Path) -> None:
    """Truncate the files of a stopped server's folder now; remove the folder when this process exits.

    Two traits of this machine would charge the next server of a bench for a removal, whichever server it is:
    - ext4 here has no journal, and then does not reuse an inode freed in the last 60 seconds (360 while its
      inode table block is dirty; RECENTCY_MIN, fs/ext4/ialloc.c): each new inode is looked up past every
      one of them. Right after a C-STORE run's ~4,000 files and folders were removed, each mkdir and file
      creation of the next run took 0.3-0.6 ms instead of 0.1 (strace -T; perf: recently_deleted).
    - It is a virtual machine whose memory the host provides on first touch: keeping the archives whole
      made each run write into page cache never used before (perf: copy_folio_from_iter_atomic from 5% of
      the server's time to 27%; dd of 1.5 GB: 3.7 s of system time into such memory, 0.3-0.5 s into memory
      freed by removed files).
    A truncated file frees its pages and blocks at once, reused by the next run, and keeps its inode. The
    folders are removed when the bench ends (``removed``); the next bench that creates many files waits for
    those inodes (``wait_for_freed_inodes``)."""
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                os.truncate(os.path.join(root, name), 0)
            except OSError:
                pass
    if not _retired:
        atexit.register(_remove_retired)
    _retired.append(folder)


def _remove_retired() -> None:
    while _retired:
        removed(_retired.pop())


# When a bench last removed files on this machine: the next one waits until ext4 reuses their inodes.
REMOVAL_STAMP = Path(tempfile.gettempdir()) / "bench-removal.stamp"
# fs/ext4/ialloc.c skips an inode freed less than RECENTCY_MIN (60) seconds ago, 300 more while its inode
# table block is dirty; ``removed`` writes the blocks back so that the shorter one applies (+1: dtime is in s).
INODE_RECENTCY_SECONDS = 61


def removed(folder: Path) -> None:
    """Remove a bench's folder, write the freed inodes back and record when (see ``_retire``)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()
    try:
        REMOVAL_STAMP.write_text(f"{time.time():.3f}\n")
    except OSError:
        pass


def wait_for_freed_inodes() -> None:
    """Before a bench that creates many files: if a bench or a test session removed its files less than
    INODE_RECENTCY_SECONDS ago, wait. Until then, on ext4 without a journal, each new file or folder is
    allocated past those inodes (perf: recently_deleted, find_get_block_common): in one measured C-STORE
    run, 0.5 of the 4.7 ms of CPU per instance of the server that went first."""
    try:
        when = float(REMOVAL_STAMP.read_text())
    except (OSError, ValueError):
        return
    left = when + INODE_RECENTCY_SECONDS - time.time()
    if 0 < left <= INODE_RECENTCY_SECONDS:
        print(f"waiting {left:.0f} s: a bench removed its files {INODE_RECENTCY_SECONDS - left:.0f} s ago "
              "(ext4 reuses their inodes after a minute)", flush=True)
        time.sleep(left)


@contextmanager
def orthanc_server(*, http_port: int | None = None, dicom_port: int | None = None, extra: dict | None = None,
                   keep: bool = False, timeout: float = 60, workdir: Path | None = None) -> Iterator[Server]:
    """Real Orthanc on loopback with a fresh, empty archive. ``extra`` adds configuration options;
    ``workdir`` runs on that folder's archive instead (kept)."""
    if not os.path.exists(ORTHANC_BINARY):
        raise RuntimeError(f"Orthanc not found ({ORTHANC_BINARY}): apt-get install -y orthanc")
    http_port = http_port or free_port()
    dicom_port = dicom_port or free_port()
    with _workdir("bench-orthanc-", keep, workdir) as work:
        config = {
            "Name": "BenchOrthanc",
            "StorageDirectory": str(work / "storage"),
            "IndexDirectory": str(work / "index"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False,
            "Plugins": [],
            **(extra or {}),
        }
        cfg = work / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = work / "orthanc.log"
        # Without TCP_NODELAY real Orthanc stalls ~45 ms per C-STORE (DESIGN.md, Performance notes).
        env = {**os.environ, "TCP_NODELAY": "1"}
        with open(log, "wb") as out:
            proc = subprocess.Popen([ORTHANC_BINARY, str(cfg)], cwd=work, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{http_port}"
            wait_for_system(url, proc, timeout=timeout, log=log)
            yield Server("orthanc", url, http_port, dicom_port, proc.pid, work, log)
        finally:
            _stop(proc)


@contextmanager
def ours_server(*, http_port: int | None = None, dicom_port: int | None = None, extra: dict | None = None,
                env: dict | None = None, keep: bool = False, timeout: float = 120,
                workdir: Path | None = None) -> Iterator[Server]:
    """Our server the way a user starts it: an Orthanc configuration file, DATABASE_URL on SQLite in the
    IndexDirectory, ``manage.py migrate`` then ``manage.py serve --config FILE``. ``workdir`` runs on that
    folder's archive (kept); ``env={"DATABASE_URL": ...}`` picks another database (PostgreSQL)."""
    serve = PROJECT / "explorer" / "management" / "commands" / "serve.py"
    if not serve.exists():
        raise RuntimeError(f"{serve} does not exist yet")
    http_port = http_port or free_port()
    dicom_port = dicom_port or free_port()
    with _workdir("bench-ours-", keep, workdir) as work:
        storage, index = work / "storage", work / "index"
        storage.mkdir(exist_ok=True)
        index.mkdir(exist_ok=True)
        config = {
            "Name": "BenchOurs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(index),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False,
            **(extra or {}),
        }
        cfg = work / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = work / "ours.log"
        full_env = {**os.environ, "DATABASE_URL": f"sqlite:///{index}/index.sqlite3", **(env or {})}
        full_env.pop("ORTHANC_CONFIG", None)
        migrate = subprocess.run([str(PYTHON), "manage.py", "migrate", "--noinput", "--config", str(cfg)],
                                 cwd=PROJECT, env=full_env, capture_output=True, text=True, timeout=300)
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed ({migrate.returncode}):\n{migrate.stdout}\n{migrate.stderr}")
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(PYTHON), "manage.py", "serve", "--config", str(cfg)], cwd=PROJECT,
                                    env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{http_port}"
            wait_for_system(url, proc, timeout=timeout, log=log)
            yield Server("ours", url, http_port, dicom_port, proc.pid, work, log)
        finally:
            _stop(proc)


SERVERS = {"orthanc": orthanc_server, "ours": ours_server}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Start one server, print its URL and /system, wait for Ctrl-C.")
    ap.add_argument("which", choices=sorted(SERVERS))
    ap.add_argument("--http-port", type=int)
    ap.add_argument("--dicom-port", type=int)
    args = ap.parse_args()
    with SERVERS[args.which](http_port=args.http_port, dicom_port=args.dicom_port) as srv:
        with urllib.request.urlopen(srv.url + "/system") as r:
            print(r.read().decode())
        print(f"{srv.name} at {srv.url} (DICOM port {srv.dicom_port}), pid {srv.pid}, "
              f"RSS {srv.rss_mb():.0f} MB, folder {srv.workdir}; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
