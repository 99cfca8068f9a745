"""Series without pixels (a structured report, an encapsulated PDF) beside images: the pages show what they
are instead of asking for thumbnails that cannot exist, and the viewer offers the images only."""

from __future__ import annotations

import time

import pytest
import requests

from explorer.ui.content_kind import IMAGE, OTHER, PDF, kind_of
from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server

STUDY = "1.2.78.1"
NO_PIXELS = {k: None for k in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                               "SamplesPerPixel", "PhotometricInterpretation", "PixelData", "ImagePositionPatient",
                               "ImageOrientationPatient")}
PDF_BYTES = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.mark.parametrize(("sop_class", "pixels", "kind"), [
    ("1.2.840.10008.5.1.4.1.1.2", True, IMAGE),          # CT
    ("1.2.840.10008.5.1.4.1.1.2", False, IMAGE),         # CT with private pixels (ELSCINT PMSCT_RLE1) or broken
    ("1.2.840.10008.5.1.4.1.1.88.11", False, OTHER),     # Basic Text SR
    ("1.2.840.10008.5.1.4.1.1.88.59", False, OTHER),     # Key Object Selection
    ("1.2.840.10008.5.1.4.1.1.11.1", False, OTHER),      # Grayscale Softcopy Presentation State
    ("1.2.840.10008.5.1.4.1.1.481.3", False, OTHER),     # RT Structure Set
    ("1.2.840.10008.5.1.4.1.1.481.2", True, IMAGE),      # RT Dose: an image
    ("1.2.840.10008.5.1.4.1.1.66.4", True, IMAGE),       # Segmentation: an image
    ("1.2.840.10008.5.1.4.1.1.104.1", False, PDF),       # Encapsulated PDF
    ("1.2.840.10008.5.1.4.1.1.104.3", False, OTHER),     # Encapsulated STL
    ("1.2.840.10008.5.1.4.1.1.9.1.1", False, OTHER),     # 12-lead ECG
    (None, False, OTHER), ("", False, OTHER),
    (None, True, IMAGE),                                 # pixel data decides
])
def test_kind_of(sop_class, pixels, kind):
    assert kind_of(sop_class, has_pixel_data=pixels) == kind



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("nonimage")) as s:
        common = {"PatientName": "MIXED^MIA", "PatientID": "NI-1", "StudyInstanceUID": STUDY}
        s.ct = s.upload(make_dicom(**common, SeriesInstanceUID=f"{STUDY}.1", SeriesNumber="1"))
        s.sr = s.upload(make_dicom(**common, **NO_PIXELS, SeriesInstanceUID=f"{STUDY}.2", SeriesNumber="2",
                                   SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR",
                                   SeriesDescription="Report"))
        s.pdf = s.upload(make_dicom(**common, **NO_PIXELS, SeriesInstanceUID=f"{STUDY}.3", SeriesNumber="3",
                                    SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", Modality="DOC",
                                    SeriesDescription="Referral letter", EncapsulatedDocument=PDF_BYTES,
                                    MIMETypeOfEncapsulatedDocument="application/pdf"))
        yield s


