"""Labels edited inline on a study, series and instance (issue 8, part 3): a real server, Chromium."""

from __future__ import annotations

import re

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui-labels")) as s:
        answer = requests.post(s.url + "/instances", data=make_dicom(
            PatientName="LABEL^LUCY", PatientID="LB-1", StudyInstanceUID="1.2.88.1", SeriesInstanceUID="1.2.88.1.1",
            StudyDescription="LABELLED STUDY"), timeout=30)
        answer.raise_for_status()
        s.ids = answer.json()
        other = requests.post(s.url + "/instances", data=make_dicom(
            PatientName="OTHER^OLIVER", PatientID="LB-2", StudyInstanceUID="1.2.88.2",
            SeriesInstanceUID="1.2.88.2.1", StudyDescription="OTHER STUDY"), timeout=30)
        other.raise_for_status()
        requests.put(s.url + f"/studies/{other.json()['ParentStudy']}/labels/known-elsewhere", timeout=10)
        yield s


def _labels(server, level: str, public_id: str) -> list[str]:
    return requests.get(f"{server.url}/{level}/{public_id}/labels", timeout=10).json()


def test_add_and_remove_a_label_on_a_study(server, page):
    study = server.ids["ParentStudy"]
    page.goto(f"{server.url}/ui/studies/{study}")
    box = page.locator("#labels-study")
    assert box.get_by_text("No labels.").is_visible()
    # the archive's other labels are suggested
    assert page.locator("#known-labels-study option").evaluate_all("os => os.map(o => o.value)") == ["known-elsewhere"]
    field = box.get_by_label("Add a label")
    field.fill("urgent_2024")
    field.press("Enter")
    page.wait_for_selector("#labels-study a.label:text-is('urgent_2024')")
    assert _labels(server, "studies", study) == ["urgent_2024"]
    assert axe_violations(page) == []
    shot(page, "labels_1_added")
    # the chip links to the study list filtered by the label
    assert box.get_by_role("link", name="urgent_2024").get_attribute("href") == "/ui?label=urgent_2024"
    # the box is swapped whole: the focus comes back to its field, not to the top of the page
    page.wait_for_function("document.activeElement && document.activeElement.name === 'name'"
                           " && document.activeElement.closest('#labels-study') !== null")
    box.get_by_role("button", name="Remove label urgent_2024").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#labels-study :text('No labels.')")
    page.wait_for_function("document.activeElement && document.activeElement.name === 'name'"
                           " && document.activeElement.closest('#labels-study') !== null")
    assert _labels(server, "studies", study) == []


def test_an_invalid_label_is_refused_inline(server, page):
    study = server.ids["ParentStudy"]
    page.goto(f"{server.url}/ui/studies/{study}")
    field = page.locator("#labels-study").get_by_label("Add a label")
    field.fill("not valid!")
    field.press("Enter")
    alert = page.locator("#label-error-study")
    alert.wait_for()
    assert "alphanumeric" in alert.inner_text() and "not valid!" in alert.inner_text()
    assert page.locator("#labels-study").get_by_label("Add a label").get_attribute("aria-invalid") == "true"
    assert _labels(server, "studies", study) == []
    assert axe_violations(page) == []


def test_the_label_filters_the_study_list(server, page):
    study = server.ids["ParentStudy"]
    requests.put(f"{server.url}/studies/{study}/labels/followup", timeout=10)
    page.goto(f"{server.url}/ui/studies/{study}")
    page.locator("#labels-study").get_by_role("link", name="followup").click()
    page.wait_for_url(re.compile(r"label=followup"))
    rows = page.locator("table.studies tbody tr td:first-child").all_inner_texts()
    assert rows == ["LABEL, LUCY"]
    requests.delete(f"{server.url}/studies/{study}/labels/followup", timeout=10)


