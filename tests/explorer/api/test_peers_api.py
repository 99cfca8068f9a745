"""/peers against a real Orthanc peer (1.10.1, started once for the module): the expected answers are the
ones a reference Orthanc 1.10.1 gave to the same calls with the same OrthancPeers."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import shutil
import threading
import time
from unittest import mock

import pytest
import requests

import bench.servers
from archive.ingest import Origin, instance_store
from bench.servers import free_port, orthanc_server
from jobs.kinds import KINDS
from jobs.kinds.peers import KIND, peer_store_job
from jobs.models import Job
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db

CT = "1.2.840.10008.5.1.4.1.1.2"
RLE = "1.2.840.10008.1.2.5"


@pytest.fixture(scope="module")
def target():
    """The peer: a real Orthanc, emptied before each test that stores to it (``empty_target``)."""
    with orthanc_server() as url:
        yield url


@contextlib.contextmanager
def _orthanc_with_users(users: dict):
    """Real Orthanc with HTTP authentication (bench.servers polls /system without credentials)."""

    def wait(url, proc, *, timeout, log):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                requests.get(url + "/system", timeout=1)
                return
            time.sleep(0.1)
        raise RuntimeError(f"no answer from {url}")

    with mock.patch.object(bench.servers, "wait_for_system", wait):
        with orthanc_server(extra={"AuthenticationEnabled": True, "RegisteredUsers": users}) as url:
            yield url


@pytest.fixture(scope="module")
def secured():
    with _orthanc_with_users({"alice": "secret"}) as url:
        yield url


@pytest.fixture
def empty_target(target):
    for study in requests.get(target + "/studies").json():
        requests.delete(f"{target}/studies/{study}")
    return target


DOWN = f"http://127.0.0.1:{free_port()}/"


@pytest.fixture(autouse=True)
def peers(settings, orthanc_config, target):
    settings.JOBS_RUN_INLINE = True
    orthanc_config(OrthancPeers={
        "target": [target + "/"],
        "simple3": [target, "alice", "secret"],
        "down": [DOWN],
        "adv": {"Url": target, "Username": "bob", "Password": "pw", "HttpHeaders": {"X-A": "1", "Authorization-Z": "t"},
                "Timeout": 5, "Foo": "bar", "Flag": True, "Num": 3},
        "cert": {"Url": "https://example.invalid/", "CertificateFile": "/nonexistent/c.pem",
                 "CertificateKeyFile": "/tmp/k.pem", "CertificateKeyPassword": "kp"},
    })


@pytest.fixture(autouse=True)
def _register_kind(monkeypatch):
    monkeypatch.setitem(KINDS, KIND, peer_store_job)


def _study(count: int = 3) -> tuple[str, list[str], list[bytes]]:
    files = [make_dicom(PatientID="PEER1", SOPInstanceUID=f"1.2.3.4.1.1.{k}", InstanceNumber=str(count - k))
             for k in range(count)]
    ids = [instance_store(data=f, origin=Origin()).ids for f in files]
    return ids[0].study, [i.instance for i in ids], files


def _post(client, path, body, content_type="application/json"):
    if isinstance(body, (dict, list)):
        return client.post(path, body, content_type=content_type)
    return client.generic("POST", path, body, content_type="text/plain")


def _error(response, status: int, code: int, details: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["OrthancStatus"] == code
    assert body.get("Details") == details
    return body


# -- the registry ---------------------------------------------------------------------------------------------

def test_list_is_sorted_names(client):
    assert client.get("/peers").json() == ["adv", "cert", "down", "simple3", "target"]


def test_expand_shows_public_information_only(client, target):
    expanded = client.get("/peers?expand").json()
    assert expanded["adv"] == {"Flag": "1", "Foo": "bar", "HttpHeaders": ["Authorization-Z", "X-A"], "Num": "3",
                               "Password": None, "Pkcs11": False, "Timeout": 5, "Url": target + "/",
                               "Username": "bob"}
    assert expanded["cert"] == {"CertificateFile": "/nonexistent/c.pem", "CertificateKeyFile": None,
                                "CertificateKeyPassword": None, "HttpHeaders": [], "Pkcs11": False, "Timeout": 0,
                                "Url": "https://example.invalid/"}
    assert expanded["simple3"] == {"HttpHeaders": [], "Password": None, "Pkcs11": False, "Timeout": 0,
                                   "Url": target + "/", "Username": "alice"}
    assert expanded["target"] == {"HttpHeaders": [], "Pkcs11": False, "Timeout": 0, "Url": target + "/"}
    text = client.get("/peers?expand").content
    assert b"secret" not in text and b"pw" not in text and b"kp" not in text


def test_peer_lists_its_operations(client):
    assert client.get("/peers/target").json() == ["configuration", "store", "store-straight", "system"]


def test_unknown_peer_operations_is_bare_404(client):
    response = client.get("/peers/nope")
    assert response.status_code == 404 and response.content == b""


def test_configuration(client, target):
    assert client.get("/peers/simple3/configuration").json() == {
        "HttpHeaders": [], "Password": None, "Pkcs11": False, "Timeout": 0, "Url": target + "/", "Username": "alice"}
    _error(client.get("/peers/nope/configuration"), 404, 17, "No peer with symbolic name: nope")


def _put(client, body: str):
    return client.put("/peers/new", body, content_type="application/json")


def test_put_defines_a_peer_and_answers_empty_text(client):
    response = _put(client, '{"URL": "http://x:1"}')
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Type"].startswith("text/plain")
    assert client.get("/peers/new/configuration").json() == {
        "HttpHeaders": [], "Pkcs11": False, "Timeout": 0, "Url": "http://x:1/"}
    assert "new" in client.get("/peers").json()


@pytest.mark.parametrize(("body", "details"), [
    ('{"Url": "ftp://x"}', "Bad URL: ftp://x"),
    ("{}", "Empty URL"),
    ('{"Url": "http://x", "Password": "p"}', None),
    ('{"Url": "http://x", "Username": 3}', None),
    ('{"Url": "http://x", "HttpHeaders": {"A": 1}}', None),
    ('{"Url": "http://x", "HttpHeaders": []}', None),
    ('{"Url": "http://x", "Timeout": -1}', "Unsigned integer value expected in field: Timeout"),
    ('{"Url": "http://x", "Timeout": "5"}', "Integer value expected in field: Timeout"),
    ('{"Url": "http://x", "Pkcs11": "true"}', None),
    ('{"Url": "http://x", "Other": [1]}',
     "User-defined properties associated with a Web service must be strings: Other"),
    ('["http://y", "u"]', None),
    ('["http://y", "", "p"]', None),
    ('"http://z"', None),
    ("3", None),
])
def test_put_rejects_what_orthanc_rejects(client, body, details):
    _error(_put(client, body), 400, 15, details)
    assert "new" not in client.get("/peers").json()


@pytest.mark.parametrize("name", ["a%20b", "a.b", "%C3%A9"])
def test_put_refuses_a_name_orthanc_refuses(client, name):
    """OrthancConfiguration::CheckAlphanumeric, for peers and modalities alike (Orthanc 1.10.1 compared)."""
    for route, body in (("/peers/", '{"Url": "http://x"}'), ("/modalities/", '["X", "127.0.0.1", 104]')):
        response = client.put(route + name, body, content_type="application/json")
        shown = requests.utils.unquote(name)
        _error(response, 400, 15, "Only alphanumeric, dash characters and underscores are allowed in the names of "
                                  f"modalities/peers, but found: {shown}")
    assert client.get("/peers").json() == sorted(client.get("/peers").json())
    assert requests.utils.unquote(name) not in client.get("/peers").json() + client.get("/modalities").json()


def test_put_refuses_a_peer_whose_certificate_is_missing(client):
    """As Orthanc's UpdatePeer: 404 InexistentFile, and the peer is not defined (it was, and failed on use)."""
    _error(_put(client, '{"Url": "https://x", "CertificateFile": "/nonexistent.pem"}'), 404, 13,
           "Cannot open certificate file: /nonexistent.pem")
    assert "new" not in client.get("/peers").json()


