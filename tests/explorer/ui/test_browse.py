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


def _pages_back(query: FindQuery, last, **kwargs) -> list[str]:
    """Every page before ``last`` (a page read forwards), walked backwards with its ``previous`` cursor."""
    seen, page = [], last
    while page.previous is not None:
        page = resources_page(query=query, before=page.previous, size=2, **kwargs)
        assert page.next is not None                 # a page read backwards always has one after it
        seen = _names(page) + seen
    return seen


@pytest.mark.parametrize("sort, descending", [(None, True), (None, False), ("PatientName", False),
                                              ("PatientName", True), ("AccessionNumber", True)])
def test_previous_pages_walk_back_to_the_first(studies, shape, sort, descending):
    origin = Origin.rest(remote_ip="127.0.0.1")
    instance_store(data=make_dicom(PatientID="PX", PatientName="NOACC^ZED", StudyInstanceUID="1.2.9.99",
                                   SeriesInstanceUID="1.2.9.99.1", AccessionNumber=None), origin=origin)
    query = FindQuery(level=Level.STUDY)
    kwargs = {"sort_tag": tag_number(sort) if sort else None, "descending": descending}
    forward, cursor, pages = [], None, []
    while True:
        page = resources_page(query=query, cursor=cursor, size=2, **kwargs)
        pages.append(page)
        forward += _names(page)
        if page.next is None:
            break
        cursor = page.next
    assert pages[0].previous is None and len(pages) == 4
    assert _pages_back(query, pages[-1], **kwargs) + _names(pages[-1]) == forward
    # from the middle too: the page before the third is the second
    back = resources_page(query=query, before=pages[2].previous, size=2, **kwargs)
    assert _names(back) == _names(pages[1])


def test_count_is_exact_up_to_the_cap(studies, shape):
    from archive.browse import resources_count

    query = StudyFilter(name="smith").find_query(today=dt.date.today())
    assert resources_count(query=query, cap=10) == 3
    assert resources_count(query=query, cap=3) == 3
    assert resources_count(query=query, cap=2) is None
    assert resources_count(query=FindQuery(level=Level.STUDY), cap=100) == len(NAMES)


def test_the_list_says_more_than_the_cap_when_counting_would_cost(studies, client, monkeypatch):
    from explorer.ui import browser

    monkeypatch.setattr(browser, "COUNT_CAP", 2)
    text = client.get("/ui/?name=smith").content.decode()
    assert "More than 2 matching studies." in text
    monkeypatch.setattr(browser, "COUNT_CAP", 3)
    assert "3 matching studies." in client.get("/ui/?name=smith").content.decode()
