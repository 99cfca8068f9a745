"""A paused job goes on where it stopped when resumed, as Orthanc's sets of instances and commands (its store
and retrieve jobs); resubmitted, it starts again (found comparing with Orthanc 1.10.1: ours re-sent everything)."""

from __future__ import annotations

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from archive.ingest import Origin, instance_store
from archive.network.registry import Modality, modality_json
from jobs import engine, tasks
from jobs.kinds import KINDS
from jobs.kinds.dicom import modality_store_job
from jobs.models import Job, State
from tests.dicom_factory import make_dicom
from tests.live import free_port

pytestmark = pytest.mark.django_db


def test_the_runner_keeps_the_checkpoint_of_a_paused_job_and_a_resubmit_drops_it(monkeypatch, settings):
    settings.JOBS_RUN_INLINE = True
    ran: list[int] = []

    def counting(job: Job):
        start = (job.parameters.get("checkpoint") or {}).get("position", 0)
        for k in range(start, 5):
            ran.append(k)
            job.checkpoint = {"position": k + 1}
            if k == 1 and not job.parameters.get("checkpoint"):
                Job.objects.filter(id=job.id).update(request="pause")    # as POST /jobs/{id}/pause would
            yield 100.0 * (k + 1) / 5

    monkeypatch.setitem(KINDS, "Counting", counting)
    monkeypatch.setattr(tasks, "SAVE_INTERVAL", 0)
    job = Job.objects.create(type="Counting", state=State.RUNNING)
    tasks.job_run(job.id)
    job.refresh_from_db()
    assert (job.state, job.parameters["checkpoint"], ran) == (State.PAUSED, {"position": 2}, [0, 1])
    Job.objects.filter(id=job.id).update(state=State.RUNNING)         # resumed and taken by a worker
    tasks.job_run(job.id)
    job.refresh_from_db()
    assert job.state == State.SUCCESS and ran == [0, 1, 2, 3, 4]       # each step once
    Job.objects.filter(id=job.id).update(state=State.FAILURE)
    engine.job_resubmit(job_id=job.id)              # runs at once here (inline): from the start, Orthanc's Reset
    assert ran[5:] == [0, 1] and Job.objects.get(id=job.id).state == State.PAUSED


@pytest.fixture
def storage_scp():
    received: list[str] = []

    def store(event):
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="DEST")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    yield port, received
    server.shutdown()


def test_a_resumed_store_job_sends_the_instances_left_only(storage_scp, settings, tmp_path):
    settings.ORTHANC = {**settings.ORTHANC, "StorageDirectory": str(tmp_path / "storage")}
    port, received = storage_scp
    uids = [f"1.2.826.0.1.3680043.8.498.{k}" for k in range(1, 6)]
    instances = [instance_store(data=make_dicom(SOPInstanceUID=uid, SeriesInstanceUID="1.2.3.4"),
                                origin=Origin()).ids.instance for uid in uids]
    remote = modality_json(Modality(aet="DEST", host="127.0.0.1", port=port))
    job = Job.objects.create(type="DicomModalityStore", state=State.RUNNING, content={"FailedInstancesCount": 0},
                             parameters={"remote": remote, "local_aet": "ORTHANC", "timeout": 10,
                                         "instances": instances, "permissive": False, "storage_commitment": False})
    steps = modality_store_job(job)
    progress = [next(steps), next(steps)]          # two instances sent, then paused: the generator is closed
    steps.close()
    assert job.checkpoint == {"position": 2, "failed": 0, "sent": [(CTImageStorage, u) for u in uids[:2]]}
    job.parameters = {**job.parameters, "checkpoint": job.checkpoint}
    progress += list(modality_store_job(job))
    assert received == uids                       # each once, in order
    assert [round(p) for p in progress] == [17, 33, 50, 67, 83]


def test_a_run_waits_for_the_lock_of_the_run_still_ending(monkeypatch):
    """Resumed right after its pause was saved, a job's new run can find the lock still held by the run that
    paused (it lets it go when it has closed its association): it waits, rather than leaving the job Running
    with nobody on it until the watchdog restarts it (seen end to end: 7 to 10 s)."""
    import threading

    from jobs.engine import job_run_lock

    ran: list[str] = []

    def once(job: Job):
        ran.append(job.id)
        yield 100.0

    monkeypatch.setitem(KINDS, "Once", once)
    job = Job.objects.create(type="Once", state=State.RUNNING)
    held, release = threading.Event(), threading.Event()

    def ending_run() -> None:
        with job_run_lock(job.id) as mine:
            assert mine
            held.set()
            release.wait(5)

    thread = threading.Thread(target=ending_run)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    tasks.job_run(job.id)
    thread.join()
    assert ran == [job.id] and Job.objects.get(id=job.id).state == State.SUCCESS
