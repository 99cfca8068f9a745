from __future__ import annotations

import pytest
from django.conf import settings

from explorer.api.system import system_info
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db

# The fields of /system in Orthanc 1.12.11 (the 1.10.1 recording's, plus the 1.11.0 to 1.12.11 additions).
SYSTEM_FIELDS = {
    "ApiVersion", "Capabilities", "CheckRevisions", "DatabaseBackendPlugin", "DatabaseServerIdentifier",
    "DatabaseVersion", "DicomAet", "DicomDefaultRetrieveMethod", "DicomPort", "HasLabels", "HttpPort",
    "IngestTranscoding", "IsHttpServerSecure", "MainDicomTags", "MaximumPatientCount", "MaximumStorageMode",
    "MaximumStorageSize", "Name", "OverwriteInstances", "PatientLevelEnabled", "PluginsEnabled", "ReadOnly",
    "StorageAreaPlugin", "StorageCompression", "UserMetadata", "Version",
}


def upload(client, **tags):
    response = client.generic("POST", "/instances", make_dicom(**tags), content_type="application/dicom")
    assert response.status_code == 200
    return response.json()


def test_system_has_the_fields_of_orthanc_1_12_11(client):
    body = client.get("/system").json()
    assert set(body) == SYSTEM_FIELDS
    assert list(body) == sorted(body)
    assert (body["Version"], body["ApiVersion"], body["DatabaseVersion"]) == ("1.12.11", 30, 6)


def test_system_reports_the_configuration(client, orthanc_config):
    orthanc_config(Name="PACS", DicomAet="ARCHIVE", DicomPort=11112, HttpPort=8043, OverwriteInstances=True,
                   StorageCompression=True, MaximumStorageSize=100, MaximumPatientCount=5,
                   MaximumStorageMode="Reject", UserMetadata={"Sample": 1024}, CheckRevisions=True,
                   DicomDefaultRetrieveMethod="C-GET")
    body = client.get("/system").json()
    assert {k: body[k] for k in ("Name", "DicomAet", "DicomPort", "HttpPort")} == {
        "Name": "PACS", "DicomAet": "ARCHIVE", "DicomPort": 11112, "HttpPort": 8043}
    assert (body["OverwriteInstances"], body["StorageCompression"], body["CheckRevisions"]) == (True, True, True)
    assert (body["MaximumStorageSize"], body["MaximumPatientCount"], body["MaximumStorageMode"]) == (
        100, 5, "Reject")
    assert body["UserMetadata"] == {"Sample": 1024}
    assert body["DicomDefaultRetrieveMethod"] == "C-GET"


def test_system_claims_only_what_works(client):
    body = client.get("/system").json()
    assert body["Capabilities"] == {"HasExtendedChanges": True, "HasExtendedFind": True,
                                    "HasKeyValueStores": False, "HasQueues": False,
                                    "HasReserveQueueValue": False}
    assert body["HasLabels"] is True
    assert (body["StorageAreaPlugin"], body["DatabaseBackendPlugin"], body["PluginsEnabled"]) == (
        None, None, False)
    assert (body["ReadOnly"], body["IngestTranscoding"], body["PatientLevelEnabled"]) == (False, "", True)


def test_main_dicom_tags_are_signatures_per_level(client):
    tags = client.get("/system").json()["MainDicomTags"]
    assert list(tags) == ["Instance", "Patient", "Series", "Study"]
    assert tags["Patient"] == "0010,0010;0010,0020;0010,0030;0010,0040;0010,1000"
    assert tags["Study"].startswith("0008,0020;0008,0030;0008,0050;")
    assert "0020,000d" in tags["Study"].split(";")


def test_extra_main_dicom_tags_join_the_signature(client, orthanc_config):
    orthanc_config(ExtraMainDicomTags={"Instance": ["Rows", "0028,0011"]})
    instance = client.get("/system").json()["MainDicomTags"]["Instance"].split(";")
    assert "0028,0010" in instance and "0028,0011" in instance
    assert instance == sorted(instance)


@pytest.mark.parametrize(("options", "secure"), [
    ({"RemoteAccessAllowed": False, "AuthenticationEnabled": False}, True),
    ({"RemoteAccessAllowed": True, "AuthenticationEnabled": False}, False),
    ({"RemoteAccessAllowed": True, "AuthenticationEnabled": True}, True),
])
def test_is_http_server_secure(orthanc_config, options, secure):
    orthanc_config(**options)
    assert system_info()["IsHttpServerSecure"] is secure


def test_database_server_identifier_option(client, orthanc_config):
    default = client.get("/system").json()["DatabaseServerIdentifier"]
    assert len(default) == 40
    orthanc_config(DatabaseServerIdentifier="Orthanc1")
    assert client.get("/system").json()["DatabaseServerIdentifier"] == "Orthanc1"


def test_statistics_count_and_size(client):
    assert client.get("/statistics").json() == {
        "CountInstances": 0, "CountPatients": 0, "CountSeries": 0, "CountStudies": 0,
        "TotalDiskSize": "0", "TotalDiskSizeMB": 0, "TotalUncompressedSize": "0", "TotalUncompressedSizeMB": 0}
    upload(client, PatientID="A", StudyInstanceUID="1.1", SeriesInstanceUID="1.1.1")
    upload(client, PatientID="B", StudyInstanceUID="2.1", SeriesInstanceUID="2.1.1")
    body = client.get("/statistics").json()
    assert (body["CountPatients"], body["CountStudies"], body["CountSeries"], body["CountInstances"]) == (2, 2, 2, 2)
    assert int(body["TotalDiskSize"]) > 0 and body["TotalDiskSize"] == body["TotalUncompressedSize"]