@pytest.mark.parametrize(("option", "value", "details"), [
    ("OrthancPeers", {"a b": ["http://x"]}, "Only alphanumeric, dash characters and underscores are allowed in "
                                            "the names of modalities/peers, but found: a b"),
    ("OrthancPeers", ["http://x"], 'Bad format of the "OrthancPeers" configuration section'),
    ("DicomModalities", {"m.1": ["X", "h", 104]}, "Only alphanumeric, dash characters and underscores are "
                                                  "allowed in the names of modalities/peers, but found: m.1"),
])
def test_a_malformed_configuration_is_refused_at_start(orthanc_config, option, value, details):
    """Orthanc does not start with them; we did, and failed on their first use (a 500 for an array)."""
    from archive.errors import ArchiveError
    from archive.network.registry import registry_check

    orthanc_config(**{option: value})
    with pytest.raises(ArchiveError) as raised:
        registry_check()
    assert raised.value.details == details


def test_put_of_a_body_that_is_not_json_is_bare_404(client):
    for body in ("junk", ""):
        response = _put(client, body)
        assert response.status_code == 404 and response.content == b""


def test_put_accepts_a_url_without_scheme_and_the_list_format(client):
    _put(client, '{"Url": "x.org"}')
    assert client.get("/peers/new/configuration").json()["Url"] == "x.org/"
    _put(client, '["http://y", "u", "p"]')
    assert client.get("/peers/new/configuration").json()["Username"] == "u"


