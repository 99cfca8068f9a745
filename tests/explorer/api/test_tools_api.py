from __future__ import annotations

import datetime as dt
import re

import pytest

from archive import runtime
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_runtime():
    runtime.runtime_reset()
    yield
    runtime.runtime_reset()


def put(client, uri: str, body: str, content_type: str = "text/plain"):
    return client.generic("PUT", uri, body.encode(), content_type=content_type)


def upload(client, **tags) -> dict:
    response = client.generic("POST", "/instances", make_dicom(**tags), content_type="application/dicom")
    assert response.status_code == 200
    return response.json()


def assert_text(response, text: str, content_type: str = "text/plain"):
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response.content.decode() == text


def assert_error(response, status: int, orthanc_status: int, details: str | None = None):
    assert response.status_code == status
    body = response.json()
    assert body["OrthancStatus"] == orthanc_status
    assert body.get("Details") == details


def test_tools_lists_its_operations(client):
    names = client.get("/tools").json()
    assert names == sorted(names)
    assert {"now", "now-local", "generate-uid", "lookup", "log-level-http", "metrics-prometheus"} <= set(names)


@pytest.mark.parametrize("uri", ["/tools/now", "/tools/now-local"])
def test_now_is_orthanc_timestamp_text(client, uri):
    response = client.get(uri)
    assert response["Content-Type"] == "text/plain"
    assert re.fullmatch(r"\d{8}T\d{6}", response.content.decode())