def test_plugins_lists_the_explorer_extensions_as_orthanc_does(client):
    assert client.get("/plugins").json() == ["explorer.js"]
    response = client.get("/plugins/explorer.js")
    assert response["Content-Type"] == "application/javascript"
    assert response.content == b"// Extensions to Orthanc Explorer by the registered plugins\n\n"


def test_unknown_plugin_is_a_bare_404(client):
    response = client.get("/plugins/dicom-web")
    assert response.status_code == 404 and response.content == b""


def test_root_redirects_to_the_web_ui(client):
    response = client.get("/")
    assert response.status_code == 301
    assert response["Location"] == "ui/"
    assert response.content == b""


def test_orthanc_explorers_bookmarked_page_leads_to_the_web_ui(client, orthanc_config):
    response = client.get("/app/explorer.html")
    assert (response.status_code, response["Location"], response.content) == (301, "../ui/", b"")
    assert client.get("/ui/").status_code == 200     # where ../ui/ from /app/explorer.html leads
    orthanc_config(OrthancExplorerEnabled=False)
    assert client.get("/app/explorer.html").status_code == 404


def test_root_is_unknown_when_the_explorer_is_disabled(client, orthanc_config):
    orthanc_config(OrthancExplorerEnabled=False)
    response = client.get("/")
    assert response.status_code == 404
    assert response.json()["OrthancStatus"] == 17


def test_favicon_redirects_to_the_explorers_icon_as_orthanc(client):
    # Real Orthanc 1.10.1: GET /favicon.ico is a bare 301 to app/images/favicon.ico, an image/x-icon
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"], response.content) == (301, "app/images/favicon.ico", b"")
    assert "Content-Type" not in response
    icon = client.get("/app/images/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/x-icon"
    body = icon.content
    assert body[:4] == b"\x00\x00\x01\x00"      # an ICO header (type 1: icon)
    assert body == (settings.BASE_DIR / "static" / "ui" / "favicon.ico").read_bytes()


def test_favicon_is_unknown_when_the_explorer_is_disabled(client, orthanc_config):
    orthanc_config(OrthancExplorerEnabled=False)
    for uri in ("/favicon.ico", "/app/images/favicon.ico"):
        response = client.get(uri)
        assert response.status_code == 404
        assert response.json()["OrthancStatus"] == 17


@pytest.mark.parametrize("uri", ["/system", "/statistics", "/plugins"])
def test_system_routes_are_read_only(client, uri):
    response = client.post(uri)
    assert response.status_code == 405
    assert response["Allow"] == "GET"


@pytest.mark.parametrize(("method", "status"), [("OPTIONS", 404), ("HEAD", 404), ("PATCH", 400), ("TRACE", 400)])
def test_methods_orthanc_does_not_know_get_its_bare_answers(client, method, status):
    response = client.generic(method, "/system")
    assert (response.status_code, response.content) == (status, b"")


@pytest.mark.parametrize(("method", "uri"), [("HEAD", "/system"), ("PATCH", "/system"), ("GET", "/health"),
                                             ("GET", "/system")])
def test_answers_declare_their_length_even_from_middlewares(client, method, uri):
    """Orthanc sends Content-Length on every answer (0 on its bare ones): the answers our middlewares give by
    themselves went out chunked, and curl -X HEAD waited for a body."""
    response = client.generic(method, uri)
    assert response["Content-Length"] == str(len(response.content))


def test_a_refused_client_gets_a_length_too(client, orthanc_config):
    orthanc_config(RemoteAccessAllowed=False)
    response = client.get("/system", REMOTE_ADDR="192.0.2.7")
    assert (response.status_code, response["Content-Length"]) == (401, "0")


def test_json_answers_say_their_charset_as_orthanc(client):
    """Orthanc 1.10.1's JSON answers (seen with curl on /system, the lists, /tools/find) are
    ``application/json; charset=utf-8``; the error bodies stay application/json."""
    assert client.get("/system")["Content-Type"] == "application/json; charset=utf-8"
    assert client.get("/patients?expand")["Content-Type"] == "application/json; charset=utf-8"
    found = client.post("/tools/find", {"Level": "Study", "Query": {}}, content_type="application/json")
    assert found["Content-Type"] == "application/json; charset=utf-8"
    bad = client.post("/tools/find", {"Level": "Stud", "Query": {}}, content_type="application/json")
    assert (bad.status_code, bad["Content-Type"]) == (400, "application/json")


def test_answers_carry_no_allow_header_outside_405(client):
    assert "Allow" not in client.get("/system")


def test_every_answer_says_nosniff_and_empty_errors_declare_no_type(client):
    """Orthanc >= 1.12.2 sends X-Content-Type-Options: nosniff on every answer; its empty 405 and bare 404
    carry no Content-Type (ours said text/html)."""
    answers = {"system": client.get("/system"), "405": client.post("/changes"),
               "unknown": client.get("/patients/nope"), "bad method": client.generic("PATCH", "/system")}
    assert all(a["X-Content-Type-Options"] == "nosniff" for a in answers.values())
    for name in ("405", "bad method"):
        assert answers[name].content == b"" and "Content-Type" not in answers[name], name


def test_a_422_error_says_unprocessable_entity():
    """A failed C-FIND/C-MOVE of a remote is 422 "Unprocessable Entity" in Orthanc (ours said Internal Server
    Error: orthanc-api-client reads the text)."""
    from django.test import RequestFactory

    from archive.errors import OrthancError
    from explorer.api.errors import error_body

    body = error_body(RequestFactory().post("/modalities/x/query"), OrthancError.NETWORK_PROTOCOL, status=422)
    assert (body["HttpError"], body["HttpStatus"], body["OrthancStatus"]) == ("Unprocessable Entity", 422, 9)