def test_put_replaces_and_delete_removes(client, target):
    _put(client, '{"Url": "http://x", "CertificateKeyFile": "k"}')  # a key without certificate is dropped
    assert "CertificateKeyFile" not in client.get("/peers/new/configuration").json()
    response = client.delete("/peers/new")
    assert response.status_code == 200 and response.content == b""
    _error(client.delete("/peers/new"), 404, 7, "Unknown Orthanc peer: new")


def test_peers_in_database_ignore_the_configuration(client, orthanc_config):
    orthanc_config(OrthancPeersInDatabase=True)
    assert client.get("/peers").json() == []
    _put(client, '["http://y"]')
    assert client.get("/peers").json() == ["new"]


# -- /system --------------------------------------------------------------------------------------------------

def test_system_forwards_the_peers_answer(client, target):
    response = client.get("/peers/target/system")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.content == requests.get(target + "/system").content


def test_system_of_a_peer_that_is_down(client):
    _error(client.get("/peers/down/system"), 500, 9, "libCURL error: Couldn't connect to server")


def test_system_of_a_peer_without_scheme_nor_resolvable_name(client, orthanc_config, target):
    """A URL without scheme is http://, as libcurl takes it (it was 'InvalidSchema'); a name that does not
    resolve has libcurl's own error (Orthanc 1.10.1 compared)."""
    orthanc_config(OrthancPeers={"bare": [target.removeprefix("http://")], "dns": ["http://nonexistent.invalid:8042"]})
    assert client.get("/peers/bare/system").json()["Version"] == "1.10.1"
    _error(client.get("/peers/dns/system"), 500, 9, "libCURL error: Couldn't resolve host name")


def test_system_of_an_unknown_peer(client):
    _error(client.get("/peers/nope/system"), 404, 17, "No peer with symbolic name: nope")


def test_system_with_a_missing_certificate(client):
    _error(client.get("/peers/cert/system"), 404, 13, "Cannot open certificate file: /nonexistent/c.pem")


def test_system_with_credentials(client, orthanc_config, secured):
    orthanc_config(OrthancPeers={"good": [secured, "alice", "secret"], "bad": [secured, "alice", "wrong"]})
    assert client.get("/peers/good/system").json()["Version"] == "1.10.1"
    # The peer's 401 cannot be forwarded by Orthanc's REST layer.
    body = _error(client.get("/peers/bad/system"), 500, 2005)
    assert body["Message"] == "This HTTP status is not allowed in a REST API"


# -- /store ---------------------------------------------------------------------------------------------------

