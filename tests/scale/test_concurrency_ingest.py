"""Stores from several processes at once on one index (PostgreSQL, or the embedded SQLite file): one copy of
each instance, one patient/study/series however many processes create them, files and index in step."""

from __future__ import annotations

from tests.dicom_factory import make_dicom
from tests.scale.concurrency import assert_consistent, inventory, post_instance, shared_archive

HERE = "tests.scale.test_concurrency_ingest"


def _store_rounds(ctx, rounds: list[list[bytes]]) -> list[tuple[int, str]]:
    """Round by round, all processes together: store this process's instance of the round."""
    answers = []
    for blobs in rounds:
        ctx.barrier.wait(timeout=60)
        answers.append(post_instance(blobs[ctx.index % len(blobs)]))
    return answers


def _inventory(ctx) -> dict:
    """The inventory and the number of changes of each type."""
    from django.db.models import Count

    from archive.models import Change, ChangeType

    rows = Change.objects.values("change_type").annotate(n=Count("seq"))
    return {**inventory(ctx), "changes": {ChangeType(r["change_type"]).name: r["n"] for r in rows}}


def test_one_instance_stored_by_several_processes_at_once_is_stored_once(tmp_path):
    processes, rounds = 4, 20
    blobs = [[make_dicom(PatientID=f"SAME{r}", StudyInstanceUID=f"1.8.{r}", SeriesInstanceUID=f"1.8.{r}.1",
                         SOPInstanceUID=f"1.8.{r}.1.1")] for r in range(rounds)]
    with shared_archive(tmp_path) as archive:
        *answers, inv = archive.run(f"{HERE}:_store_rounds", processes, blobs, after=f"{HERE}:_inventory")

    for r in range(rounds):
        assert sorted(a[r] for a in answers) == [(200, "AlreadyStored")] * (processes - 1) + [(200, "Success")]
    assert inv["levels"] == [rounds] * 4
    assert len(inv["attachments"]) == rounds
    assert_consistent(inv)
    assert inv["changes"] == {"NewInstance": rounds, "NewSeries": rounds, "NewStudy": rounds, "NewPatient": rounds}


def test_processes_storing_into_one_new_study_create_each_ancestor_once(tmp_path):
    processes, rounds = 4, 20
    blobs = [[make_dicom(PatientID=f"NEW{r}", StudyInstanceUID=f"1.7.{r}", SeriesInstanceUID=f"1.7.{r}.1",
                         SOPInstanceUID=f"1.7.{r}.1.{k}", InstanceNumber=str(k + 1)) for k in range(processes)]
             for r in range(rounds)]
    with shared_archive(tmp_path) as archive:
        *answers, inv = archive.run(f"{HERE}:_store_rounds", processes, blobs, after=f"{HERE}:_inventory")

    assert [a for per_process in answers for a in per_process] == [(200, "Success")] * (processes * rounds)
    assert inv["levels"] == [rounds, rounds, rounds, rounds * processes]
    assert_consistent(inv)
    assert inv["changes"] == {"NewInstance": rounds * processes, "NewSeries": rounds, "NewStudy": rounds,
                       "NewPatient": rounds}