def _watch(page) -> list:
    """Failed requests and console errors of the page from now on."""
    problems: list = []
    page.on("response", lambda r: problems.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("console", lambda m: problems.append(("console", m.text)) if m.type == "error" else None)
    return problems


def test_study_page_shows_reports_and_pdfs_without_asking_for_images(server, page):
    problems = _watch(page)
    page.goto(server.url + f"/ui/studies/{server.ct['ParentStudy']}")
    page.wait_for_load_state("networkidle")
    shot(page, "study-with-report-and-pdf")
    assert problems == []
    cards = page.locator(".series-grid .card")
    assert cards.count() == 3
    assert cards.nth(0).locator("img.thumb").count() == 1
    report, letter = cards.nth(1), cards.nth(2)
    assert report.locator("img").count() == 0 and report.locator(".thumb.placeholder").inner_text() == "SR"
    assert "no images" not in report.inner_text()      # an SR series: its report to read instead
    assert report.get_by_role("link", name="Read report of series 2").get_attribute("href") == \
        f"/ui/instances/{server.sr['ID']}#report-title"
    assert cards.nth(0).get_by_role("link", name="View series 1 in the viewer").count() == 1
    assert report.get_by_role("link", name="View series 2 in the viewer").count() == 0
    assert letter.locator("img").count() == 0 and letter.locator(".thumb.placeholder").inner_text() == "PDF"
    pdf = requests.get(server.url + letter.get_by_role("link", name="Open PDF of series 3").get_attribute("href"),
                       timeout=10)
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(PDF_BYTES)
    # the viewer opens on the only series with images, in one viewport
    assert page.get_by_role("link", name="Open in viewer").get_attribute("href") == (
        f"/ui/viewer?series={server.ct['ParentSeries']}")
    assert axe_violations(page) == []


def test_series_and_instance_pages_of_a_report(server, page):
    problems = _watch(page)
    page.goto(server.url + f"/ui/series/{server.sr['ParentSeries']}")
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("link", name="Open in viewer").count() == 0
    assert page.locator(".series-grid .thumb.placeholder").inner_text() == "SR"
    page.goto(server.url + f"/ui/instances/{server.pdf['ID']}")
    page.wait_for_load_state("networkidle")
    assert page.locator(".preview.placeholder").inner_text() == "PDF"
    assert page.get_by_role("link", name="the PDF").get_attribute("href") == f"/instances/{server.pdf['ID']}/pdf"
    assert problems == []


def test_viewer_offers_the_images_only(server, page):
    problems = _watch(page)
    page.goto(server.url + f"/ui/viewer?series={server.ct['ParentSeries']}")
    page.wait_for_selector(".viewport:not([hidden]) .vp-canvas")
    options = page.locator(".viewport:not([hidden]) .vp-series option")
    assert options.count() == 1 and options.first.get_attribute("value") == server.ct["ParentSeries"]
    # a report named in the address: its viewport says there is nothing to show, nothing is fetched
    page.goto(server.url + f"/ui/viewer?series={server.sr['ParentSeries']}")
    status = page.locator(".viewport:not([hidden]) .vp-status")
    status.filter(has_text="No images in this series.").wait_for()
    assert problems == []


def test_viewer_frame_of_a_report_is_unsupported_media(server):
    # the viewer never asks, but an address typed by hand: 415 like the REST image routes, not a server error
    answer = requests.get(server.url + f"/ui/viewer/instances/{server.sr['ID']}/frames/0/pixels", timeout=10)
    assert answer.status_code == 415 and "BitsAllocated" in answer.text


def test_a_thumbnail_that_cannot_be_rendered_becomes_a_tile(server, page):
    # An image class without pixels (a header-only anonymized CR, say): tried, refused (415), then a tile
    broken = server.upload(make_dicom(PatientID="NI-2", StudyInstanceUID="1.2.78.2", SeriesInstanceUID="1.2.78.2.1",
                                      Modality="CR", SOPClassUID="1.2.840.10008.5.1.4.1.1.1", PixelData=None))
    page.goto(server.url + f"/ui/studies/{broken['ParentStudy']}")
    tile = page.locator(".series-grid .thumb.placeholder")
    tile.wait_for()
    assert tile.inner_text() == "No preview" and page.locator(".series-grid img").count() == 0
    # its instance page too, when the preview fails before ui.js (deferred) listens: ui.js held back here
    def late_script(route) -> None:
        time.sleep(0.5)
        route.continue_()

    page.route("**/static/ui/ui*.js", late_script)
    page.goto(server.url + f"/ui/instances/{broken['ID']}")
    tile = page.locator(".instance-head .preview.placeholder")
    tile.wait_for()
    assert tile.inner_text() == "No preview" and page.locator(".instance-head img").count() == 0