def test_store_sends_the_study_to_the_peer(client, empty_target):
    study, instances, files = _study()
    response = _post(client, "/peers/target/store", {"Resources": [study]})
    assert response.status_code == 200
    assert response.json() == {
        "Compress": False, "Description": "REST API", "FailedInstancesCount": 0, "InstancesCount": 3,
        "ParentResources": [study], "Peer": [empty_target + "/"], "Resources": [{"ID": study, "Type": "Study"}],
        "Size": str(sum(map(len, files))), "SizeMB": 0}
    assert sorted(requests.get(f"{empty_target}/instances").json()) == sorted(instances)
    assert requests.get(f"{empty_target}/studies").json() == [study]


def test_store_as_a_job(client, empty_target):
    study, _, _ = _study()
    submitted = _post(client, "/peers/target/store", {"Resources": [study], "Asynchronous": True, "Priority": 3,
                                                      "UserData": {"ticket": 7}}).json()
    assert submitted["Path"] == f"/jobs/{submitted['ID']}"
    job = client.get(submitted["Path"]).json()
    assert job["Type"] == "OrthancPeerStore" and job["State"] == "Success" and job["Priority"] == 3
    assert job["UserData"] == {"ticket": 7}          # 1.12.9
    assert job["Progress"] == 100 and job["Content"]["InstancesCount"] == 3
    assert requests.get(f"{empty_target}/studies").json() == [study]


@pytest.mark.parametrize("kind", ["text", "string", "list"])
def test_store_takes_one_identifier_or_a_list(client, empty_target, kind):
    _, instances, _ = _study(1)
    body = {"text": f" {instances[0]}\n", "string": f'"{instances[0]}"', "list": [instances[0]]}[kind]
    response = client.generic("POST", "/peers/target/store", body if isinstance(body, str) else None,
                              content_type="text/plain") if kind != "list" else _post(client, "/peers/target/store", body)
    assert response.status_code == 200, response.content
    assert response.json()["InstancesCount"] == 1
    assert requests.get(f"{empty_target}/instances").json() == instances


def test_store_a_series_and_one_of_its_instances_sends_it_twice(client, empty_target):
    study, instances, _ = _study()
    series = client.get(f"/studies/{study}").json()["Series"][0]
    content = _post(client, "/peers/target/store", {"Resources": [instances[0], series]}).json()
    assert content["InstancesCount"] == 4 and content["ParentResources"] == sorted([instances[0], series])


def test_store_compressed(client, empty_target):
    study, instances, files = _study()
    content = _post(client, "/peers/target/store", {"Resources": [study], "Compress": True}).json()
    assert content["Compress"] is True
    assert int(content["Size"]) < sum(map(len, files))
    assert sorted(requests.get(f"{empty_target}/instances").json()) == sorted(instances)


def test_real_orthanc_stores_compressed_to_us(tmp_path):
    """A real Orthanc sending to us with Compress (gzip bodies, Content-Encoding: gzip): they were refused as
    invalid DICOM files, and the whole job failed."""
    from tests.live import live_server

    data = make_dicom(PatientID="GZ-PEER")
    with live_server(tmp_path, DicomServerEnabled=False) as ours, \
            orthanc_server(extra={"OrthancPeers": {"ours": [ours.url]}}) as source:
        instance = requests.post(source + "/instances", data=data, timeout=30).json()["ID"]
        answer = requests.post(source + "/peers/ours/store", json={"Resources": [instance], "Compress": True},
                               timeout=60)
        assert answer.status_code == 200, answer.text
        assert requests.get(f"{ours.url}/instances", timeout=10).json() == [instance]
        assert requests.get(f"{ours.url}/instances/{instance}/file", timeout=10).content == data


def test_store_transcoded(client, empty_target):
    _, instances, _ = _study(1)
    content = _post(client, "/peers/target/store", {"Resources": instances, "Transcode": RLE}).json()
    assert content["Transcode"] == RLE
    assert requests.get(f"{empty_target}/instances/{instances[0]}/metadata/TransferSyntax").text == RLE


