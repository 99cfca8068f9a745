"""OrthancExplorerEnabled false: the web UI is gone (Orthanc's 404 for an unknown URI, as Orthanc answers
/app/explorer.html), the REST API keeps working. A real server, Chromium."""

from __future__ import annotations

import pytest
import requests

from tests.dicom_factory import make_dicom
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("ui-disabled"), OrthancExplorerEnabled=False) as s:
        answer = requests.post(s.url + "/instances", data=make_dicom(PatientName="OFF^OSCAR", PatientID="OFF-1"),
                               timeout=30)
        answer.raise_for_status()
        s.ids = answer.json()
        yield s


def test_ui_pages_are_unknown_and_the_api_works(server, page):
    answer = page.goto(server.url + "/ui/")
    assert answer.status == 404
    assert answer.json()["OrthancStatus"] == 17                      # Orthanc's body, not an HTML page
    for path in ("/ui/jobs", "/ui/upload", f"/ui/studies/{server.ids['ParentStudy']}", "/ui/no/such/page"):
        got = requests.get(server.url + path, timeout=10)
        assert got.status_code == 404 and got.json()["HttpError"] == "Not Found", path
    refused = requests.post(server.url + f"/ui/studies/{server.ids['ParentStudy']}/labels", data={"name": "x"},
                            timeout=10)
    assert refused.status_code in (403, 404)
    assert requests.get(server.url + "/", allow_redirects=False, timeout=10).status_code == 404
    # the REST API is not affected
    assert requests.get(server.url + "/system", timeout=10).status_code == 200
    assert requests.get(server.url + f"/studies/{server.ids['ParentStudy']}", timeout=10).status_code == 200
    assert requests.put(server.url + f"/studies/{server.ids['ParentStudy']}/labels/still-works",
                        timeout=10).status_code == 200
