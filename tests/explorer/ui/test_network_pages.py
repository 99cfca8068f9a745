"""Query/retrieve and the modalities admin in the browser, against a real Orthanc 1.10.1 as the remote
modality: add it, echo, search, expand a study into its series, retrieve a study with C-MOVE and a series with
C-GET, and see them arrive. The remote's answers are untrusted: a hostile patient name renders as text."""

from __future__ import annotations

import re

import pytest
import requests

from bench.servers import ORTHANC_BINARY, orthanc_server
from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import free_port, live_server

HOSTILE = "EVIL<script>document.write(666)</script>^<b>X</b>"


def _instances() -> list[bytes]:
    files = [make_dicom(PatientName="DOE^JANE", PatientID="QR-1", StudyInstanceUID="1.2.66.1",
                        StudyDescription="CT CHEST", AccessionNumber="ACC-QR-1", StudyDate="20240105",
                        SeriesInstanceUID=f"1.2.66.1.{s}", SeriesNumber=str(s), Modality="CT",
                        SeriesDescription=f"SERIES {s}", SOPInstanceUID=f"1.2.66.1.{s}.{k}", InstanceNumber=str(k))
             for s in (1, 2) for k in (1, 2)]
    files.append(make_dicom(PatientName=HOSTILE, PatientID="QR-2", StudyInstanceUID="1.2.66.2", Modality="MR",
                            StudyDescription="<b>bold</b>", SeriesInstanceUID="1.2.66.2.1",
                            SOPInstanceUID="1.2.66.2.1.1"))
    return files


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    import os

    if not os.path.exists(ORTHANC_BINARY):
        pytest.skip("no Orthanc binary (apt-get install orthanc)")
    ours_port, remote_port = free_port(), free_port()
    with orthanc_server(dicom_port=remote_port, extra={
            "DicomAet": "REMOTE", "DicomModalities": {"ours": ["OURS", "127.0.0.1", ours_port]}}) as remote, \
            live_server(tmp_path_factory.mktemp("ui-qr"), DicomAet="OURS", DicomPort=ours_port) as ours:
        for data in _instances():
            requests.post(remote + "/instances", data=data, timeout=30).raise_for_status()
        yield {"ours": ours, "remote": remote, "remote_port": remote_port}


def _no_serious_axe(page) -> None:
    violations = axe_violations(page)
    assert violations == [], violations


def _add_modality(page, name: str, aet: str, port: int) -> None:
    page.get_by_role("link", name="Add a modality").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("AET", exact=True).fill(aet)
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(port))
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/ui/modalities\?saved="))