def test_store_transcoded_to_a_lossy_syntax(client, empty_target):
    """As Orthanc's peer job (compared with 1.10.1): a lossy copy is sent as a new instance (new SOP Instance
    UID; it kept the original's, so the peer could skip it or take it for the original), and a 12-bit image is
    sent as stored (JPEG baseline is 8-bit: ours sent it rescaled to 8 bits)."""
    if not shutil.which("dcmcjpeg"):
        pytest.skip("DCMTK is not installed")
    import numpy as np

    eight = make_dicom(PatientID="PEER-LOSSY", SOPInstanceUID="1.2.3.4.9.1", BitsAllocated=8, BitsStored=8,
                       HighBit=7, Rows=32, Columns=32, PixelData=(np.arange(1024) % 200).astype("u1").tobytes())
    twelve = make_dicom(PatientID="PEER-LOSSY", SOPInstanceUID="1.2.3.4.9.2", BitsStored=12, HighBit=11,
                        Rows=32, Columns=32, PixelData=(np.arange(1024) % 4000).astype("<u2").tobytes())
    ids = [instance_store(data=f, origin=Origin()).ids.instance for f in (eight, twelve)]
    _post(client, "/peers/target/store", {"Resources": ids, "Transcode": "1.2.840.10008.1.2.4.50"})
    sent = {requests.get(f"{empty_target}/instances/{i}/simplified-tags").json()["SOPInstanceUID"]:
            requests.get(f"{empty_target}/instances/{i}/metadata/TransferSyntax").text
            for i in requests.get(f"{empty_target}/instances").json()}
    assert len(sent) == 2 and "1.2.3.4.9.1" not in sent
    assert sent.pop("1.2.3.4.9.2") == "1.2.840.10008.1.2.1"
    assert list(sent.values()) == ["1.2.840.10008.1.2.4.50"]


@pytest.mark.parametrize(("body", "status", "code", "details"), [
    ({"Resources": ["nope"]}, 400, 15, "This string is not a valid Orthanc identifier: nope"),
    ({"Resources": ["12345678-12345678-12345678-12345678-12345678"]}, 404, 17, None),
    ({"Resources": [3]}, 400, 15, "Resources to be exported must be specified as a JSON array of strings"),
    ({"Resources": "x"}, 400, 15, 'JSON field "Resources" must contain an array'),
    ({"X": 1}, 400, 15, 'Missing field in JSON: "Resources"'),
    ("junk", 400, 15, "Must provide a JSON value"),
    ("3", 400, 15, "Must provide a JSON object, or a JSON array of strings"),
    ({"Resources": [], "Transcode": "nope"}, 400, 15, "Unknown transfer syntax UID: nope"),
    ({"Resources": [], "Compress": "yes"}, 400, 15, "Boolean value expected in field: Compress"),
])
def test_store_rejects_what_orthanc_rejects(client, body, status, code, details):
    _error(_post(client, "/peers/target/store", body), status, code, details)


def test_store_to_an_unknown_peer(client):
    study, _, _ = _study(1)
    _error(_post(client, "/peers/nope/store", {"Resources": [study]}), 404, 17, "No peer with symbolic name: nope")
    # The resources are checked first, as Orthanc does.
    _error(_post(client, "/peers/nope/store", {"Resources": ["bad"]}), 400, 15,
           "This string is not a valid Orthanc identifier: bad")


def test_store_of_nothing_succeeds(client):
    job = client.get(_post(client, "/peers/target/store", {"Resources": [], "Asynchronous": True}).json()["Path"]).json()
    assert job["State"] == "Success" and job["Progress"] == 100
    assert "ParentResources" not in job["Content"] and job["Content"]["Size"] == "0"


def test_store_to_a_peer_that_is_down(client):
    study, _, files = _study()
    _error(_post(client, "/peers/down/store", {"Resources": [study]}), 500, 9,
           "libCURL error: Couldn't connect to server")
    job = client.get(_post(client, "/peers/down/store", {"Resources": [study], "Asynchronous": True})
                     .json()["Path"]).json()
    assert job["State"] == "Failure" and job["ErrorCode"] == 9 and job["Progress"] == 0
    assert job["ErrorDescription"] == "Error in the network protocol"
    assert job["ErrorDetails"] == "libCURL error: Couldn't connect to server"
    assert job["Content"]["Size"] == str(len(files[-1]))  # the first one sent (InstanceNumber 1) counts


