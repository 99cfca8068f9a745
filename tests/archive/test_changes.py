from __future__ import annotations

import pytest

from archive import changes
from archive.errors import ParameterOutOfRange
from archive.models import Change, ChangeType, ExportedResource

pytestmark = pytest.mark.django_db

DATE = "20260101T120000"


def log(*types: ChangeType, level: int = 3) -> list[int]:
    """Append changes to the log; returns their sequence numbers."""
    return [Change.objects.create(change_type=t, level=level, public_id=f"id-{i}", date=DATE).seq
            for i, t in enumerate(types)]


def seqs(page: dict) -> list[int]:
    return [c["Seq"] for c in page["Changes"]]


def test_change_is_shaped_as_orthanc():
    [seq] = log(ChangeType.NewSeries, level=2)
    page = changes.changes_page()
    assert page["Changes"] == [{"ChangeType": "NewSeries", "Date": DATE, "ID": "id-0", "Path": "/series/id-0",
                                "ResourceType": "Series", "Seq": seq}]
    assert list(page) == ["Changes", "Done", "First", "Last"]


def test_page_forward_from_since():
    s = log(*[ChangeType.NewInstance] * 5)
    page = changes.changes_page(since=s[1], limit=2)
    assert seqs(page) == s[2:4]
    assert (page["Done"], page["First"], page["Last"]) == (False, s[2], s[3])


def test_last_page_is_done():
    s = log(*[ChangeType.NewInstance] * 3)
    page = changes.changes_page(since=s[0], limit=2)
    assert seqs(page) == s[1:]
    assert page["Done"] is True


def test_limit_zero_reports_nothing_and_is_not_done():
    log(ChangeType.NewInstance)
    page = changes.changes_page(limit=0)
    assert page["Changes"] == [] and page["Done"] is False
    assert "First" not in page


def test_empty_page_reports_the_last_number_handed_out():
    s = log(ChangeType.NewInstance, ChangeType.NewSeries)
    page = changes.changes_page(since=s[-1] + 50)
    assert page == {"Changes": [], "Done": True, "Last": s[-1]}


def test_clear_keeps_the_sequence_going():
    s = log(ChangeType.NewInstance, ChangeType.NewSeries)
    changes.changes_clear()
    assert Change.objects.count() == 0
    assert changes.changes_page() == {"Changes": [], "Done": True, "Last": s[-1]}
    [after] = log(ChangeType.NewPatient)
    assert after > s[-1]


def test_to_without_since_gives_the_newest_entries_oldest_first():
    s = log(*[ChangeType.NewInstance] * 6)
    page = changes.changes_page(to=s[4], limit=2)
    assert seqs(page) == [s[3], s[4]]
    assert (page["First"], page["Last"], page["Done"]) == (s[3], s[4], False)


def test_walking_backwards_with_to_ends_done():
    s = log(*[ChangeType.NewInstance] * 3)
    page = changes.changes_page(to=s[1], limit=5)
    assert seqs(page) == s[:2] and page["Done"] is True


def test_since_and_to_bound_a_window():
    s = log(*[ChangeType.NewInstance] * 6)
    page = changes.changes_page(since=s[0], to=s[3], limit=10)
    assert seqs(page) == s[1:4] and page["Done"] is True


def test_types_filter():
    s = log(ChangeType.NewInstance, ChangeType.StableStudy, ChangeType.NewSeries, ChangeType.StableStudy)
    page = changes.changes_page(types={ChangeType.StableStudy})
    assert seqs(page) == [s[1], s[3]]


def test_types_and_to_find_the_latest_of_a_kind():
    s = log(ChangeType.StableStudy, ChangeType.NewInstance, ChangeType.StableStudy, ChangeType.NewInstance)
    page = changes.change_types_parse("StableStudy;NewStudy")
    assert seqs(changes.changes_page(to=s[-1], limit=1, types=page)) == [s[2]]


def test_change_types_parse():
    assert changes.change_types_parse("all") == set()
    assert changes.change_types_parse("All") == set()
    assert changes.change_types_parse("NewStudy;StableSeries") == {7, 16}


def test_unknown_change_type_is_out_of_range():
    with pytest.raises(ParameterOutOfRange):
        changes.change_types_parse("NewStudy;Bogus")


def test_changes_last():
    s = log(ChangeType.NewInstance, ChangeType.NewSeries, level=2)
    page = changes.changes_last()
    assert seqs(page) == [s[-1]]
    assert (page["Done"], page["First"], page["Last"]) == (True, s[-1], s[-1])


def test_changes_last_on_a_cleared_log():
    s = log(ChangeType.NewInstance)
    changes.changes_clear()
    assert changes.changes_last() == {"Changes": [], "Done": True, "Last": s[-1]}


def test_a_page_is_one_keyset_query(django_assert_num_queries):
    first = log(*[ChangeType.NewInstance] * 20)[0]
    with django_assert_num_queries(1) as ctx:  # a page that follows on from since (no settling needed)
        changes.changes_page(since=first + 4, limit=3, types={4})
    sql = ctx.captured_queries[0]["sql"]
    assert '"seq" >' in sql and "ORDER BY" in sql and "LIMIT 4" in sql


def export(level: int, **ids) -> int:
    return ExportedResource.objects.create(level=level, public_id=f"e{level}", remote_modality="PACS",
                                           date=DATE, **ids).seq


def test_exports_carry_the_identifiers_of_their_level():
    s = export(2, patient_id="P", study_instance_uid="1.2", series_instance_uid="1.2.3")
    [item] = changes.exports_page()["Exports"]
    assert item == {"Date": DATE, "ID": "e2", "Path": "/series/e2", "PatientID": "P", "RemoteModality": "PACS",
                    "ResourceType": "Series", "Seq": s, "SeriesInstanceUID": "1.2.3", "StudyInstanceUID": "1.2"}
    assert list(item) == sorted(item)


def test_instance_export_has_sop_instance_uid():
    export(3, patient_id="P", study_instance_uid="1", series_instance_uid="1.1", sop_instance_uid="1.1.1")
    assert changes.exports_page()["Exports"][0]["SOPInstanceUID"] == "1.1.1"


def test_empty_exports_as_orthanc():
    assert changes.exports_page() == {"Done": True, "Exports": [], "Last": 0}
    assert changes.exports_page(since=100) == {"Done": True, "Exports": [], "Last": 100}
    assert changes.exports_last() == {"Done": True, "Exports": [], "Last": 0}


def test_exports_paging_and_clear():
    s = [export(0, patient_id=f"P{i}") for i in range(3)]
    page = changes.exports_page(since=s[0], limit=1)
    assert [e["Seq"] for e in page["Exports"]] == [s[1]] and page["Done"] is False
    assert changes.exports_last()["Exports"][0]["Seq"] == s[2]
    changes.exports_clear()
    assert ExportedResource.objects.count() == 0