def test_modalities_admin_and_query_retrieve(network, page):
    ours, port = network["ours"], network["remote_port"]
    page.goto(ours.url + "/ui/query")
    assert page.get_by_text("No DICOM modality is known yet").count() == 1
    page.get_by_role("link", name="Add a modality").click()
    page.wait_for_url("**/ui/modalities")
    _no_serious_axe(page)

    # add (the form page passes axe too), then a refused form comes back with its error
    page.get_by_role("link", name="Add a modality").click()
    page.wait_for_url("**/ui/modalities/new")
    _no_serious_axe(page)
    page.goto(ours.url + "/ui/modalities")
    _add_modality(page, "remote", "REMOTE", port)
    assert page.get_by_role("status").first.inner_text() == "Saved modality remote."
    page.get_by_role("link", name="Add a modality").click()
    page.get_by_label("Name").fill("remote")
    page.get_by_label("AET", exact=True).fill("X")
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_role("button", name="Save").click()
    assert "already exists" in page.get_by_role("alert").inner_text()

    # echo from the admin page, a failing echo, edit, remove
    page.goto(ours.url + "/ui/modalities")
    page.get_by_role("button", name="Echo remote").click()
    page.wait_for_selector("#echo-result .echo-ok")
    assert page.locator("#echo-result").inner_text() == "Echo to remote succeeded."
    _add_modality(page, "nobody", "NOBODY", free_port())
    page.get_by_role("button", name="Echo nobody").click()
    page.wait_for_selector("#echo-result .error")
    assert "Echo to nobody failed" in page.locator("#echo-result").inner_text()
    page.get_by_role("link", name="Edit nobody").click()
    page.wait_for_url("**/ui/modalities/nobody/edit")
    assert page.get_by_label("AET", exact=True).input_value() == "NOBODY"
    page.get_by_label("AET", exact=True).fill("NOBODY2")
    page.get_by_label("Use DICOM TLS").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/ui/modalities\?saved=nobody"))
    assert page.locator("table.modalities").get_by_role("cell", name="NOBODY2 TLS").count() == 1
    assert requests.get(ours.url + "/modalities/nobody/configuration", timeout=10).json()["UseDicomTls"] is True
    shot(page, "modalities_admin")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove nobody").click()
    page.wait_for_url(re.compile(r"removed=nobody"))
    assert requests.get(ours.url + "/modalities", timeout=10).json() == ["remote"]

    # query page: echo, search, hostile text inert
    page.goto(ours.url + "/ui/query")
    page.get_by_role("button", name="Echo").click()
    page.wait_for_selector("#echo-result .echo-ok")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("table.qr-studies")
    assert page.get_by_role("status").filter(has_text="found").inner_text() == "2 studies found."
    assert page.title() != "PWNED"
    cells = page.locator("table.qr-studies td")
    assert cells.get_by_text("EVIL<script>document.write(666)</script>, <b>X</b>", exact=True).count() == 1  # text
    assert cells.get_by_text("<b>bold</b>", exact=True).count() == 1
    # The Retrieve buttons stay in view (first column) and the page does not scroll sideways on a phone
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    assert page.get_by_role("button", name=re.compile("^Retrieve")).first.bounding_box()["x"] < 390
    shot(page, "query_results_phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    _no_serious_axe(page)

    page.get_by_label("Patient name").fill("Doe, Jane")        # as the page shows names
    page.get_by_label("Study date from").fill("2024-01-01")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"name=Doe"))
    assert page.locator("tbody.qr-study").count() == 1
    assert "DOE, JANE" in page.locator("tbody.qr-study").inner_text()

    # expand into series
    series_link = page.get_by_role("link", name="Series of DOE, JANE · 2024-01-05 · CT CHEST")
    series_link.click()
    page.wait_for_selector(".qr-series table")
    assert series_link.get_attribute("aria-expanded") == "true"
    series_link.click()                                    # a second click closes them
    page.wait_for_selector(".qr-series table", state="detached")
    assert series_link.get_attribute("aria-expanded") == "false"
    series_link.click()
    page.wait_for_selector(".qr-series table")
    series_rows = page.locator(".qr-series tbody tr")
    assert series_rows.count() == 2
    assert "SERIES 1" in series_rows.nth(0).inner_text() + series_rows.nth(1).inner_text()
    _no_serious_axe(page)

    # retrieve the study with C-MOVE: the transfer box follows the job to Success, with a link to our copy
    assert page.locator("#qr-held-0").inner_text() == ""
    page.get_by_role("button", name="Retrieve DOE, JANE · 2024-01-05 · CT CHEST").click()
    page.wait_for_selector('.transfer[data-state="Success"]', timeout=30_000)
    # and the study's row says the archive now holds it, without a reload
    page.wait_for_selector("#qr-held-0 a", timeout=10_000)
    assert page.locator("#qr-held-0").inner_text() == "In archive"
    # the transfer box says what it brings, under the study's row
    assert page.locator("#qr-transfers-0 .transfer").inner_text().startswith("Web UI: DOE, JANE · 2024-01-05 · CT CHEST Dicom")
    assert requests.get(ours.url + "/instances", timeout=10).json().__len__() == 4
    shot(page, "query_retrieved_study")
    page.locator(".transfer").get_by_role("link", name="Open the retrieved study").click()
    page.wait_for_url("**/ui/studies/*")

    # the other study's only series with C-GET
    page.goto(ours.url + "/ui/query?search=1&modality=remote&patient_id=QR-2")
    page.get_by_role("link", name=re.compile("^Series of EVIL")).click()
    page.wait_for_selector(".qr-series table")
    page.get_by_label(re.compile("^Retrieve method for series")).select_option("C-GET")
    page.get_by_role("button", name=re.compile("^Retrieve series")).click()
    page.wait_for_selector('.transfer[data-state="Success"]', timeout=30_000)
    assert len(requests.get(ours.url + "/instances", timeout=10).json()) == 5
    jobs = requests.get(ours.url + "/jobs?expand", timeout=10).json()
    assert sorted(j["Type"] for j in jobs) == ["DicomGetScu", "DicomMoveScu"]
    assert page.title() != "PWNED"


def test_query_page_reports_an_unreachable_modality(network, page):
    ours = network["ours"]
    requests.put(ours.url + "/modalities/down", json={"AET": "DOWN", "Host": "127.0.0.1", "Port": free_port()},
                 timeout=10).raise_for_status()
    try:
        page.goto(ours.url + "/ui/query?search=1&modality=down")
        alert = page.get_by_role("alert").inner_text()
        assert alert.startswith("The modality does not answer at its address") and "DOWN" in alert
        _no_serious_axe(page)
        page.goto(ours.url + "/ui/query?search=1&modality=down&date_from=2024-02-01&date_to=2024-01-01")
        assert page.get_by_role("alert").inner_text() == "The start date is after the end date."
    finally:
        requests.delete(ours.url + "/modalities/down", timeout=10)