def test_permissive_store_to_a_peer_that_is_down_succeeds(client):
    study, _, files = _study()
    content = _post(client, "/peers/down/store", {"Resources": [study], "Permissive": True}).json()
    assert content["FailedInstancesCount"] == 0 and content["Size"] == str(sum(map(len, files)))


def test_store_with_bad_credentials_fails_without_details(client, orthanc_config, secured):
    orthanc_config(OrthancPeers={"good": [secured, "alice", "secret"], "bad": [secured, "alice", "wrong"]})
    study, instances, _ = _study(1)
    _error(_post(client, "/peers/bad/store", {"Resources": [study]}), 500, 9, None)
    content = _post(client, "/peers/good/store", {"Resources": [study]}).json()
    assert content["Peer"] == [secured + "/", "alice", ""]  # never the password
    assert requests.get(f"{secured}/instances", auth=("alice", "secret")).json() == instances


def test_advanced_peer_in_job_content_has_no_password(client):
    study, _, _ = _study(1)
    content = _post(client, "/peers/adv/store", {"Resources": [study]}).json()
    assert content["Peer"] == {"Flag": "1", "Foo": "bar", "HttpHeaders": {"Authorization-Z": "t", "X-A": "1"},
                               "Num": "3", "Pkcs11": False, "Timeout": 5, "Url": content["Peer"]["Url"],
                               "Username": "bob"}


# -- /store-straight ------------------------------------------------------------------------------------------

def test_store_straight_answers_what_the_peer_answers(client, empty_target):
    data = make_dicom(PatientID="STRAIGHT")
    response = client.generic("POST", "/peers/target/store-straight", data, content_type="application/dicom")
    assert response.status_code == 200
    answer = response.json()
    assert answer["Status"] == "Success" and requests.get(f"{empty_target}/instances").json() == [answer["ID"]]
    again = client.generic("POST", "/peers/target/store-straight", data, content_type="application/dicom").json()
    assert again == {**answer, "Status": "AlreadyStored"}


def test_store_straight_of_junk_fails_like_orthanc(client):
    for body in (b"junk", b""):
        _error(client.generic("POST", "/peers/target/store-straight", body), 500, 9,
               "Cannot send DICOM to remote peer: target")


def test_store_straight_to_a_peer_that_is_down_or_unknown(client):
    data = make_dicom()
    _error(client.generic("POST", "/peers/down/store-straight", data), 500, 9,
           "libCURL error: Couldn't connect to server")
    _error(client.generic("POST", "/peers/nope/store-straight", data), 404, 17, "No peer with symbolic name: nope")


def test_job_reports_progress_step_by_step_and_stops_cleanly(client):
    study, _, _ = _study(4)
    submitted = _post(client, "/peers/down/store", {"Resources": [study], "Permissive": True, "Asynchronous": True})
    job = Job.objects.get(id=submitted.json()["ID"])
    steps = peer_store_job(job)
    assert [next(steps), next(steps)] == [25.0, 50.0]
    steps.close()  # what a pause or a cancel does between two steps
    assert not [t for t in threading.enumerate() if t.name.startswith("peer-loader")]


# -- on the wire ----------------------------------------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records what the client sends; answers as Orthanc's POST /instances would (a JSON object)."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.client_address[1], dict(self.headers), body))
        payload = b'{"Status": "Success"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/base", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_wire_one_connection_credentials_headers_and_gzip(client, orthanc_config, recorder):
    url, seen = recorder
    orthanc_config(OrthancPeers={"rec": {"Url": url, "Username": "u", "Password": "p", "HttpHeaders": {"X-Tok": "abc"}}})
    study, _, files = _study(4)
    content = _post(client, "/peers/rec/store", {"Resources": [study], "Compress": True}).json()
    assert content["InstancesCount"] == 4 and len(seen) == 4
    assert len({port for port, _, _ in seen}) == 1  # one kept-alive connection for the whole job
    for _, headers, _ in seen:
        assert headers["Authorization"] == "Basic dTpw" and headers["X-Tok"] == "abc"
        assert headers["Content-Encoding"] == "gzip"
    # Sent grouped by series, ordered by InstanceNumber (Orthanc 1.12.11): _study numbers them backwards.
    assert [gzip.decompress(body) for _, _, body in seen] == files[::-1]
