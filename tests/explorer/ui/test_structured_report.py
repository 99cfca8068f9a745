"""A structured report read as a document on its instance page: title, state, sections, "concept: value"
items, links to the images it cites; plain text whatever the file holds."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from archive.dicom import json as dicom_json
from archive.ingest import Origin, instance_store
from archive.runtime import default_encoding
from archive.settings import archive_settings
from explorer.ui import browser, structured_report
from explorer.ui.structured_report import report_of
from tests.dicom_factory import make_dataset, make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server
from tests.samples import sample_path

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
NO_PIXELS = {k: None for k in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                               "SamplesPerPixel", "PhotometricInterpretation", "PixelData", "ImagePositionPatient",
                               "ImageOrientationPatient")}
HOSTILE = '<script>window.__pwned = 1</script> & "quoted" <b>bold</b>'


def code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def content_item(relationship: str | None, value_type: str | None, concept: str | None = None, **values) -> Dataset:
    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    if value_type:
        item.ValueType = value_type
    if concept:
        item.ConceptNameCodeSequence = Sequence([code("C" + str(len(concept)), concept)])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def numeric(concept: str, number: str, unit: Dataset | None) -> Dataset:
    measured = Dataset()
    measured.NumericValue = number
    if unit is not None:
        measured.MeasurementUnitsCodeSequence = Sequence([unit])
    return content_item("CONTAINS", "NUM", concept, MeasuredValueSequence=Sequence([measured]))


def reference(relationship: str, value_type: str, sop_uid: str, frames: str | None = None) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = sop_uid
    if frames:
        ref.ReferencedFrameNumber = frames
    return content_item(relationship, value_type, ReferencedSOPSequence=Sequence([ref]))


def report_dataset(*, cited: str = "1.2.99.1.1", **overrides) -> Dataset:
    findings = content_item("CONTAINS", "CONTAINER", "Findings", ContinuityOfContent="SEPARATE", ContentSequence=Sequence([
        content_item("CONTAINS", "TEXT", "Finding", TextValue="Nodule in the left lobe.\nNo effusion."),
        numeric("Diameter", "12.5", code("mm", "millimeter", "UCUM")),
        numeric("Count", "3", code("1", "no units", "UCUM")),
        numeric("Density", "40", code("hu", "Hounsfield unit", "99LOCAL")),
        content_item("CONTAINS", "CODE", "Laterality", ConceptCodeSequence=Sequence([code("7771000", "Left", "SCT")])),
        content_item("CONTAINS", "SCOORD", "Outline", GraphicType="POLYLINE", GraphicData=[1, 1, 5, 1, 5, 5, 1, 1],
                     ContentSequence=Sequence([reference("SELECTED FROM", "IMAGE", cited)])),
        reference("INFERRED FROM", "IMAGE", "1.2.99.404", frames="2\\4"),
        content_item("CONTAINS", "TEXT", "Comment", TextValue=HOSTILE),
        content_item("INFERRED FROM", None, ReferencedContentItemIdentifier=[1, 2]),
        content_item("CONTAINS", None, "Broken item"),
    ]))
    context = [
        content_item("HAS OBS CONTEXT", "PNAME", "Recording observer", PersonName="Smith^Anna"),
        content_item("HAS OBS CONTEXT", "DATE", "Observation date", Date="20240305"),
        content_item("HAS OBS CONTEXT", "TIME", "Observation time", Time="101500"),
        content_item("HAS OBS CONTEXT", "DATETIME", "Dictated", DateTime="20240305101500.000000+0100"),
        content_item("HAS OBS CONTEXT", "UIDREF", "Study UID", UID="1.2.99"),
    ]
    observer = Dataset()
    observer.VerifyingObserverName = "Jones^Bob"
    observer.VerificationDateTime = "20240306120000"
    observer.VerifyingOrganization = "Hospital"
    values = dict(SOPClassUID=COMPREHENSIVE_SR, Modality="SR", **NO_PIXELS, ValueType="CONTAINER",
                  ConceptNameCodeSequence=Sequence([code("18748-4", "Diagnostic imaging report", "LN")]),
                  ContinuityOfContent="SEPARATE", CompletionFlag="COMPLETE", VerificationFlag="VERIFIED",
                  ContentDate="20240306", ContentTime="120500", VerifyingObserverSequence=Sequence([observer]),
                  ContentSequence=Sequence([*context, findings]))
    values.update(overrides)
    return make_dataset(**values)


def full_json(ds: Dataset) -> dict:
    return dicom_json.dataset_to_json(ds, fmt="full", default_encoding=default_encoding(),
                                      dictionary=archive_settings().dictionary)


def flat(items, depth=0):
    for item in items:
        yield depth, item
        yield from flat(item.children, depth + 1)


@pytest.mark.django_db
def test_report_reads_title_state_sections_and_values():
    report = report_of(full_json(report_dataset()), instances_of=lambda uids: {"1.2.99.1.1": "cited-id"})
    assert report.title == "Diagnostic imaging report"
    assert report.facts == [("Completion", "Complete"), ("Verification", "Verified"),
                            ("Content date", "2024-03-06 12:05:00"), ("Verified by", "Jones, Bob, 2024-03-06 12:00:00")]
    shown = [(d, i.relationship, i.value_type, i.concept, i.value) for d, i in flat(report.items)]
    assert shown == [
        (0, "HAS OBS CONTEXT", "PNAME", "Recording observer", "Smith, Anna"),
        (0, "HAS OBS CONTEXT", "DATE", "Observation date", "2024-03-05"),
        (0, "HAS OBS CONTEXT", "TIME", "Observation time", "10:15:00"),
        (0, "HAS OBS CONTEXT", "DATETIME", "Dictated", "2024-03-05 10:15:00"),
        (0, "HAS OBS CONTEXT", "UIDREF", "Study UID", "1.2.99"),
        (0, "CONTAINS", "CONTAINER", "Findings", ""),
        (1, "CONTAINS", "TEXT", "Finding", "Nodule in the left lobe.\nNo effusion."),
        (1, "CONTAINS", "NUM", "Diameter", "12.5 mm"),         # UCUM: the symbol
        (1, "CONTAINS", "NUM", "Count", "3"),                  # UCUM "1": no unit
        (1, "CONTAINS", "NUM", "Density", "40 Hounsfield unit"),
        (1, "CONTAINS", "CODE", "Laterality", "Left"),
        (1, "CONTAINS", "SCOORD", "Outline", "Polyline, 4 points"),
        (2, "SELECTED FROM", "IMAGE", "", ""),
        (1, "INFERRED FROM", "IMAGE", "", "frames 2, 4"),
        (1, "CONTAINS", "TEXT", "Comment", HOSTILE),            # plain text: the template escapes it
        (1, "INFERRED FROM", "", "", "see item 1.2"),
        (1, "CONTAINS", "", "Broken item", ""),
    ]
    cited = [(i.referenced_uid, i.instance) for _, i in flat(report.items) if i.referenced_uid]
    assert cited == [("1.2.99.1.1", "cited-id"), ("1.2.99.404", "")]
    assert report.left_out == 0


@pytest.mark.django_db
def test_not_a_report():
    assert report_of(full_json(make_dataset())) is None
    assert report_of(full_json(make_dataset(ValueType="CONTAINER"))) is None    # no content
    assert report_of(full_json(report_dataset(ValueType="TEXT"))) is None


@pytest.mark.django_db
def test_large_and_deep_reports_are_cut(monkeypatch):
    monkeypatch.setattr(structured_report, "MAX_ITEMS", 50)
    monkeypatch.setattr(structured_report, "MAX_DEPTH", 5)
    many = report_dataset(ContentSequence=Sequence(
        [content_item("CONTAINS", "TEXT", "Line", TextValue=str(i)) for i in range(70)]))
    report = report_of(full_json(many))
    assert (len(report.items), report.left_out) == (50, 20)
    deep = innermost = content_item("CONTAINS", "CONTAINER", "Level 1")
    for level in range(2, 9):
        child = content_item("CONTAINS", "CONTAINER", f"Level {level}")
        innermost.ContentSequence = Sequence([child])
        innermost = child
    report = report_of(full_json(report_dataset(ContentSequence=Sequence([deep]))))
    assert [d for d, _ in flat(report.items)] == [0, 1, 2, 3, 4]
    assert report.left_out == 3


@pytest.mark.django_db
def test_pydicom_comprehensive_sr():
    report = report_of(full_json(pydicom.dcmread(get_testdata_file("test-SR.dcm"))))
    assert report.title == "Diagnosis"
    values = [i.value for _, i in flat(report.items)]
    assert any('&%$§"!()<>{}/;' in v for v in values)
    assert "Diameter" in [i.concept for _, i in flat(report.items)]


@pytest.mark.django_db
def test_latin2_report_decoded_as_the_tags():
    path = sample_path("MarekLatin2.dcm")
    ds = pydicom.dcmread(path)
    report = report_of(full_json(ds))
    assert report.title == "Opis badania radiologicznego"
    text = " ".join(f"{i.concept} {i.value}" for _, i in flat(report.items))
    assert any(ch in text for ch in "ąęłńóśźżĄĘŁŃÓŚŹŻ"), text


@pytest.mark.django_db
def test_long_text_is_read_whole():
    """A report's findings are often longer than the 256 bytes Orthanc's JSON keeps (TooLong)."""
    findings = "Findings: " + "the lesion is stable; " * 100
    long_report = report_dataset(ContentSequence=Sequence([content_item("CONTAINS", "TEXT", "Findings",
                                                                          TextValue=findings)]))
    rest = Origin.rest(remote_ip="127.0.0.1", username="")
    sr = instance_store(data=make_dicom(**vars_of(long_report)), origin=rest).ids.instance
    view = browser.instance_view(public_id=sr)
    assert view.report.items[0].value == findings.strip()
    content = next(n for n in view.tags if n.key == "0040,a730")
    assert next(n for n in content.items[0] if n.key == "0040,a160").value == findings.strip()


@pytest.mark.django_db
def test_instance_view_links_the_cited_images_the_archive_holds():
    rest = Origin.rest(remote_ip="127.0.0.1", username="")
    ct = instance_store(data=make_dicom(SOPInstanceUID="1.2.99.1.1"), origin=rest).ids
    sr = instance_store(data=make_dicom(**vars_of(report_dataset(SeriesInstanceUID="1.2.3.4.1.9"))), origin=rest).ids
    view = browser.instance_view(public_id=sr.instance)
    cited = {i.referenced_uid: i.instance for _, i in flat(view.report.items) if i.referenced_uid}
    assert cited == {"1.2.99.1.1": ct.instance, "1.2.99.404": ""}
    assert browser.instance_view(public_id=ct.instance).report is None


def vars_of(ds: Dataset) -> dict:
    """The dataset's elements by keyword, to rebuild it with make_dicom (whose pixel tags it has none of)."""
    return {**NO_PIXELS, **{element.keyword: element.value for element in ds if element.keyword}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("report")) as s:
        s.ct = s.upload(make_dicom(SOPInstanceUID="1.2.99.1.1", SeriesInstanceUID="1.2.3.4.1.1"))
        s.sr = s.upload(make_dicom(**vars_of(report_dataset(SeriesInstanceUID="1.2.3.4.1.9", SeriesNumber="9",
                                                            SeriesDescription="Report"))))
        yield s


