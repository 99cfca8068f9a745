"""Faults under load, with real processes: an HTTP worker killed mid-upload, the Redis broker killed with jobs
queued, a job worker killed mid-job. Clients see errors only for the requests in flight, nothing that was
answered is lost, jobs run again, and the archive stays consistent (index, files and statistics agree)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server, restart
from tests.scale.processes import redis_server

UPLOAD = {"Content-Type": "application/dicom"}


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    return children


def _tree(pid: int) -> dict[int, str]:
    """pid -> command line of the process and its descendants."""
    children = _children()
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            found[p] = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return found


def _lock_holder(server, job_id: str) -> int:
    """The pid of the process holding the job's run lock."""
    deadline = time.time() + 30
    while time.time() < deadline:
        ports: set[int] = set()
        if server.database_url.startswith("postgres"):
            import psycopg

            with psycopg.connect(server.database_url) as conn:
                ports = {row[0] for row in conn.execute(
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE"
                    " l.locktype = 'advisory' AND l.classid = %s AND l.objid = hashtext(%s)::oid",
                    [0x4A4F4252, job_id]).fetchall()}
        for pid in _tree(server.process.pid):
            if ports:
                if any(_has_client_port(pid, port) for port in ports):
                    return pid
                continue
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                continue
            if any(link.endswith(f"/job-locks/{job_id}") for link in links):
                return pid
        time.sleep(0.02)
    raise AssertionError("no process holds the job's run lock")


def _has_client_port(pid: int, port: int) -> bool:
    """Whether the process owns a TCP socket whose local port is ``port`` (its PostgreSQL session)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")}
        table = Path("/proc/net/tcp").read_text().splitlines()[1:] + Path("/proc/net/tcp6").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in table:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
            return True
    return False


def _consistent(server) -> None:
    """Index, files and statistics agree: every instance's file reads back, one file per attachment."""
    stats = requests.get(server.url + "/statistics", timeout=30).json()
    instances = requests.get(server.url + "/instances", timeout=30).json()
    assert stats["CountInstances"] == len(instances)
    for public_id in instances:
        assert requests.get(f"{server.url}/instances/{public_id}/file", timeout=30).status_code == 200
    storage = Path(server.config["StorageDirectory"])
    files = [p for p in storage.rglob("*") if p.is_file() and ".incoming" not in p.parts and p.parent != storage]
    assert len(files) == len(instances), "one file per instance, no orphan"


def test_an_http_worker_killed_mid_upload_loses_nothing_that_was_answered(tmp_path):
    count, clients = 160, 4
    bodies = [make_dicom(PatientID=f"K{i % 8}", StudyInstanceUID=f"1.7.{i % 8}", SeriesInstanceUID=f"1.7.{i % 8}.1",
                         SOPInstanceUID=f"1.7.{i % 8}.1.{i}") for i in range(count)]
    answered: dict[int, str] = {}
    failed: list[int] = []
    lock = threading.Lock()
    with live_server(tmp_path, DicomServerEnabled=False) as server:
        workers = [p for p, cmd in _tree(server.process.pid).items() if "gunicorn" in cmd and p != server.process.pid]
        next_index = iter(range(count))

        def client() -> None:
            session = requests.Session()
            for i in next_index:
                try:
                    answer = session.post(server.url + "/instances", data=bodies[i], headers=UPLOAD, timeout=30)
                    with lock:
                        if answer.status_code == 200:
                            answered[i] = answer.json()["Status"]
                        else:
                            failed.append(i)
                except requests.RequestException:
                    with lock:
                        failed.append(i)
                    session = requests.Session()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        while len(answered) < count // 4:
            time.sleep(0.01)
        victim = max(workers)  # a gunicorn worker (the master is its parent: it starts another)
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join(timeout=120)

        # Only requests in flight on the killed worker failed: at most its threads' worth (gthread, 4 threads).
        assert len(failed) <= 4, failed
        assert set(answered.values()) <= {"Success"}
        # Everything answered is there; the failed ones can be sent again (stored, or already stored when the
        # worker died after its commit but before answering).
        for i in failed:
            again = requests.post(server.url + "/instances", data=bodies[i], headers=UPLOAD, timeout=30)
            assert again.status_code == 200 and again.json()["Status"] in ("Success", "AlreadyStored")
        assert len(requests.get(server.url + "/instances", timeout=30).json()) == count
        assert all(requests.get(server.url + "/system", timeout=10).ok for _ in range(8))  # serving again
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        # A file staged by the killed request is settled when the server starts again (storage recovery).
        again = restart(server)
        try:
            _consistent(again)
        finally:
            os.killpg(again.process.pid, signal.SIGTERM)
            again.process.wait(timeout=30)


