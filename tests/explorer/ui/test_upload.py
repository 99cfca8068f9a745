"""The upload page (issue 8, part 4): files, a ZIP and a drop sent to POST /instances with progress, and the
summary; the same page without JavaScript. A real server, Chromium."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui-upload")) as s:
        yield s


def _dicom(i: int, study: str = "1.2.90.1", **tags) -> bytes:
    return make_dicom(PatientName="UPLOAD^ULLA", PatientID="UP-1", StudyInstanceUID=study,
                      SeriesInstanceUID=f"{study}.1", SOPInstanceUID=f"{study}.1.{i}", InstanceNumber=str(i),
                      StudyDescription="UPLOADED <script>alert(1)</script>", **tags)


def _count(page, key: str) -> str:
    return page.locator(f'#upload-summary [data-count="{key}"]').inner_text()


def test_upload_files_and_a_zip_with_progress_and_summary(server, page, tmp_path):
    paths = []
    for i in range(1, 4):
        path = tmp_path / f"image-{i}.dcm"
        path.write_bytes(_dicom(i))
        paths.append(path)
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/one.dcm", _dicom(10, study="1.2.90.2"))
        z.writestr("a/two.dcm", _dicom(11, study="1.2.90.2"))
        z.writestr("a/image-1.dcm", _dicom(1))          # already stored by the first batch... or about to be
    junk = tmp_path / "notes.txt"
    junk.write_text("not a DICOM file")

    page.goto(server.url + "/ui/upload")
    assert page.locator("#upload-submit").is_hidden()      # with JavaScript, choosing starts the upload
    assert axe_violations(page) == []
    page.get_by_label("DICOM files or ZIP archives").set_input_files([*paths, junk])
    page.wait_for_function("document.getElementById('upload-overall-text').textContent.includes('done')")
    assert _count(page, "stored") == "3" and _count(page, "refused") == "1"
    assert "notes.txt" in page.locator("#upload-refused").inner_text()
    page.get_by_label("DICOM files or ZIP archives").set_input_files([archive])
    page.wait_for_function("document.getElementById('upload-overall-text').textContent.startsWith('5 of 5')")
    page.wait_for_function("document.getElementById('upload-overall-text').textContent.includes('done')")
    assert _count(page, "stored") == "5" and _count(page, "already") == "1"
    rows = page.locator("#upload-files-list li")
    assert rows.count() == 5
    assert page.locator("#upload-files-list li", has_text="more.zip").locator(".result").inner_text() == \
        "2 stored, 1 already stored"
    # each bar full, and the overall one
    assert page.eval_on_selector_all("#upload-files-list progress", "bs => bs.every(b => b.value === b.max)")
    assert page.eval_on_selector("#upload-overall", "b => b.value === b.max")
    # links to the studies stored, named once their tags arrive; the description stays text
    links = page.locator("#upload-studies a")
    assert links.count() == 2
    page.wait_for_function("[...document.querySelectorAll('#upload-studies a')].every(a => a.textContent.includes('UPLOAD'))")
    assert "<script>alert(1)</script>" in links.first.inner_text()
    assert links.first.inner_text().startswith("UPLOAD, ULLA · ") and links.first.inner_text().endswith(" · 2024-01-02")
    assert axe_violations(page) == []
    shot(page, "upload_1_summary")
    links.first.click()
    assert page.locator("h1").inner_text() == "UPLOADED <script>alert(1)</script>"
    assert len(requests.get(server.url + "/instances", timeout=10).json()) == 5


def test_drop_files_on_the_zone(server, page):
    page.goto(server.url + "/ui/upload")
    payload = base64.b64encode(_dicom(1, study="1.2.90.3")).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped.dcm', {type: 'application/dicom'}));
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", payload)
    page.wait_for_function("document.getElementById('upload-overall-text').textContent.includes('done')")
    assert _count(page, "stored") == "1"
    assert "dropped.dcm" in page.locator("#upload-files-list").inner_text()


def test_upload_without_javascript(server, browser, tmp_path):
    """The plain form posts the files to the page, which stores them and shows the same summary."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        one = tmp_path / "nojs.dcm"
        one.write_bytes(_dicom(1, study="1.2.90.4"))
        bundle = tmp_path / "nojs.zip"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("x.dcm", _dicom(2, study="1.2.90.4"))
            z.writestr("y.dcm", _dicom(1, study="1.2.90.4"))
        bundle.write_bytes(buffer.getvalue())
        bad = tmp_path / "bad.dcm"
        bad.write_bytes(b"garbage")
        page.goto(server.url + "/ui/upload")
        page.get_by_label("DICOM files or ZIP archives").set_input_files([one, bundle, bad])
        page.get_by_role("button", name="Upload").click()
        assert _count(page, "stored") == "2" and _count(page, "already") == "1" and _count(page, "refused") == "1"
        assert "bad.dcm" in page.locator("#upload-refused").inner_text()
        assert page.locator("#upload-studies a").count() == 1
    finally:
        context.close()
