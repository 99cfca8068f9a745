"""The query/retrieve page's domain functions, without a browser (the page itself: test_network_pages.py)."""

from __future__ import annotations

import pytest

from archive.ingest import Origin, instance_store
from archive.network import queries
from explorer.ui.network import PATIENT_NAME, STUDY_INSTANCES, Answer, StudySearch, _series_order
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("typed", "sent"), [
    ("Müller, Jörg", "*Müller*Jörg*"),        # as the page shows names
    ("Smith John", "*Smith*John*"),
    ("van der Berg", "*van*der*Berg*"),
    ("Müller^Jörg", "*Müller*Jörg*"),
    ("doe", "*doe*"),
    ("Mül*", "Mül*"),                         # the user's own wildcards are kept as typed
])
def test_a_typed_name_matches_each_word_in_turn(typed, sent):
    assert StudySearch(patient_name=typed).dicom_query()[PATIENT_NAME] == sent


def test_a_study_retrieved_in_part_says_how_much_is_here(settings, tmp_path):
    settings.ORTHANC = {**settings.ORTHANC, "StorageDirectory": str(tmp_path / "storage")}
    for k in range(3):
        instance_store(data=make_dicom(PatientID="P1", StudyInstanceUID="1.2.7", SeriesInstanceUID="1.2.7.1",
                                       SOPInstanceUID=f"1.2.7.1.{k}"), origin=Origin())
    values = {queries.PATIENT_ID: "P1", queries.STUDY_UID: "1.2.7", STUDY_INSTANCES: "6"}
    answer = Answer(query_id="q", index=0, values=values)
    assert answer.local_study is not None and answer.local_instances == 3
    complete = Answer(query_id="q", index=0, values={**values, STUDY_INSTANCES: "3"})
    assert complete.local_instances is None                 # all here: "In archive"
    elsewhere = Answer(query_id="q", index=0, values={**values, queries.STUDY_UID: "9.9"})
    assert elsewhere.local_study is None and elsewhere.local_instances is None


def test_series_in_the_order_of_their_numbers():
    answers = [Answer(query_id="q", index=k, values={0x00200011: n}) for k, n in enumerate(["1", "3", "", "2"])]
    assert [a.series_number for a in sorted(answers, key=_series_order)] == ["1", "2", "3", ""]


def test_a_name_latin1_cannot_hold_is_sent_in_utf8():
    """With the DefaultEncoding (Latin-1), "山田" would be sent as "**" and match every study."""
    assert 0x00080005 not in StudySearch(patient_name="Müller").dicom_query()
    keys = StudySearch(patient_name="山田").dicom_query()
    assert keys[PATIENT_NAME] == "*山田*" and keys[0x00080005] == "ISO_IR 192"


def test_a_failed_move_explains_itself():
    from explorer.ui.jobs import JobRow
    from jobs.models import Job, State

    failed = Job(type="DicomMoveScu", state=State.FAILURE, content={"TargetAet": "OURS"},
                 error_details='C-MOVE SCU to AET "PACS" has failed with DIMSE status 0xC000')
    assert "does it know OURS as a destination" in JobRow(failed).hint
    assert JobRow(Job(type="DicomMoveScu", state=State.SUCCESS)).hint == ""
    assert JobRow(Job(type="DicomMoveScu", state=State.FAILURE, error_details="TCP Initialization Error")).hint == ""


def test_the_series_of_an_answer_out_of_range_is_an_error_page(client):
    from archive.models import DicomQuery

    DicomQuery.objects.create(id="q1", modality="pacs", remote={}, level="Study", query={}, answers=[],
                              local_aet="ORTHANC")
    for index in ("-1", "5"):
        response = client.get(f"/ui/query/q1/answers/{index}/series")
        assert response.status_code == 400, index