def test_labels_on_series_and_instance(server, page):
    series, instance = server.ids["ParentSeries"], server.ids["ID"]
    page.goto(f"{server.url}/ui/series/{series}")
    field = page.locator("#labels-series").get_by_label("Add a label")
    field.fill("series-label")
    page.locator("#labels-series").get_by_role("button", name="Add").click()
    page.wait_for_selector("#labels-series span.label:text-is('series-label')")
    assert _labels(server, "series", series) == ["series-label"]
    # not a link to the study list, which filters studies by their own labels and does not offer this one
    assert page.locator("#labels-series a.label").count() == 0
    page.goto(f"{server.url}/ui/")
    assert page.get_by_role("checkbox", name="series-label").count() == 0
    page.goto(f"{server.url}/ui/instances/{instance}")
    field = page.locator("#labels-instance").get_by_label("Add a label")
    field.fill("key-image")
    field.press("Enter")
    page.wait_for_selector("#labels-instance span.label:text-is('key-image')")
    assert _labels(server, "instances", instance) == ["key-image"]
    assert axe_violations(page) == []


def test_labels_work_without_javascript(server, browser):
    """The forms post and redirect back; the refusal is a page of its own with the message (400)."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        study = server.ids["ParentStudy"]
        page.goto(f"{server.url}/ui/studies/{study}")
        page.locator("#labels-study").get_by_label("Add a label").fill("nojs")
        page.locator("#labels-study").get_by_role("button", name="Add").click()
        page.wait_for_url(f"{server.url}/ui/studies/{study}")
        assert "nojs" in _labels(server, "studies", study)
        page.locator("#labels-study").get_by_label("Add a label").fill("x" * 65)
        page.locator("#labels-study").get_by_role("button", name="Add").click()
        assert "maximum 64 characters" in page.locator("#label-error-study").inner_text()
        page.locator("#labels-study").get_by_role("button", name="Remove label nojs").click()
        assert "nojs" not in _labels(server, "studies", study)
    finally:
        context.close()


def test_labels_on_a_patient(server, page):
    """Orthanc 1.12 labels patients too (/patients/{id}/labels): added and removed inline, with the same rule."""
    patient = server.ids["ParentPatient"]
    page.goto(f"{server.url}/ui/patients/{patient}")
    box = page.locator("#labels-patient")
    assert box.get_by_text("No labels.").is_visible()
    field = box.get_by_label("Add a label")
    field.fill("vip")
    field.press("Enter")
    page.wait_for_selector("#labels-patient .label:text-is('vip')")
    assert _labels(server, "patients", patient) == ["vip"]
    # the study list filters on study labels, so a patient's label is not a link to it
    assert box.locator("a.label").count() == 0
    field = box.get_by_label("Add a label")
    field.fill("bad label")
    field.press("Enter")
    page.locator("#label-error-patient").wait_for()
    assert "alphanumeric" in page.locator("#label-error-patient").inner_text()
    assert _labels(server, "patients", patient) == ["vip"]
    assert axe_violations(page) == []
    shot(page, "labels_patient")
    page.locator("#labels-patient").get_by_role("button", name="Remove label vip").click()
    page.wait_for_selector("#labels-patient :text('No labels.')")
    assert _labels(server, "patients", patient) == []


def test_label_chips_in_the_study_list_are_filter_links(server, page):
    study = server.ids["ParentStudy"]
    requests.put(f"{server.url}/studies/{study}/labels/chip-link", timeout=10)
    try:
        page.goto(f"{server.url}/ui/")
        chip = page.locator("table.studies tbody").get_by_role("link", name="chip-link")
        assert chip.get_attribute("href") == "/ui?label=chip-link"      # a real, bookmarkable link
        chip.click()
        page.wait_for_url(re.compile(r"/ui\?label=chip-link$"))
        rows = page.locator("table.studies tbody tr td:first-child").all_inner_texts()
        assert rows == ["LABEL, LUCY"]
        assert page.get_by_role("checkbox", name="chip-link").is_checked()
        assert "1 matching study" in page.locator("p.count").inner_text()
        shot(page, "labels_chip_filtered")
    finally:
        requests.delete(f"{server.url}/studies/{study}/labels/chip-link", timeout=10)
