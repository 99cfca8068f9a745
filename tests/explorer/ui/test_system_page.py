"""The system page: statistics, disk use, version and a configuration summary without secrets."""

from __future__ import annotations

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations
from tests.live import live_server

SECRET = "s3cr3t-Passw0rd"
PEER_SECRET = "peer-Secr3t-42"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui-system"), RegisteredUsers={"alice": SECRET},
                     OrthancPeers={"other": {"Url": "http://127.0.0.1:9/", "Username": "bob",
                                             "Password": PEER_SECRET}},
                     DicomModalities={"pacs": ["PACS", "127.0.0.1", 11112]}) as s:
        for k in range(2):
            requests.post(s.url + "/instances", data=make_dicom(PatientID=f"SYS-{k}", StudyInstanceUID=f"1.2.88.{k}",
                                                                SeriesInstanceUID=f"1.2.88.{k}.1"),
                          timeout=30).raise_for_status()
        yield s


def test_system_page_shows_counts_version_and_no_secret(server, page):
    page.goto(server.url + "/ui/system")
    assert page.locator("h1").inner_text() == "System"
    assert page.locator('[data-stat="patients"]').inner_text() == "2"
    assert page.locator('[data-stat="instances"]').inner_text() == "2"
    assert page.get_by_text("1.12.11").count() >= 1
    assert page.get_by_label("Disk use of the storage area").count() == 1
    html = page.content()
    assert "alice" in html and "(passwords hidden)" in html
    assert "PACS at 127.0.0.1:11112" in html and "bob" in html
    assert SECRET not in html and PEER_SECRET not in html
    assert axe_violations(page) == []
