"""/changes under writes from several processes: every change listed once, in strictly increasing Seq, and a
client that pages ``/changes?since=Last`` while the writes go on sees every one of them.

On PostgreSQL the sequence hands out numbers at insert time but transactions commit in any order: a change
with a lower Seq can become visible after a higher one was already listed. archive/changes.py only answers
up to a Seq below which nothing is still being written (see ``_settled``)."""

from __future__ import annotations

from tests.dicom_factory import make_dicom
from tests.scale.concurrency import client, post_instance, shared_archive

HERE = "tests.scale.test_concurrency_changes"


def _write_or_page(ctx, per_writer: int, page: int) -> list[int] | list[tuple[int, str]]:
    """Process 0 pages /changes while the others store; the pager returns every Seq it saw, in order."""
    if ctx.index:
        answers = []
        for k in range(per_writer):
            # A new patient every third instance: NewPatient/NewStudy/NewSeries changes in the mix.
            patient = f"W{ctx.index}-{k // 3}"
            answers.append(post_instance(make_dicom(
                PatientID=patient, StudyInstanceUID=f"1.6.{ctx.index}.{k // 3}",
                SeriesInstanceUID=f"1.6.{ctx.index}.{k // 3}.1", SOPInstanceUID=f"1.6.{ctx.index}.{k}")))
        with ctx.counter.get_lock():
            ctx.counter.value += 1
        return answers
    http = client()
    seen: list[int] = []
    since = 0
    while True:
        writers_done = ctx.counter.value == ctx.n - 1  # read before the page: the last pages see everything
        response = http.get(f"/changes?since={since}&limit={page}")
        assert response.status_code == 200, response.content
        answer = response.json()
        seen += [c["Seq"] for c in answer["Changes"]]
        since = answer["Last"]
        if writers_done and answer["Done"]:
            return seen


def _full_log(ctx) -> dict:
    http = client()
    return {"all": http.get("/changes?limit=1000000").json(), "last": http.get("/changes?last").json()}


def test_paging_changes_during_concurrent_stores_misses_none(tmp_path):
    processes, per_writer = 4, 30
    with shared_archive(tmp_path) as archive:
        seen, *answers, log = archive.run(f"{HERE}:_write_or_page", processes, per_writer, 3,
                                          after=f"{HERE}:_full_log")

    assert all(a == (200, "Success") for per_process in answers for a in per_process)
    seqs = [c["Seq"] for c in log["all"]["Changes"]]
    writers = processes - 1
    # Per writer: one NewInstance per instance, and a new patient, study and series every third one.
    assert len(seqs) == writers * (per_writer + 3 * (per_writer // 3))
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False))  # unique and strictly increasing
    assert log["all"]["Done"] is True
    assert log["all"]["Last"] == seqs[-1] == log["last"]["Last"] == log["last"]["Changes"][0]["Seq"]
    assert seen == seqs  # the client paging during the writes saw each change, once, in order