def _study(server, tag: int, instances: int = 3, *, side: int = 8) -> str:
    """A study of ``instances`` CT images of side x side 16-bit pixels (random: they do not compress)."""
    answer = None
    for k in range(instances):
        answer = requests.post(server.url + "/instances", headers=UPLOAD, timeout=30, data=make_dicom(
            PatientID=f"F{tag}", StudyInstanceUID=f"1.8.{tag}", SeriesInstanceUID=f"1.8.{tag}.1",
            SOPInstanceUID=f"1.8.{tag}.1.{k}", Rows=side, Columns=side, PixelData=os.urandom(side * side * 2))).json()
    return answer["ParentStudy"]


def _wait_jobs(server, job_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.time() + timeout
    states: dict[str, str] = {}
    while time.time() < deadline:
        states = {j: requests.get(f"{server.url}/jobs/{j}", timeout=10).json()["State"] for j in job_ids}
        if all(s in ("Success", "Failure") for s in states.values()):
            break
        time.sleep(0.5)
    return states


def test_jobs_run_again_after_the_redis_broker_was_killed(tmp_path, monkeypatch):
    with redis_server(tmp_path / "redis1") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        monkeypatch.setenv("BROKER_URL", url)
        with live_server(tmp_path, DicomServerEnabled=False, ConcurrentJobs=1) as server:
            study = _study(server, 1, instances=20)
            # One job slot: the jobs run one after the other, each queued in Redis when the one before ends.
            jobs = [requests.post(f"{server.url}/studies/{study}/archive", json={"Asynchronous": True},
                                  timeout=30).json()["ID"] for _ in range(8)]
            redis_pid = next(p for p, cmd in _tree(os.getpid()).items() if "redis-server" in cmd and str(port) in cmd)
            os.kill(redis_pid, signal.SIGKILL)
            time.sleep(2)
            # Redis comes back empty (no persistence): the queued tasks are gone, the jobs are in the database.
            with redis_server(tmp_path / "redis2", port=port):
                states = _wait_jobs(server, jobs, timeout=120)
                assert set(states.values()) == {"Success"}, states
                assert requests.get(f"{server.url}/jobs/{jobs[-1]}/archive", timeout=30).content[:2] == b"PK"


def test_a_job_worker_killed_mid_job_runs_the_job_again(tmp_path):
    with live_server(tmp_path, DicomServerEnabled=False, ConcurrentJobs=1) as server:
        study = _study(server, 2, instances=60, side=512)  # 30 MB: the job lasts
        job = requests.post(f"{server.url}/studies/{study}/archive", json={"Asynchronous": True},
                            timeout=30).json()["ID"]
        # Kill whichever django-q2 worker process takes it, as soon as the job runs.
        deadline = time.time() + 60
        while requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["State"] != "Running":
            assert time.time() < deadline
            time.sleep(0.01)
        # The worker running it holds its run lock (jobs.engine.job_run_lock: on SQLite an open lock file, on
        # PostgreSQL a session of its own): kill that process, as the OOM killer would.
        worker = _lock_holder(server, job)
        os.kill(worker, signal.SIGKILL)
        states = _wait_jobs(server, [job], timeout=120)
        assert states[job] == "Success", states
        assert requests.get(f"{server.url}/jobs/{job}/archive", timeout=30).content[:2] == b"PK"
