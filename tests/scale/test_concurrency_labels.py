"""Labels (Orthanc 1.12.0) written from several processes at once: PUT and DELETE are idempotent whoever
else does the same, the set left is the one the last writes made, and labelling a resource that another
process deletes is a 404 at worst, never a 500 nor a label left behind."""

from __future__ import annotations

import random

from tests.dicom_factory import make_dicom
from tests.scale.concurrency import client, shared_archive

HERE = "tests.scale.test_concurrency_labels"
NAMES = ("a", "b", "c")


def _store(http, blobs: list[bytes]) -> list[str]:
    return [http.post("/instances", data=b, content_type="application/dicom").json()["ID"] for b in blobs]


def _lockstep(ctx, blobs: list[bytes], rounds: int) -> list:
    """All processes add the same label together, then all remove it; process 0 looks after each step."""
    http = client()
    if ctx.index == 0:
        _store(http, blobs)
    ctx.barrier.wait(timeout=60)
    instance = http.get("/instances").json()[0]
    out = []
    for r in range(rounds):
        for method in ("put", "delete"):
            ctx.barrier.wait(timeout=60)
            status = getattr(http, method)(f"/instances/{instance}/labels/same{r}").status_code
            ctx.barrier.wait(timeout=60)
            seen = http.get(f"/instances/{instance}/labels").json() if ctx.index == 0 else None
            out.append((method, status, seen))
    return out


def _churn(ctx, ops: int) -> list[int]:
    """Random adds and removes of a few labels on one study and one instance, all processes at once."""
    http = client()
    rng = random.Random(ctx.index)
    targets = [f"/studies/{http.get('/studies').json()[0]}", f"/instances/{http.get('/instances').json()[0]}"]
    statuses = []
    for _ in range(ops):
        method = rng.choice(("put", "delete"))
        statuses.append(getattr(http, method)(f"{rng.choice(targets)}/labels/{rng.choice(NAMES)}").status_code)
    return statuses


def _labels_state(ctx) -> dict:
    from archive.models import Label

    http = client()
    study, instance = http.get("/studies").json()[0], http.get("/instances").json()[0]
    rows = sorted(Label.objects.values_list("resource__public_id", "name"))
    return {"rows": rows, "study": http.get(f"/studies/{study}/labels").json(),
            "instance": http.get(f"/instances/{instance}/labels").json(), "all": http.get("/tools/labels").json(),
            "ids": (study, instance)}


def _label_while_deleting(ctx, blobs: list[bytes], ops: int) -> list[int]:
    """Process 0 stores a study then deletes its patient; the others label its resources meanwhile."""
    http = client()
    if ctx.index == 0:
        ids = _store(http, blobs)
    ctx.barrier.wait(timeout=60)
    ids = http.get("/instances").json()
    series = http.get("/series").json()
    ctx.barrier.wait(timeout=60)
    if ctx.index == 0:
        patient = http.get("/patients").json()[0]
        return [http.delete(f"/patients/{patient}").status_code]
    rng = random.Random(ctx.index)
    statuses = []
    for k in range(ops):
        target = f"/series/{series[0]}" if k % 4 == 0 else f"/instances/{rng.choice(ids)}"
        statuses.append(http.put(f"{target}/labels/{rng.choice(NAMES)}").status_code)
    return statuses


def _left(ctx) -> dict:
    from archive.models import Label, Resource

    return {"labels": Label.objects.count(), "resources": Resource.objects.count()}


def _series(n: int, tag: str) -> list[bytes]:
    return [make_dicom(PatientID=f"L{tag}", StudyInstanceUID=f"1.5.{tag}", SeriesInstanceUID=f"1.5.{tag}.1",
                       SOPInstanceUID=f"1.5.{tag}.1.{k}") for k in range(n)]


def test_the_same_label_added_then_removed_by_several_processes_at_once(tmp_path):
    processes, rounds = 4, 10
    with shared_archive(tmp_path) as archive:
        results = archive.run(f"{HERE}:_lockstep", processes, _series(1, "1"), rounds)

    for step, outcomes in enumerate(zip(*results, strict=True)):
        method = "put" if step % 2 == 0 else "delete"
        assert [(m, status) for m, status, _ in outcomes] == [(method, 200)] * processes
        assert outcomes[0][2] == ([f"same{step // 2}"] if method == "put" else [])


def test_labels_churned_by_several_processes_end_consistent(tmp_path):
    processes = 4
    with shared_archive(tmp_path) as archive:
        archive.one(f"{HERE}:_lockstep", _series(1, "2"), 0)
        *statuses, state = archive.run(f"{HERE}:_churn", processes, 40, after=f"{HERE}:_labels_state")

    assert {s for per_process in statuses for s in per_process} == {200}
    study, instance = state["ids"]
    assert state["study"] == sorted(name for pid, name in state["rows"] if pid == study)
    assert state["instance"] == sorted(name for pid, name in state["rows"] if pid == instance)
    assert len(state["rows"]) == len(set(state["rows"]))
    assert state["all"] == sorted({name for _, name in state["rows"]})


def test_labelling_resources_another_process_deletes_is_never_a_server_error(tmp_path):
    processes = 4
    with shared_archive(tmp_path) as archive:
        for attempt in range(3):
            *statuses, left = archive.run(f"{HERE}:_label_while_deleting", processes, _series(6, f"3{attempt}"),
                                          30, after=f"{HERE}:_left")
            assert statuses[0] == [200]  # the delete
            assert {s for per_process in statuses[1:] for s in per_process} <= {200, 404}
            assert left == {"labels": 0, "resources": 0}
