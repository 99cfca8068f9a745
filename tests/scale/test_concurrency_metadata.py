"""Metadata revisions (Orthanc 1.9.2 If-Match) with writers in several processes: of writers that name the
same revision, exactly one wins and the others get Orthanc's 409; revisions go up by one per write, none lost."""

from __future__ import annotations

from tests.dicom_factory import make_dicom
from tests.scale.concurrency import client, shared_archive

HERE = "tests.scale.test_concurrency_metadata"
REVISION_ERROR = ("A bad revision number was provided, which might indicate conflict between multiple "
                  "writers")  # Orthanc's ErrorCode_Revision (43)


def _race(ctx, data: bytes, rounds: int, blind: int) -> dict:
    http = client()
    if ctx.index == 0:
        public_id = http.post("/instances", data=data, content_type="application/dicom").json()["ID"]
        assert http.put(f"/instances/{public_id}/metadata/1024", data="start", content_type="text/plain"
                        ).status_code == 200
    ctx.barrier.wait(timeout=60)
    public_id = http.get("/instances").json()[0]
    url = f"/instances/{public_id}/metadata/1024"
    outcomes = []
    for r in range(rounds):
        etag = http.get(url)["ETag"]
        ctx.barrier.wait(timeout=60)  # everyone read the same revision: now all write against it
        response = http.put(url, data=f"{ctx.index}-{r}", content_type="text/plain", headers={"If-Match": etag})
        error = response.json() if response.status_code != 200 else {}
        outcomes.append((etag, response.status_code, response.get("ETag"), error.get("HttpStatus"),
                         error.get("OrthancError")))
        ctx.barrier.wait(timeout=60)
    # Writers without If-Match (CheckRevisions off): each write is one revision, none lost.
    blind_url = f"/instances/{public_id}/metadata/1025"
    blind_status = [http.put(blind_url, data=f"{ctx.index}-{k}", content_type="text/plain").status_code
                    for k in range(blind)]
    ctx.barrier.wait(timeout=60)
    final = {}
    if ctx.index == 0:
        for name, target in (("value", url), ("blind", blind_url)):
            response = http.get(target)
            final[name] = (response.content.decode(), response["ETag"])
    return {"outcomes": outcomes, "blind": blind_status, "final": final}


def _revision(etag: str) -> int:
    return int(etag.strip('"').split("-")[0])


def test_if_match_writers_in_several_processes_one_wins_per_revision(tmp_path):
    processes, rounds, blind = 3, 10, 10
    with shared_archive(tmp_path) as archive:
        results = archive.run(f"{HERE}:_race", processes, make_dicom(), rounds, blind)

    winners = []
    for r in range(rounds):
        round_outcomes = [result["outcomes"][r] for result in results]
        assert len({etag for etag, *_ in round_outcomes}) == 1  # all read the same revision
        assert _revision(round_outcomes[0][0]) == r  # "start" was revision 0; one write per round since
        won = [(index, o) for index, o in enumerate(round_outcomes) if o[1] == 200]
        lost = [o for o in round_outcomes if o[1] != 200]
        assert len(won) == 1
        assert [(status, http, error) for _, status, _, http, error in lost] == \
            [(409, 409, REVISION_ERROR)] * (processes - 1)
        assert _revision(won[0][1][2]) == r + 1
        winners.append(won[0][0])
    value, etag = results[0]["final"]["value"]
    assert (value, _revision(etag)) == (f"{winners[-1]}-{rounds - 1}", rounds)
    assert all(status == 200 for result in results for status in result["blind"])
    assert _revision(results[0]["final"]["blind"][1]) == processes * blind - 1  # first write is revision 0
