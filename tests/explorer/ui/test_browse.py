"""Keyset pages of the study list (archive/browse.py), in both shapes: few matches sorted in Python, and the
index walked in order with probes."""

from __future__ import annotations

import datetime as dt

import pytest

from archive import find
from archive.browse import Cursor, resources_page
from archive.dicom.tags import tag_number
from archive.find import FindQuery, TagConstraint
from archive.ingest import Origin, instance_store
from archive.labels import label_add
from archive.levels import Level
from explorer.ui.filters import StudyFilter
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db

NAMES = ["SMITH^ANNA", "JONES^BOB", "smith^carl", "BROWN^DAN", "GOLDSMITH^EVE", "ADAMS^FAY", "KING^GUS"]


@pytest.fixture
def studies():
    for i, name in enumerate(NAMES):
        instance_store(data=make_dicom(
            PatientID=f"P{i}", PatientName=name, StudyInstanceUID=f"1.2.9.{i}", SeriesInstanceUID=f"1.2.9.{i}.1",
            StudyDate=f"2024010{i + 1}", StudyDescription=f"Study {i}", AccessionNumber=f"ACC{i}",
            Modality="MR" if i % 2 else "CT"), origin=Origin.rest(remote_ip="127.0.0.1"))


@pytest.fixture(params=["few", "scan"])
def shape(request, monkeypatch):
    """Force either shape: a threshold of 0 makes every constraint 'many matches'."""
    if request.param == "scan":
        monkeypatch.setattr(find, "_scan_threshold", lambda level, wanted: 0)
    else:
        monkeypatch.setattr(find, "_scan_threshold", lambda level, wanted: 10_000)
    return request.param


def _names(page) -> list[str]:
    return [r.main_tags["PatientName"] for r in page.resources]


def _all_pages(query: FindQuery, **kwargs) -> list[str]:
    seen, cursor = [], None
    while True:
        page = resources_page(query=query, cursor=cursor, size=2, **kwargs)
        seen += _names(page)
        if page.next is None:
            return seen
        cursor = page.next


def test_insertion_order_newest_first_paged(studies, shape):
    assert _all_pages(FindQuery(level=Level.STUDY), descending=True) == NAMES[::-1]


def test_sorted_by_name_case_insensitive_across_pages(studies, shape):
    got = _all_pages(FindQuery(level=Level.STUDY), sort_tag=tag_number("PatientName"))
    assert got == sorted(NAMES, key=lambda n: (n.upper(), NAMES.index(n)))


def test_sorted_descending_with_filter(studies, shape):
    query = FindQuery(level=Level.STUDY, tags=(TagConstraint(tag=tag_number("PatientName"), query="*smith*"),))
    got = _all_pages(query, sort_tag=tag_number("StudyDate"), descending=True)
    assert got == ["GOLDSMITH^EVE", "smith^carl", "SMITH^ANNA"]


def test_resources_without_the_sort_tag_come_last(db):
    origin = Origin.rest(remote_ip="127.0.0.1")
    for i, accession in enumerate(["B", None, "A"]):
        instance_store(data=make_dicom(PatientID=f"Q{i}", PatientName=f"N{i}", StudyInstanceUID=f"1.3.{i}",
                                       SeriesInstanceUID=f"1.3.{i}.1", AccessionNumber=accession), origin=origin)
    for descending in (False, True):
        got = _all_pages(FindQuery(level=Level.STUDY), sort_tag=tag_number("AccessionNumber"), descending=descending)
        assert got == (["N2", "N0", "N1"] if not descending else ["N0", "N2", "N1"])


def test_filter_matches_tools_find(studies, shape):
    filters = StudyFilter(name="smith", modality=("CT",))
    query = filters.find_query(today=dt.date(2024, 1, 10))
    expected = {r.public_id for r in find.resources_find(query=query)}
    got = {r.public_id for r in resources_page(query=query, size=50).resources}
    assert got == expected and len(got) == 3   # SMITH^ANNA, smith^carl, GOLDSMITH^EVE: the CT ones

def test_labels_filter(studies, shape):
    label_add(level=Level.STUDY, public_id=resources_page(query=FindQuery(level=Level.STUDY), size=1)
              .resources[0].public_id, name="teaching")
    page = resources_page(query=StudyFilter(label=("teaching",)).find_query(today=dt.date.today()))
    assert _names(page) == ["SMITH^ANNA"]


def test_cursor_round_trip():
    assert Cursor.decode(Cursor(12, "A:B").encode()) == Cursor(12, "A:B")
    assert Cursor.decode(Cursor(12, "").encode()) == Cursor(12, "")
    assert Cursor.decode("12") == Cursor(12, None)
    assert Cursor.decode("junk") is None