def test_report_page(server, page):
    page.goto(server.url + f"/ui/studies/{server.ct['ParentStudy']}")
    page.get_by_role("link", name="Read report of series 9").click()
    page.wait_for_load_state("networkidle")
    report = page.locator("section.report")
    assert report.get_by_role("heading", level=2).inner_text() == "Diagnostic imaging report"
    text = report.inner_text()
    for expected in ("Verified by", "Jones, Bob", "Findings", "Diameter:", "12.5 mm", "Laterality:", "Left",
                     "Nodule in the left lobe.\nNo effusion.", HOSTILE, "see item 1.2", "1.2.99.404"):
        assert expected in text, expected
    assert page.locator("section.report script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert axe_violations(page) == []
    shot(page, "structured-report")
    report.get_by_role("link", name="Image").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/ui/instances/{server.ct['ID']}")


@pytest.mark.django_db
def test_tag_tree_of_a_large_report_is_cut(monkeypatch):
    """The tags tree lists the file's top-level tags and nested ones up to TAG_TREE_BUDGET; the sequences past
    it say how many items they hold; the page says so and links the JSON."""
    from django.test import Client

    monkeypatch.setattr(browser, "TAG_TREE_BUDGET", 40)
    many = report_dataset(ContentSequence=Sequence(
        [content_item("CONTAINS", "CONTAINER", f"Section {i}", ContentSequence=Sequence(
            [content_item("CONTAINS", "TEXT", "Line", TextValue=f"{i}.{k}") for k in range(5)]))
         for i in range(20)]))
    rest = Origin.rest(remote_ip="127.0.0.1", username="")
    sr = instance_store(data=make_dicom(**vars_of(many)), origin=rest).ids.instance
    view = browser.instance_view(public_id=sr)
    top = {n.key for n in view.tags}
    assert {"0010,0010", "0040,a730", "0040,a491"} <= top                  # every top-level tag
    content = next(n for n in view.tags if n.key == "0040,a730")
    assert len(content.items) == 20 and not content.hidden_items
    sections = [next(n for n in item if n.key == "0040,a730") for item in content.items]
    assert sections[0].items and not sections[0].hidden_items               # listed while the budget lasts
    assert sections[-1].hidden_items == 5 and not sections[-1].items        # then counted, not listed
    assert view.tags_cut
    page = Client().get(f"/ui/instances/{sr}").content.decode()
    assert "5 items, not listed here" in page
    assert f'<a href="/instances/{sr}/tags">tags as JSON</a>' in page
    assert len(view.report.items) == 20                                     # the report is not cut by it
    assert browser.instance_view(public_id=sr, with_report=False).report is None    # the tag search's fragment
    small = browser.instance_view(public_id=instance_store(data=make_dicom(), origin=rest).ids.instance)
    assert not small.tags_cut
    searched = Client().get(f"/ui/instances/{sr}?q=zzz-nothing", HTTP_HX_REQUEST="true").content.decode()
    assert "No tag matches “zzz-nothing” among those listed." in searched and "tags as JSON" in searched