def test_now_is_utc(client):
    answer = dt.datetime.strptime(client.get("/tools/now").content.decode(), "%Y%m%dT%H%M%S")
    assert abs(answer.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_generate_uid_is_a_valid_unique_uid(client, level):
    uids = {client.get(f"/tools/generate-uid?level={level}").content.decode() for _ in range(3)}
    assert len(uids) == 3
    for uid in uids:
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", uid) and len(uid) <= 64


def test_generate_uid_for_patient_is_a_uuid(client):
    text = client.get("/tools/generate-uid?level=patient").content.decode()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", text)


@pytest.mark.parametrize("query", ["", "?level=Study", "?level=frame"])
def test_generate_uid_without_a_known_level_is_a_bare_404(client, query):
    response = client.get(f"/tools/generate-uid{query}")
    assert response.status_code == 404 and response.content == b""


def test_default_encoding_get_and_put(client):
    assert_text(client.get("/tools/default-encoding"), "Latin1")
    assert_text(put(client, "/tools/default-encoding", "utf8"), "Utf8")
    assert_text(client.get("/tools/default-encoding"), "Utf8")


@pytest.mark.parametrize("body", ["Bogus", "Utf8\n", "ISO_IR 192"])
def test_default_encoding_refuses_unknown_names(client, body):
    assert_error(put(client, "/tools/default-encoding", body), 400, 3)


def test_accepted_transfer_syntaxes_default_is_the_recorded_list_plus_htj2k(client):
    from tests.samples import golden

    answer = client.get("/tools/accepted-transfer-syntaxes").json()
    recorded = golden()["GET /tools/accepted-transfer-syntaxes"]["json"]
    assert [ts for ts in answer if ts not in recorded] == [
        "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"]
    assert [ts for ts in answer if ts in recorded] == recorded


def test_accepted_transfer_syntaxes_put_json_array(client):
    response = put(client, "/tools/accepted-transfer-syntaxes", '["1.2.840.10008.1.2", "1.2.840.10008.1.2.4.5?"]',
                   content_type="application/json")
    assert response.json() == ["1.2.840.10008.1.2"] + [f"1.2.840.10008.1.2.4.5{n}" for n in range(10)]
    assert client.get("/tools/accepted-transfer-syntaxes").json() == response.json()


def test_accepted_transfer_syntaxes_put_text_pattern(client):
    assert put(client, "/tools/accepted-transfer-syntaxes", "*").json()[0] == "1.2.840.10008.1.2"
    assert put(client, "/tools/accepted-transfer-syntaxes", "1.2.840.10008.1.2.1").json() == [
        "1.2.840.10008.1.2.1"]
    assert put(client, "/tools/accepted-transfer-syntaxes", "bogus").json() == []


@pytest.mark.parametrize("body", ["5", "true", '[1, 2]', '{"a": 1}'])
def test_accepted_transfer_syntaxes_refuses_other_json(client, body):
    assert_error(put(client, "/tools/accepted-transfer-syntaxes", body), 400, 15)


def test_accepted_transfer_syntaxes_takes_no_post(client):
    assert client.post("/tools/accepted-transfer-syntaxes", "x", content_type="text/plain").status_code == 405


def test_accepted_sop_classes(client):
    answer = client.get("/tools/accepted-sop-classes").json()
    assert "1.2.840.10008.5.1.4.1.1.2" in answer and answer == sorted(answer)


def test_unknown_sop_class_accepted_is_text(client):
    assert_text(client.get("/tools/unknown-sop-class-accepted"), "0")
    assert_text(put(client, "/tools/unknown-sop-class-accepted", "true"), "")
    assert_text(client.get("/tools/unknown-sop-class-accepted"), "1")


def test_unknown_sop_class_accepted_wants_a_boolean(client):
    assert_error(put(client, "/tools/unknown-sop-class-accepted", "yes"), 400, 15, "Boolean value expected")


def test_dicom_conformance_is_text(client):
    response = client.get("/tools/dicom-conformance")
    assert response["Content-Type"] == "text/plain"
    assert b"Conformance Statement" in response.content
    # the services the DICOM server runs (it said "None yet" long after they existed)
    for service in (b"C-ECHO", b"C-STORE", b"C-FIND", b"C-MOVE", b"C-GET", b"1.2.840.10008.1.20.1", b"DICOM TLS"):
        assert service in response.content
    assert b"None yet" not in response.content


def test_log_level_defaults(client):
    assert_text(client.get("/tools/log-level"), "default")
    assert_text(client.get("/tools/log-level-sqlite"), "default")


def test_main_log_level_sets_every_category(client):
    assert_text(put(client, "/tools/log-level", "verbose"), "")
    for category in ("dicom", "generic", "http", "jobs", "lua", "plugins", "sqlite"):
        assert_text(client.get(f"/tools/log-level-{category}"), "verbose")


def test_main_log_level_is_the_most_verbose_category(client):
    put(client, "/tools/log-level-http", "trace")
    assert_text(client.get("/tools/log-level"), "trace")
    assert_text(client.get("/tools/log-level-dicom"), "default")


@pytest.mark.parametrize("body", ["Verbose", "verbose\n", "debug"])
def test_log_level_values_are_exact(client, body):
    response = put(client, "/tools/log-level-jobs", body)
    assert_error(response, 400, 3, f'Verbosity can be "default", "verbose" or "trace": {body}')


def test_unknown_log_category_is_an_unknown_resource(client):
    assert_error(client.get("/tools/log-level-bogus"), 404, 17)


def test_log_level_routes_take_get_and_put_only(client):
    response = client.delete("/tools/log-level")
    assert response.status_code == 405 and "PUT" in response["Allow"]


def test_metrics_switch_is_text(client):
    assert_text(client.get("/tools/metrics"), "1")
    assert_text(put(client, "/tools/metrics", "0"), "")
    assert_text(client.get("/tools/metrics"), "0")
    assert_error(put(client, "/tools/metrics", "off"), 400, 15, "Boolean value expected")


def test_prometheus_metrics(client):
    from archive.changes import change_last_index

    base = change_last_index()
    upload(client, PatientID="A")
    response = client.get("/tools/metrics-prometheus")
    assert response["Content-Type"] == "text/plain; version=0.0.4"
    lines = response.content.decode().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(names)
    values = {line.split()[0]: line.split()[1] for line in lines}
    assert values["orthanc_count_instances"] == "1" and values["orthanc_count_patients"] == "1"
    assert values["orthanc_last_change"] == str(base + 4)
    assert float(values["orthanc_disk_size_mb"]) > 0
    assert all(re.fullmatch(r"\S+ \S+ \d{13}", line) for line in lines)


def test_prometheus_metrics_when_disabled_is_empty(client):
    put(client, "/tools/metrics", "0")
    response = client.get("/tools/metrics-prometheus")
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Type"] == "text/plain; version=0.0.4"


def test_prometheus_floats_as_orthanc_prints_them():
    from explorer.api.tools import _mb, prometheus_text

    assert prometheus_text({"b": _mb("6848"), "a": 3}, timestamp_ms=1) == "a 3 1\nb 0.00653076172 1\n"


def test_lookup_finds_every_level(client):
    ids = upload(client, PatientID="LK", StudyInstanceUID="5.6", SeriesInstanceUID="5.6.7",
                 SOPInstanceUID="5.6.7.8")
    for value, kind, public_id in [("LK", "Patient", ids["ParentPatient"]),
                                   ("5.6", "Study", ids["ParentStudy"]),
                                   ("5.6.7", "Series", ids["ParentSeries"]),
                                   ("5.6.7.8\n", "Instance", ids["ID"])]:
        answer = client.post("/tools/lookup", value, content_type="text/plain").json()
        plural = {"Patient": "patients", "Study": "studies", "Series": "series", "Instance": "instances"}[kind]
        assert answer == [{"ID": public_id, "Path": f"/{plural}/{public_id}", "Type": kind}]


def test_lookup_of_nothing_is_an_empty_list(client):
    assert client.post("/tools/lookup", "", content_type="text/plain").json() == []
    assert client.post("/tools/lookup", "absent", content_type="text/plain").json() == []


def test_lookup_of_an_empty_identifier_finds_the_patient_without_patient_id(client):
    """As Orthanc 1.10.1: the empty value is looked up like any other (Orthanc's patient da39a3ee-...)."""
    ids = upload(client, PatientID="")
    for body in ("", " ", "\n"):
        answer = client.post("/tools/lookup", body, content_type="text/plain").json()
        assert answer == [{"ID": ids["ParentPatient"], "Path": f"/patients/{ids['ParentPatient']}", "Type": "Patient"}]


def test_lookup_of_an_empty_identifier_skips_a_patient_created_without_patient_id(client):
    """Real Orthanc 1.10.1: a patient created by a file without PatientID has no identifier to find, even
    after a file with an empty one joined it (the same patient, da39a3ee-...)."""
    upload(client, PatientID=None, StudyInstanceUID="5.9.1", SeriesInstanceUID="5.9.1.1")
    upload(client, PatientID="", StudyInstanceUID="5.9.2", SeriesInstanceUID="5.9.2.1")
    assert client.post("/tools/lookup", "", content_type="text/plain").json() == []


def test_lookup_refuses_wildcards(client):
    response = client.post("/tools/lookup", "PAT*", content_type="text/plain")
    assert_error(response, 400, 3, "Wildcards are not allowed on tag 0010,0020")


def test_lookup_takes_post_only(client):
    assert client.get("/tools/lookup").status_code == 405


def test_execute_script_is_refused_bare_as_orthanc_without_lua(client):
    """Real Orthanc 1.10.1 (ExecuteLuaEnabled false by default): a bare 403; we run no Lua at all."""
    response = client.post("/tools/execute-script", "print(42)", content_type="text/plain")
    assert response.status_code == 403 and response.content == b"" and "Content-Type" not in response
    assert "execute-script" in client.get("/tools").json()


@pytest.mark.parametrize(("body", "found"), [(b"5.9\x00", True), (b"5.9\x00x", False), (b"\x00", False)])
def test_lookup_with_a_nul(client, body, found):
    """Orthanc 1.10.1 (compared): a NUL at the end is dropped, one inside matches nothing; PostgreSQL refuses
    a NUL in a query parameter (this answered 500 there)."""
    ids = upload(client, PatientID="LN", StudyInstanceUID="5.9")
    answer = client.post("/tools/lookup", body, content_type="text/plain").json()
    assert answer == ([{"ID": ids["ParentStudy"], "Path": f"/studies/{ids['ParentStudy']}", "Type": "Study"}]
                      if found else [])
