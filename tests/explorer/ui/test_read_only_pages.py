"""The UI of a ReadOnly server (Orthanc 1.12.5): browse, view and download, nothing that writes. A real server
filled by an earlier run, started again with ReadOnly; Chromium."""

from __future__ import annotations

import os
import signal

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import _start, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-read-only")
    with live_server(tmp, DicomServerEnabled=False) as first:
        answer = requests.post(first.url + "/instances", data=make_dicom(
            PatientName="READ^ONLY", PatientID="RO-1", StudyDescription="FROZEN STUDY"), timeout=30)
        answer.raise_for_status()
        requests.put(f"{first.url}/studies/{answer.json()['ParentStudy']}/labels/kept", timeout=10).raise_for_status()
        os.killpg(first.process.pid, signal.SIGTERM)
        first.process.wait(timeout=20)
        server = _start(tmp, {**first.config, "ReadOnly": True}, first.database_url)
        server.ids = answer.json()
        try:
            yield server
        finally:
            os.killpg(server.process.pid, signal.SIGTERM)
            server.process.wait(timeout=20)


def test_study_page_shows_no_control_that_writes(server, page):
    study = server.ids["ParentStudy"]
    page.goto(f"{server.url}/ui/studies/{study}")
    assert page.get_by_role("status").filter(has_text="read-only").is_visible()
    actions = page.locator(".actions")
    assert actions.get_by_role("link", name="Download…").is_visible()
    for name in ("Modify…", "Anonymize…", "Delete study…"):
        assert actions.get_by_role("link", name=name).count() == 0
    assert page.get_by_role("button", name="Protect patient").count() == 0
    labels = page.locator("#labels-study")
    assert labels.get_by_text("kept").is_visible()
    assert labels.locator("form").count() == 0
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Upload").count() == 0
    assert axe_violations(page) == []
    shot(page, "read_only_study")


def test_upload_page_says_uploads_are_off(server, page):
    page.goto(f"{server.url}/ui/upload")
    assert page.get_by_text("Uploads are off: this server is read-only.").is_visible()
    assert page.locator("input[type=file]").count() == 0


def test_a_write_sent_anyway_gets_an_error_page_and_changes_nothing(server):
    study = server.ids["ParentStudy"]
    session = requests.Session()
    form = session.get(f"{server.url}/ui/studies/{study}/delete", timeout=10)
    token = session.cookies.get("csrftoken")
    response = session.post(f"{server.url}/ui/studies/{study}/delete", data={"csrfmiddlewaretoken": token},
                            headers={"Referer": form.url}, timeout=10, allow_redirects=False)
    assert response.status_code == 403
    assert "ReadOnly" in response.text
    assert requests.get(f"{server.url}/studies/{study}", timeout=10).status_code == 200
