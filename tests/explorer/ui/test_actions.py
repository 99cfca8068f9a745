"""Download (ZIP, DICOMDIR), modify and anonymize through jobs (issue 8, part 5): a real server, Chromium."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui-actions")) as s:
        s.ids = []
        for i in range(3):
            answer = requests.post(s.url + "/instances", data=make_dicom(
                PatientName="ACTION^ALICE", PatientID="AC-1", StudyInstanceUID="1.2.89.1",
                SeriesInstanceUID=f"1.2.89.1.{1 + i // 2}", SOPInstanceUID=f"1.2.89.1.9.{i}", InstanceNumber=str(i + 1),
                StudyDescription="ACTION STUDY", SeriesDescription=f"SERIES {1 + i // 2}"), timeout=30)
            answer.raise_for_status()
            s.ids.append(answer.json())
        s.study = s.ids[0]["ParentStudy"]
        yield s


def _download(page) -> bytes:
    link = page.get_by_role("link", name=re.compile(r"^Download "))
    link.wait_for(timeout=30_000)
    assert page.locator("#job-bar").get_attribute("value") == "100"
    with page.expect_download() as info:
        link.click()
    return open(info.value.path(), "rb").read()


def test_download_a_study_as_zip(server, page):
    page.goto(f"{server.url}/ui/studies/{server.study}")
    page.get_by_role("link", name="Download…").click()
    assert page.get_by_label("ZIP of the DICOM files").is_checked()
    assert axe_violations(page) == []
    page.get_by_role("button", name="Prepare download").click()
    page.wait_for_url(re.compile(r"/ui/actions/"))
    data = _download(page)
    shot(page, "actions_1_zip_ready")
    assert axe_violations(page) == []
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert len(names) == 3 and all(n.endswith(".dcm") for n in names)


def test_download_a_series_as_dicomdir(server, page):
    page.goto(f"{server.url}/ui/series/{server.ids[2]['ParentSeries']}")
    page.get_by_role("link", name="Download…").click()
    page.get_by_label("DICOMDIR media").check()
    page.get_by_role("button", name="Prepare download").click()
    data = _download(page)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "DICOMDIR" in names and len(names) == 2


def test_anonymize_a_study_and_open_the_new_one(server, page):
    page.goto(f"{server.url}/ui/studies/{server.study}")
    page.get_by_role("link", name="Anonymize…").click()
    page.wait_for_url(re.compile(r"/anonymize$"))     # axe is injected into the form's page, not the one leaving
    assert axe_violations(page) == []
    page.get_by_label("Patient name").fill("ANON^UI")
    page.get_by_label("Study description", exact=True).check()
    page.get_by_label("DICOM version of the profile").select_option("2021b")
    shot(page, "actions_2_anonymize_form")
    page.get_by_role("button", name="Anonymize").click()
    page.wait_for_url(re.compile(r"/ui/actions/"))
    page.get_by_role("link", name="Open the new study").click(timeout=30_000)
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != server.study
    assert page.locator("h1").inner_text() == "ACTION STUDY"          # kept
    assert "ANON, UI" in page.locator("dl.facts").inner_text()     # shown as the lists show names
    study = requests.get(f"{server.url}/studies/{new_id}", timeout=10).json()
    assert study["PatientMainDicomTags"]["PatientName"] == "ANON^UI"
    assert len(study["Series"]) == 2
    assert requests.get(f"{server.url}/studies/{server.study}", timeout=10).status_code == 200   # source kept


def test_modify_a_series(server, page):
    series = server.ids[0]["ParentSeries"]
    page.goto(f"{server.url}/ui/series/{series}/modify")
    assert axe_violations(page) == []
    page.get_by_label("Series description").fill("RENAMED <b>SERIES</b>")
    page.get_by_label("Keep the original series").uncheck()
    page.get_by_role("button", name="Modify").click()
    page.get_by_role("link", name="Open the new series").click(timeout=30_000)
    assert page.locator("h1").inner_text() == "RENAMED <b>SERIES</b>"   # text, not markup
    assert requests.get(f"{server.url}/series/{series}", timeout=10).status_code == 404


def test_modify_the_patient_id_of_a_study(server, page):
    """A new Patient ID implies Orthanc's "Force"; the copy goes to the new patient."""
    page.goto(f"{server.url}/ui/studies/{server.study}/modify")
    page.get_by_label("Patient ID", exact=True).fill("NEW-ID")
    page.get_by_role("button", name="Modify").click()
    page.get_by_role("link", name="Open the new study").click(timeout=30_000)
    assert "NEW-ID" in page.locator("dl.facts").inner_text()


