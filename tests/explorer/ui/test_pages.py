"""The study browser end to end: a real server (manage.py serve), Chromium through Playwright."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server
from tests.samples import sample_path

TODAY = dt.date.today().strftime("%Y%m%d")



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui")) as s:
        s.ids = {}
        for key, name, pid, date, modality, desc in [
            ("smith", "SMITH^ANNA", "UI-1", "20200105", "CT", "CT CHEST"),
            ("goldsmith", "GOLDSMITH^BOB", "UI-2", "20210607", "MR", "MR BRAIN"),
            ("jones", "JONES^CARL", "UI-3", TODAY, "US", "US ABDOMEN"),
        ]:
            s.ids[key] = s.upload(make_dicom(PatientName=name, PatientID=pid, StudyDate=date, Modality=modality,
                                             StudyDescription=desc, StudyInstanceUID=f"1.2.77.{pid[-1]}",
                                             SeriesInstanceUID=f"1.2.77.{pid[-1]}.1", AccessionNumber=f"ACC{pid}"))
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        item.ReferencedSOPInstanceUID = "1.2.77.99.1"
        s.ids["seq"] = s.upload(make_dicom(PatientName="SEQ^DORA", PatientID="UI-4", StudyInstanceUID="1.2.77.4",
                                           SeriesInstanceUID="1.2.77.4.1",
                                           ReferencedStudySequence=Sequence([item])))
        yield s


def _no_serious_axe(page) -> None:
    violations = axe_violations(page)
    assert violations == [], violations


def _rows(page) -> list[str]:
    return page.locator("table.studies tbody tr:not(.more) td:first-child").all_inner_texts()


def test_root_redirects_to_the_ui(server):
    answer = requests.get(server.url + "/", allow_redirects=False, timeout=10)
    assert answer.status_code == 301 and answer.headers["Location"] == "ui/"
    assert requests.get(server.url + "/", timeout=10).url == server.url + "/ui/"


def test_pages_and_rest_answers_have_the_icon(server, page):
    # The UI declares its icon; a REST answer opened in a tab declares none, so a browser asks /favicon.ico,
    # which redirects (as Orthanc) to app/images/favicon.ico: the same icon.
    page.goto(server.url + "/ui/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href.endswith("/ui/favicon.ico")
    icon = requests.get(server.url + href, timeout=10)
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"     # an ICO header
    answer = page.goto(server.url + "/favicon.ico")
    assert (answer.url, answer.status, answer.headers["content-type"]) == (
        server.url + "/app/images/favicon.ico", 200, "image/x-icon")
    assert answer.request.redirected_from.response().status == 301
    assert answer.body() == icon.content


def test_study_list_filters_as_you_type_and_url_is_bookmarkable(server, page):
    page.goto(server.url + "/ui/")
    assert page.locator("h1").inner_text() == "Studies"
    _no_serious_axe(page)
    page.get_by_label("Patient name").press_sequentially("smi", delay=30)   # no Enter: results follow typing
    page.wait_for_url(re.compile(r"name=smi"))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 2")
    assert sorted(_rows(page)) == ["GOLDSMITH, BOB", "SMITH, ANNA"]
    assert page.url.endswith("/ui?name=smi")                   # canonical: no empty fields
    bookmarked = page.context.new_page()
    bookmarked.goto(page.url)
    assert sorted(_rows(bookmarked)) == ["GOLDSMITH, BOB", "SMITH, ANNA"]
    assert bookmarked.get_by_label("Patient name").input_value() == "smi"
    bookmarked.close()
    # typed the way the list shows it
    page.get_by_label("Patient name").fill("smith, an")
    page.wait_for_url(re.compile(r"name=smith"))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 1")
    assert _rows(page) == ["SMITH, ANNA"]


def test_sort_by_column(server, page):
    page.goto(server.url + "/ui/?name=smith")
    page.get_by_role("link", name="Patient name").click()
    page.wait_for_url(re.compile(r"sort=name"))
    page.wait_for_function("document.querySelector('th[aria-sort=ascending]') !== null")
    assert _rows(page) == ["GOLDSMITH, BOB", "SMITH, ANNA"]
    page.get_by_role("link", name="Patient name").click()
    page.wait_for_function("document.querySelector('th[aria-sort=descending]') !== null")
    assert _rows(page) == ["SMITH, ANNA", "GOLDSMITH, BOB"]
    # typing keeps the sort (the hidden field travels with the form)
    page.get_by_label("Description").fill("brain")
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 1")
    assert "sort=-name" in page.url and "description=brain" in page.url


def test_modality_and_date_filters(server, page):
    page.goto(server.url + "/ui/")
    page.get_by_label("MR", exact=True).check()
    page.wait_for_url(re.compile(r"modality=MR"))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 1")
    assert _rows(page) == ["GOLDSMITH, BOB"]
    page.goto(server.url + "/ui/")
    # The study was dated when the module started: past midnight it is yesterday's (a CI run crossed it)
    preset = "today" if dt.date.today().strftime("%Y%m%d") == TODAY else "yesterday"
    page.get_by_label("Study date").select_option(preset)
    page.wait_for_url(re.compile(f"dates={preset}"))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 1")
    assert _rows(page) == ["JONES, CARL"]
    page.goto(server.url + "/ui/?date_from=2021-01-01&date_to=2021-12-31")
    assert _rows(page) == ["GOLDSMITH, BOB"]
    assert page.get_by_label("Study date").input_value() == "custom"


def test_open_patient_study_series_instance(server, page):
    page.goto(server.url + "/ui/?name=jones")
    page.get_by_role("link", name="JONES, CARL").click()
    assert page.locator("h1").inner_text() == "JONES, CARL"      # as the lists show names
    _no_serious_axe(page)
    shot(page, "flow_1_patient")
    page.get_by_role("link", name="US ABDOMEN").click()
    assert page.locator("h1").inner_text() == "US ABDOMEN"
    page.wait_for_function("[...document.images].every(i => i.complete)")
    assert page.locator("img.thumb").evaluate("i => i.naturalWidth") > 0     # the rendered preview
    _no_serious_axe(page)
    shot(page, "flow_2_study")
    page.locator(".series-grid a").first.click()
    assert page.locator("h1").inner_text() == "Axial"
    _no_serious_axe(page)
    shot(page, "flow_3_series")
    page.locator(".series-grid a").first.click()
    assert page.locator("h1").inner_text().startswith("Instance")
    assert page.get_by_text("StudyDescription").count() == 1
    _no_serious_axe(page)


def test_instance_tags_search_and_sequences(server, page):
    page.goto(server.url + f"/ui/instances/{server.ids['seq']['ID']}")
    summary = page.locator("details summary", has_text="ReferencedStudySequence")
    assert summary.count() == 1
    details = summary.locator("xpath=..")
    assert not details.evaluate("d => d.open")
    summary.click()
    assert page.get_by_text("1.2.77.99.1").is_visible()
    page.get_by_label("Search tags").fill("ReferencedSOPInstance")
    page.wait_for_function("document.querySelectorAll('#tags .name').length === 2")   # the sequence + its item
    assert page.locator("#tags details").evaluate("d => d.open")
    assert page.get_by_text("PatientName").count() == 0
    _no_serious_axe(page)


def test_delete_study_with_confirmation(server, page):
    answer = server.upload(make_dicom(PatientName="DELETE^ME", PatientID="UI-DEL", StudyInstanceUID="1.2.77.50",
                                      SeriesInstanceUID="1.2.77.50.1"))
    page.goto(server.url + f"/ui/studies/{answer['ParentStudy']}")
    page.get_by_role("link", name="Delete study…").click()
    assert page.locator("h1").inner_text() == "Delete this study?"
    _no_serious_axe(page)
    shot(page, "delete_confirm")
    page.get_by_role("link", name="Cancel").click()                     # cancel keeps it
    assert requests.get(server.url + f"/studies/{answer['ParentStudy']}", timeout=10).status_code == 200
    page.get_by_role("link", name="Delete study…").click()
    page.get_by_role("button", name="Delete study").click()
    page.wait_for_url(re.compile(r"/ui\?deleted=1"))
    assert page.get_by_role("status").first.inner_text() == "Deleted."
    assert requests.get(server.url + f"/studies/{answer['ParentStudy']}", timeout=10).status_code == 404


def test_protect_and_unprotect_patient(server, page):
    patient = server.ids["goldsmith"]["ParentPatient"]
    page.goto(server.url + f"/ui/patients/{patient}")
    page.get_by_role("button", name="Protect patient").click()
    page.wait_for_selector("text=Protected from recycling")
    assert requests.get(server.url + f"/patients/{patient}/protected", timeout=10).text == "1"
    page.get_by_role("button", name="Unprotect patient").click()
    page.wait_for_selector("text=Not protected")
    assert requests.get(server.url + f"/patients/{patient}/protected", timeout=10).text == "0"


def test_xss_sample_renders_as_text(server, page):
    answer = server.upload(sample_path("2017-06-27-XSSInjection.dcm").read_bytes())
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for url in ("/ui/?name=HelloWorld", f"/ui/patients/{answer['ParentPatient']}",
                f"/ui/studies/{answer['ParentStudy']}", f"/ui/series/{answer['ParentSeries']}",
                f"/ui/instances/{answer['ID']}", f"/ui/instances/{answer['ID']}?q=script",
                f"/ui/studies/{answer['ParentStudy']}/delete"):
        page.goto(server.url + url)
        page.wait_for_load_state("load")
        assert page.locator("main script").count() == 0, url
        assert "<script>" in page.locator("main").inner_text(), url
    shot(page, "xss_instance_tags")
    page.goto(server.url + "/ui/?name=HelloWorld")
    page.get_by_label("Description").fill("MyStudy<script>")            # through HTMX too
    page.wait_for_url(re.compile(r"description=MyStudy"))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 1")
    assert page.locator("main script").count() == 0
    assert dialogs == []


def test_next_and_previous_pages_are_keyset_links(server, page):
    for i in range(53):
        server.upload(make_dicom(PatientName=f"PAGER^{i:02d}", PatientID=f"PG{i}", StudyInstanceUID=f"1.2.78.{i}",
                                 SeriesInstanceUID=f"1.2.78.{i}.1"))
    page.goto(server.url + "/ui/?name=pager&sort=name")
    assert len(_rows(page)) == 50
    assert "53 matching studies" in page.locator("p.count").inner_text()      # an exact count: few matches
    assert page.get_by_role("link", name="Previous page").count() == 0
    nxt = page.get_by_role("link", name="Next page")
    assert "after=" in nxt.get_attribute("href") and "offset" not in nxt.get_attribute("href")
    nxt.click()
    page.wait_for_url(re.compile(r"after="))                                  # bookmarkable: the URL is the page
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 3")
    assert _rows(page) == [f"PAGER, {i:02d}" for i in range(50, 53)]
    assert page.get_by_role("link", name="Next page").count() == 0
    _no_serious_axe(page)
    shot(page, "study_list_last_page")
    bookmarked = page.context.new_page()
    bookmarked.goto(page.url)
    assert _rows(bookmarked) == [f"PAGER, {i:02d}" for i in range(50, 53)]
    bookmarked.close()
    page.get_by_role("link", name="Previous page").click()
    page.wait_for_url(re.compile(r"before="))
    page.wait_for_function("document.querySelectorAll('table.studies tbody tr').length === 50")
    assert _rows(page) == [f"PAGER, {i:02d}" for i in range(50)]
    assert page.get_by_role("link", name="Previous page").count() == 0         # back on the first page
    assert page.get_by_role("link", name="Next page").count() == 1


def test_the_unfiltered_count_comes_from_the_archive_totals(server, page):
    page.goto(server.url + "/ui/")
    total = requests.get(server.url + "/statistics", timeout=10).json()["CountStudies"]
    assert page.locator("p.count").inner_text().startswith(f"{total} studies in the archive")


def test_reading_works_without_javascript(server, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(server.url + "/ui/")
        page.get_by_label("Patient name").fill("jones")
        page.get_by_role("button", name="Search").click()         # a plain GET form
        page.wait_for_url(re.compile(r"name=jones"))
        assert _rows(page) == ["JONES, CARL"]
        page.get_by_role("link", name="Patient name").click()     # sorting links are real links
        assert "sort=name" in page.url and "name=jones" in page.url
        page.get_by_role("link", name="US ABDOMEN").click()
        assert page.locator("h1").inner_text() == "US ABDOMEN"
        shot(page, "no_javascript_study")
    finally:
        context.close()


def test_dark_theme_toggle_and_contrast(server, browser):
    context = browser.new_context(color_scheme="light", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/ui/")
        page.get_by_role("button", name="Dark theme").click()
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        page.reload()                                              # remembered
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        _no_serious_axe(page)
        shot(page, "study_list_dark")
    finally:
        context.close()
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(server.url + f"/ui/studies/{server.ids['smith']['ParentStudy']}")   # the system's choice
        assert page.get_by_role("button", name="Light theme").is_visible()
        _no_serious_axe(page)
    finally:
        context.close()


def test_tablet_layout_has_no_horizontal_scroll(server, browser):
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    try:
        for url in ("/ui/", f"/ui/studies/{server.ids['smith']['ParentStudy']}",
                    f"/ui/instances/{server.ids['seq']['ID']}"):
            page.goto(server.url + url)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url
        page.goto(server.url + "/ui/")
        shot(page, "study_list_tablet")
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/ui/upload", "/ui/query", "/ui/jobs", "/ui/system", "/ui/nothing-here",
                                  "/ui/studies/no-such-study"])
def test_other_pages_have_the_layout_and_pass_axe(server, page, path):
    page.goto(server.url + path)
    assert page.get_by_role("navigation", name="Main").is_visible()
    _no_serious_axe(page)


def test_errors_are_html_in_the_ui_and_json_in_the_api(server):
    ui = requests.get(server.url + "/ui/studies/unknown", timeout=10)
    assert ui.status_code == 404 and ui.headers["Content-Type"].startswith("text/html")
    ui = requests.get(server.url + "/ui/no/such/page", timeout=10)
    assert ui.status_code == 404 and "<html" in ui.text
    api = requests.get(server.url + "/studies/unknown", timeout=10)
    assert api.status_code == 404 and api.content == b""          # Orthanc's bare 404 for an unknown ID
    api = requests.get(server.url + "/no/such/route", timeout=10)
    assert api.status_code == 404 and api.json()["OrthancStatus"] == 17


def test_forms_need_the_csrf_token(server):
    study = server.ids["smith"]["ParentStudy"]
    refused = requests.post(server.url + f"/ui/studies/{study}/delete", timeout=10)
    assert refused.status_code == 403
    assert requests.get(server.url + f"/studies/{study}", timeout=10).status_code == 200


def test_ui_sits_behind_the_same_authentication(tmp_path):
    with live_server(tmp_path, AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"}) as s:
        assert requests.get(s.url + "/ui/", timeout=10).status_code == 401
        assert requests.get(s.url + "/static/ui/ui.css", timeout=10).status_code == 401
        answer = requests.get(s.url + "/ui/", auth=("alice", "secret"), timeout=10)
        assert answer.status_code == 200 and "Studies" in answer.text


def _every_page(server) -> dict[str, str]:
    study, series, instance = (server.ids["smith"][k] for k in ("ParentStudy", "ParentSeries", "ID"))
    patient = server.ids["smith"]["ParentPatient"]
    return {
        "studies": "/ui/", "studies_filtered": "/ui/?name=smith&modality=CT", "patient": f"/ui/patients/{patient}",
        "study": f"/ui/studies/{study}", "series": f"/ui/series/{series}",
        "instance": f"/ui/instances/{server.ids['seq']['ID']}", "instance_search": f"/ui/instances/{instance}?q=name",
        "labels": f"/ui/studies/{study}/labels", "download": f"/ui/studies/{study}/download",
        "modify": f"/ui/studies/{study}/modify", "anonymize": f"/ui/series/{series}/anonymize",
        "delete": f"/ui/studies/{study}/delete", "upload": "/ui/upload", "query": "/ui/query",
        "modalities": "/ui/modalities", "modality_new": "/ui/modalities/new", "jobs": "/ui/jobs",
        "system": "/ui/system", "viewer": f"/ui/viewer?series={series}", "not_found": "/ui/nothing-here",
    }


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_every_page_fits_a_tablet_in_both_themes(server, browser, scheme):
    """768 px wide (a tablet held upright), in the dark and the light theme: no horizontal scroll on any page,
    no serious axe finding (contrast included); a screenshot of each under tests/artifacts/ui/tablet_*."""
    study = server.ids["smith"]["ParentStudy"]
    # something in every table: a label (chips), a modality (the query form), a job (the jobs table)
    requests.put(f"{server.url}/studies/{study}/labels/tablet-check", timeout=10)
    requests.put(f"{server.url}/modalities/tablet", json={"AET": "TABLET", "Host": "127.0.0.1", "Port": 1},
                 timeout=10)
    requests.post(f"{server.url}/studies/{study}/archive", json={"Asynchronous": True}, timeout=10)
    context = browser.new_context(viewport={"width": 768, "height": 1024}, color_scheme=scheme)
    page = context.new_page()
    problems = []
    try:
        for name, path in _every_page(server).items():
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
                problems.append((name, "horizontal scroll"))
            hidden = page.evaluate("[...document.querySelectorAll('.table-wrap')]"
                                   ".filter(w => w.scrollWidth > w.clientWidth + 1).length")
            if hidden:
                problems.append((name, "a table scrolls sideways"))
            violations = axe_violations(page)
            if violations:
                problems.append((name, violations))
            shot(page, f"tablet_{scheme}_{name}")
    finally:
        context.close()
        requests.delete(f"{server.url}/studies/{study}/labels/tablet-check", timeout=10)
        requests.delete(f"{server.url}/modalities/tablet", timeout=10)
    assert problems == [], problems


def test_names_and_dates_read_the_same_on_every_page(server):
    # A DICOM PN reads "Family, Given" and a DA reads YYYY-MM-DD wherever a page shows them (breadcrumbs,
    # confirmations, facts), and an all-empty PN ("^^^^") is no name at all
    stored = server.upload(make_dicom(PatientName="CRUMB^BERT^^^", PatientID="UI-9", StudyInstanceUID="1.2.77.9",
                                      SeriesInstanceUID="1.2.77.9.1", StudyDate="20190304",
                                      ReferringPhysicianName="^^^^"))
    pages = {
        "series": f"/ui/series/{stored['ParentSeries']}",
        "instance": f"/ui/instances/{stored['ID']}",
        "viewer": f"/ui/viewer?series={stored['ParentSeries']}",
        "delete": f"/ui/studies/{stored['ParentStudy']}/delete",
    }
    for name, path in pages.items():
        html = requests.get(server.url + path, timeout=10).text
        crumbs = html.partition('aria-label="Breadcrumb"')[2].partition("</nav>")[0]
        assert "CRUMB, BERT" in html and "CRUMB^BERT" not in crumbs, name
        if name != "instance":      # whose tag tree shows the values as they are
            assert "CRUMB^BERT" not in html, name
    download = requests.get(server.url + f"/ui/studies/{stored['ParentStudy']}/download", timeout=10).text
    assert "2019-03-04" in download and "20190304" not in download
    study = requests.get(server.url + f"/ui/studies/{stored['ParentStudy']}", timeout=10).text
    assert "Referring physician" not in study and "^^^^" not in study
    assert "<dd>2019-03-04 10:10:10</dd>" in study        # StudyTime 101010