def test_a_refused_anonymization_is_shown_on_the_form(server, page):
    page.goto(f"{server.url}/ui/studies/{server.study}/anonymize")
    page.get_by_label("Patient name").fill("KEPT^IN^FORM")
    # a version the server does not know, as a hand-made request would send it
    page.eval_on_selector("select[name=DicomVersion]", "s => { s.add(new Option('1999', '1999')); s.value = '1999'; }")
    page.get_by_role("button", name="Anonymize").click()
    alert = page.locator("#modify-error")
    assert "Unknown specific version of the DICOM standard: 1999" in alert.inner_text()
    assert page.get_by_label("Patient name").input_value() == "KEPT^IN^FORM"
    assert axe_violations(page) == []


def test_a_study_refused_for_its_patient_tags_is_shown_on_the_form(server, page):
    """Orthanc 1.11.3's check: a patient's tags are shared by her studies; one study cannot change them."""
    studies = []
    for k in range(2):
        answer = requests.post(server.url + "/instances", data=make_dicom(
            PatientName="TWO^STUDIES", PatientID="AC-2", StudyInstanceUID=f"1.2.89.2.{k}",
            SeriesInstanceUID=f"1.2.89.2.{k}.1", SOPInstanceUID=f"1.2.89.2.{k}.1.1"), timeout=30)
        studies.append(answer.json()["ParentStudy"])
    page.goto(f"{server.url}/ui/studies/{studies[0]}/modify")
    page.get_by_label("Patient name").fill("RENAMED")
    page.get_by_role("button", name="Modify").click()
    alert = page.locator("#modify-error")
    assert "The Patient already exists and has other studies" in alert.inner_text()
    assert "Failing tag: 0010,0010" in alert.inner_text()
    shot(page, "actions_refused_patient_tags")
    assert page.get_by_label("Patient name").input_value() == "RENAMED"
    assert axe_violations(page) == []


def test_unknown_job_is_a_404_page(server, page):
    answer = page.goto(f"{server.url}/ui/actions/no-such-job")
    assert answer.status == 404


def test_modify_with_remove_and_transcode_runs_the_rest_job(server, page):
    """Remove (tags, and the private ones) and Transcode go into the same ResourceModification job as
    POST /studies/{id}/modify with those fields."""
    stored = requests.post(server.url + "/instances", data=make_dicom(
        PatientName="REMOVE^RITA", PatientID="RM-1", StudyInstanceUID="1.2.89.7", SeriesInstanceUID="1.2.89.7.1",
        InstitutionName="SECRET HOSPITAL", StationName="STATION 9", StudyDescription="REMOVE ME"), timeout=30)
    stored.raise_for_status()
    study = stored.json()["ParentStudy"]
    page.goto(f"{server.url}/ui/studies/{study}/modify")
    page.get_by_label("Tags to remove").fill("InstitutionName\n0008,1010")
    page.get_by_label("Remove the private tags").check()
    page.get_by_label("Transfer syntax of the new files").select_option("1.2.840.10008.1.2.5")   # RLE Lossless
    assert axe_violations(page) == []
    shot(page, "modify_remove_transcode_form")
    page.get_by_role("button", name="Modify").click()
    page.get_by_role("link", name="Open the new study").click(timeout=30_000)
    new_study = page.url.rsplit("/", 1)[1]
    assert new_study != study
    job = requests.get(server.url + "/jobs?expand", timeout=10).json()
    mine = [j for j in job if j["Type"] == "ResourceModification" and j["State"] == "Success"
            and j["Content"].get("ID") == new_study]
    assert len(mine) == 1
    instance = requests.get(f"{server.url}/studies/{new_study}/instances", timeout=10).json()[0]["ID"]
    tags = requests.get(f"{server.url}/instances/{instance}/tags?simplify", timeout=10).json()
    assert "InstitutionName" not in tags and "StationName" not in tags
    assert tags["StudyDescription"] == "REMOVE ME"
    syntax = requests.get(f"{server.url}/instances/{instance}/metadata/TransferSyntax", timeout=10).text
    assert syntax == "1.2.840.10008.1.2.5"


def test_a_refused_remove_is_shown_on_the_form(server, page):
    page.goto(f"{server.url}/ui/studies/{server.study}/modify")
    page.get_by_label("Tags to remove").fill("NoSuchKeyword")
    page.get_by_role("button", name="Modify").click()
    alert = page.locator("#modify-error")
    assert "Unknown DICOM tag" in alert.inner_text()                   # Orthanc's refusal
    assert page.get_by_label("Tags to remove").input_value() == "NoSuchKeyword"
    assert axe_violations(page) == []
