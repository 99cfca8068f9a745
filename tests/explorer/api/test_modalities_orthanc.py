"""The DICOM SCU routes against real Orthanc: one Orthanc 1.10.1 is the remote PACS, a second one the reference
client; the same requests go to the reference and to us (both pointing at the PACS) and the answers are
compared. C-MOVE targets a pynetdicom storage SCP started here (our own SCP is another module's); C-GET and
the storage commitment reports come back to us directly or through that SCP.

1.10.1 lacks the 1.12 additions (jobs for /move, /get, Details, Resources, RetrieveMethod): those are checked
against the 1.12.11 source's shapes.
"""

from __future__ import annotations

import json

import pytest
import requests
from django.test import Client
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import CTImageStorage, StorageCommitmentPushModel, Verification

from archive.models import Resource
from archive.network import queries
from archive.network.encoded import part10_meta
from bench.servers import free_port, orthanc_server
from jobs import kinds
from jobs.kinds import dicom as dicom_jobs
from tests.dicom_factory import make_dataset, make_dicom

pytestmark = pytest.mark.django_db(transaction=True)

STUDY_UID, SERIES_UID = "1.2.826.0.1.3680043.8.498.7701", "1.2.826.0.1.3680043.8.498.7701.1"


def _instances() -> list[bytes]:
    files = [make_dicom(PatientID="PAT001", PatientName="Doe^John", StudyInstanceUID=STUDY_UID,
                        SeriesInstanceUID=SERIES_UID, SOPInstanceUID=f"{SERIES_UID}.{k}", InstanceNumber=str(k))
             for k in range(1, 4)]
    files.append(make_dicom(PatientID="PAT002", PatientName="Roe^Jane", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7702",
                            SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7702.1", Modality="MR",
                            SOPInstanceUID="1.2.826.0.1.3680043.8.498.7702.1.1", StudyDate="20230505"))
    return files


class TargetScp:
    """A storage SCP (and storage commitment report receiver) standing for a C-MOVE target and for our SCP."""

    def __init__(self, port: int):
        self.received: list[tuple[str, str, int | None]] = []
        self.reports: list = []
        self.pdu_lengths: list[int] = []   # the maximum PDU length each requestor advertised
        self.calling: list[str] = []       # the calling AET of each C-STORE
        ae = AE(ae_title="TARGET")
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_N_EVENT_REPORT, self._report),
                    (evt.EVT_REQUESTED, lambda event: self.pdu_lengths.append(event.assoc.requestor.maximum_length))]
        self.server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def _store(self, event) -> int:
        self.calling.append(event.assoc.requestor.ae_title)
        self.received.append((str(event.dataset.SOPInstanceUID), event.request.MoveOriginatorApplicationEntityTitle,
                              event.request.MoveOriginatorMessageID))
        return 0x0000

    def _report(self, event):
        # Kept for the test's thread to record (apply_reports), as our SCP would from its own process: written
        # from this thread, it raced the job's last writes, and the tests' in-memory SQLite database answers
        # such a race with "database table is locked" at once instead of waiting as a file database does.
        self.reports.append(event.event_information)
        return 0x0000, None

    def apply_reports(self) -> None:
        while self.reports:
            queries.storage_commitment_report_dataset(self.reports.pop(0))


@pytest.fixture(scope="module")
def network():
    pacs_port, ref_port, target_port = free_port(), free_port(), free_port()
    target = TargetScp(target_port)
    pacs_extra = {"DicomAet": "PACS", "DicomCheckCalledAet": True, "DicomModalities": {
        "ref": ["REF", "127.0.0.1", ref_port], "ours": ["OURS", "127.0.0.1", target_port],
        "target": ["TARGET", "127.0.0.1", target_port]}}
    ref_modalities = {"pacs": ["PACS", "127.0.0.1", pacs_port], "down": ["DOWN", "127.0.0.1", free_port()],
                      "wrongaet": ["WRONG", "127.0.0.1", pacs_port]}     # the PACS rejects the association
    try:
        with orthanc_server(dicom_port=pacs_port, extra=pacs_extra) as pacs, \
                orthanc_server(dicom_port=ref_port, extra={"DicomAet": "REF", "DicomModalities": ref_modalities}) as ref:
            for data in _instances():
                requests.post(pacs + "/instances", data=data).raise_for_status()
            yield {"pacs": pacs, "ref": ref, "modalities": ref_modalities, "target": target}
    finally:
        target.server.shutdown()


@pytest.fixture
def ours(network, orthanc_config, settings, monkeypatch):
    settings.JOBS_RUN_INLINE = True
    orthanc_config(DicomAet="OURS", DicomModalities=network["modalities"], DicomScuTimeout=10)
    for name, function in ((dicom_jobs.STORE, dicom_jobs.modality_store_job),
                           (dicom_jobs.MOVE, dicom_jobs.move_scu_job), (dicom_jobs.GET, dicom_jobs.get_scu_job)):
        monkeypatch.setitem(kinds.KINDS, name, function)
    return Client()


def _both(network, client, method: str, uri: str, body=None, raw: bytes | None = None):
    """(reference answer, our answer) as (status, JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    theirs = requests.request(method, network["ref"] + uri, data=data)
    mine = getattr(client, method.lower())(uri, data=data, content_type="application/json")
    return _decode(theirs.status_code, theirs.content), _decode(mine.status_code, mine.content)


def _decode(status: int, content: bytes):
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode("utf-8", "replace")


# -- /modalities ----------------------------------------------------------------------------------------------

def test_modalities_list_expand_and_configuration_as_orthanc(network, ours) -> None:
    for uri in ("/modalities", "/modalities?expand", "/modalities/pacs/configuration",
                "/modalities/nope/configuration"):
        theirs, mine = _both(network, ours, "GET", uri)
        assert mine == theirs, uri


def test_modality_put_then_delete(network, ours) -> None:
    assert ours.put("/modalities/new", data=json.dumps({"AET": "NEW", "Host": "10.0.0.1", "Port": 104}),
                    content_type="application/json").status_code == 200
    assert ours.get("/modalities/new/configuration").json()["AET"] == "NEW"
    assert ours.delete("/modalities/new").status_code == 200
    assert "new" not in ours.get("/modalities").json()


@pytest.mark.parametrize("body", [
    {"AET": "NEW", "Host": "10.0.0.1"},                                    # no Port: 15, no Details
    {"AET": "NEW", "Host": "10.0.0.1", "Port": 104, "Manufacturer": "Foo"},
])
def test_modality_put_errors_as_orthanc(network, ours, body) -> None:
    theirs, mine = _both(network, ours, "PUT", "/modalities/new", body)
    assert mine == theirs


def test_answer_index_errors_as_orthanc(network, ours) -> None:
    """Orthanc reads the index with lexical_cast<size_t>: a negative one wraps around (out of range)."""
    body = {"Level": "Patient", "Query": {"PatientID": "PAT001"}}
    mine, theirs = _query(ours, body), _ref_query(network, body)
    for index in ("-1", "99", "abc", "0"):
        got = ours.get(f"/queries/{mine}/answers/{index}/content")
        expected = requests.get(f"{network['ref']}/queries/{theirs}/answers/{index}/content")
        got_json, expected_json = got.json(), expected.json()
        if got.status_code >= 400:     # the query IDs differ in the Uri
            got_json.pop("Uri"), expected_json.pop("Uri")
        assert (got.status_code, got_json) == (expected.status_code, expected_json), index


# -- C-ECHO ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "body", "raw"), [
    ("/modalities/pacs/echo", None, None),
    ("/modalities/pacs/echo", {"CheckFind": True}, None),
    ("/modalities/pacs/echo", {"Timeout": 5}, None),
    ("/modalities/down/echo", None, None),
    ("/modalities/nope/echo", None, None),
    ("/modalities/pacs/echo", None, b"junk"),
    ("/modalities/wrongaet/echo", None, None),     # "DUL Association Rejected"
])
def test_echo_as_orthanc(network, ours, uri, body, raw) -> None:
    theirs, mine = _both(network, ours, "POST", uri, body, raw)
    assert mine == theirs


def test_scu_advertises_the_maximum_pdu_length(network, ours, orthanc_config) -> None:
    """MaximumPduLength "affects both Orthanc SCU and Orthanc SCP": our echo and store associations advertise
    it, not pynetdicom's default (16382)."""
    target = network["target"]
    modalities = {**network["modalities"], "target": ["TARGET", "127.0.0.1", target.server.server_address[1]]}
    orthanc_config(DicomAet="OURS", DicomModalities=modalities, MaximumPduLength=65536)
    [uploaded] = _upload(ours, network)[:1]
    target.pdu_lengths.clear()
    assert ours.post("/modalities/target/echo", data=b"{}", content_type="application/json").status_code == 200
    answer = ours.post("/modalities/target/store", data=json.dumps({"Resources": [uploaded["ID"]]}),
                       content_type="application/json")
    assert answer.status_code == 200 and answer.json()["InstancesCount"] == 1
    assert target.pdu_lengths == [65536, 65536]


# -- C-FIND ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "body"), [
    ("/modalities/pacs/find-patient", {}),
    ("/modalities/pacs/find-patient", {"PatientName": "Doe*"}),
    ("/modalities/pacs/find-study", {"PatientID": "PAT001"}),
    ("/modalities/pacs/find-study", {"PatientID": "P1"}),            # too short: Orthanc answers nothing
    ("/modalities/pacs/find-series", {"PatientID": "PAT001", "StudyInstanceUID": STUDY_UID}),
    ("/modalities/pacs/find-instance", {"PatientID": "PAT001", "StudyInstanceUID": STUDY_UID,
                                        "SeriesInstanceUID": SERIES_UID}),
    ("/modalities/pacs/find", {}),
    ("/modalities/pacs/find", {"PatientID": "PAT002"}),
])
def test_legacy_find_as_orthanc(network, ours, uri, body) -> None:
    theirs, mine = _both(network, ours, "POST", uri, body)
    assert mine == theirs


def _query(client, body) -> str:
    answer = client.post("/modalities/pacs/query", data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 200, answer.content
    return answer.json()["ID"]


def _ref_query(network, body) -> str:
    return requests.post(network["ref"] + "/modalities/pacs/query", data=json.dumps(body)).json()["ID"]


@pytest.mark.parametrize("body", [
    {"Level": "Study", "Query": {"PatientName": "*"}},
    {"Level": "Patient", "Query": {}},
    {"Level": "Series", "Query": {"Modality": "MR", "StudyDate": "20230101-"}},
    {"Level": "Instance", "Query": {"StudyInstanceUID": STUDY_UID, "InstanceNumber": ""}},
    {"Level": "study", "Query": {"StudyDate": "20240101-", "PatientName": ""}, "Normalize": False},
    # A SpecificCharacterSet among the keys is the query's encoding (ParsedDicomFile::CreateFromDicomMap)
    {"Level": "Patient", "Query": {"PatientName": "Roe*", "SpecificCharacterSet": "ISO_IR 192"}},
])
def test_query_answers_as_orthanc(network, ours, body) -> None:
    mine, theirs = _query(ours, body), _ref_query(network, body)
    for suffix in ("/answers", "/answers?expand", "/answers?expand&simplify", "/answers?expand&short",
                   "/answers/0", "/answers/0/content", "/answers/0/content?simplify", "/level", "/modality",
                   "/query", "/query?short", "/answers/9/content", "/answers/x/content", ""):
        ref_answer = requests.get(f"{network['ref']}/queries/{theirs}{suffix}")
        our_answer = ours.get(f"/queries/{mine}{suffix}")
        expected = _decode(ref_answer.status_code, ref_answer.content)
        got = _decode(our_answer.status_code, our_answer.content)
        if isinstance(expected[1], dict) and "Uri" in expected[1]:
            expected[1]["Uri"] = expected[1]["Uri"].replace(theirs, mine)
        assert got == expected, suffix


def test_query_children_as_orthanc(network, ours) -> None:
    body = {"Level": "Patient", "Query": {"PatientID": "PAT001"}}
    mine, theirs = _query(ours, body), _ref_query(network, body)
    for child, query in (("query-studies", {}), ("query-series", {"Modality": ""}), ("query-instances", {})):
        ref_answer = requests.post(f"{network['ref']}/queries/{theirs}/answers/0/{child}",
                                   data=json.dumps({"Query": query}))
        assert ref_answer.status_code == 200, ref_answer.content
        ref_child = ref_answer.json()["ID"]
        our_child = ours.post(f"/queries/{mine}/answers/0/{child}", data=json.dumps({"Query": query}),
                              content_type="application/json").json()["ID"]
        for suffix in ("/query", "/answers?expand", "/level"):
            got = ours.get(f"/queries/{our_child}{suffix}")
            expected = requests.get(f"{network['ref']}/queries/{ref_child}{suffix}")
            assert _decode(got.status_code, got.content) == _decode(expected.status_code, expected.content), suffix
    study = _query(ours, {"Level": "Series", "Query": {}})
    assert ours.post(f"/queries/{study}/answers/0/query-studies", data="{}",
                     content_type="application/json").status_code == 404


@pytest.mark.parametrize(("uri", "body"), [
    ("/modalities/pacs/query", {"Level": "Bad", "Query": {}}),
    ("/modalities/pacs/query", {"Query": {}}),
    ("/modalities/pacs/query", {"Level": "Patient", "Query": {"Foo": "x"}}),
    ("/modalities/pacs/query", {"Level": "Patient", "Query": {"PatientID": 3}}),
    ("/modalities/pacs/query", {"Level": "Patient", "Query": []}),
    ("/modalities/down/query", {"Level": "Patient", "Query": {}}),
    ("/modalities/nope/query", {"Level": "Patient", "Query": {}}),
    ("/modalities/pacs/query", {"Level": "Patient", "Query": {}, "Timeout": "2"}),
    ("/modalities/pacs/echo", {"Timeout": "x"}),
    ("/modalities/wrongaet/query", {"Level": "Study", "Query": {}}),
    # The PACS accepts the association, then aborts it at the C-FIND of a caller it does not know
    ("/modalities/pacs/query", {"Level": "Study", "Query": {}, "LocalAet": "STRANGER"}),
    # No worklist service: the PACS accepts the association, not its context (2016, "Remote AET is PACS")
    ("/modalities/pacs/find-worklist", {"Query": {}}),
    ("/modalities/pacs/query", {"Level": "Patient", "Query": {"SpecificCharacterSet": "FOO"}}),
])
def test_query_errors_as_orthanc(network, ours, uri, body) -> None:
    theirs, mine = _both(network, ours, "POST", uri, body)
    assert mine == theirs


def test_queries_list_and_delete(network, ours) -> None:
    query = _query(ours, {"Level": "Study", "Query": {}})
    assert ours.get("/queries").json() == [query]
    assert ours.delete(f"/queries/{query}").status_code == 200
    assert ours.get(f"/queries/{query}").status_code == 404
    assert ours.delete(f"/queries/{query}").status_code == 200  # as Orthanc


def test_query_retrieve_size_keeps_the_most_recent(network, ours, orthanc_config) -> None:
    orthanc_config(DicomAet="OURS", DicomModalities=network["modalities"], QueryRetrieveSize=2)
    made = [_query(ours, {"Level": "Patient", "Query": {}}) for _ in range(3)]
    assert ours.get("/queries").json() == made[1:]


# -- C-STORE --------------------------------------------------------------------------------------------------

def _upload(client, network) -> list[dict]:
    """The same files in the reference and in our archive (same Orthanc IDs)."""
    files = [make_dicom(PatientID="STORE01", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7801",
                        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7801.1",
                        SOPInstanceUID=f"1.2.826.0.1.3680043.8.498.7801.1.{k}", InstanceNumber=str(4 - k))
             for k in range(1, 4)]
    out = []
    for data in files:
        requests.post(network["ref"] + "/instances", data=data).raise_for_status()
        out.append(client.post("/instances", data=data, content_type="application/dicom").json())
    return out


def _without(content: dict, *names: str) -> dict:
    return {k: v for k, v in content.items() if k not in names}


def test_store_job_content_as_orthanc(network, ours) -> None:
    stored = _upload(ours, network)
    study, instance = stored[0]["ParentStudy"], stored[0]["ID"]
    for body, raw in ((None, study.encode()), ({"Resources": [stored[0]["ParentSeries"], instance]}, None),
                      ({"Resources": [instance], "MoveOriginatorAet": "XX", "MoveOriginatorID": 7}, None),
                      ({"Resources": [instance], "LocalAet": "OTHER", "Permissive": True}, None),
                      (None, json.dumps(instance).encode())):
        theirs, mine = _both(network, ours, "POST", "/modalities/pacs/store", body, raw)
        assert mine[0] == theirs[0] == 200
        assert mine[1]["Resources"] == [{"ID": i, "Type": Resource.objects.get(public_id=i).get_level_display()}
                                        for i in mine[1]["ParentResources"]]
        assert _without(mine[1], "Resources", "LocalAet") == _without(theirs[1], "LocalAet")
        assert mine[1]["LocalAet"] == ("OTHER" if body and "LocalAet" in body else "OURS")
    pacs_study = requests.get(f"{network['pacs']}/studies/{study}")
    assert pacs_study.status_code == 200


@pytest.mark.parametrize(("body", "raw"), [
    ({"Resources": ["nope"]}, None),
    ({"Resources": "x"}, None),
    ({"Foo": 1}, None),
    (None, b"junk"),
    ({"Resources": [3]}, None),
    ({"Resources": ["00000000-00000000-00000000-00000000-00000000"]}, None),
    ({"Resources": [], "StorageCommitment": "x"}, None),      # Toolbox::GetJsonBooleanField: 5, no Details
    ({"Resources": [], "LocalAet": 5}, None),                 # Toolbox::GetJsonStringField: 5, no Details
    ({"Resources": [], "MoveOriginatorID": "x"}, None),
    ({"Resources": [], "Timeout": "2"}, None),                # ReadUnsignedInteger: "Integer value expected"
    ({"Resources": [], "Timeout": -2}, None),                 # ... then "Unsigned integer value expected"
])
def test_store_errors_as_orthanc(network, ours, body, raw) -> None:
    theirs, mine = _both(network, ours, "POST", "/modalities/pacs/store", body, raw)
    assert mine == theirs


def test_store_to_a_modality_down_as_orthanc(network, ours) -> None:
    instance = _upload(ours, network)[0]["ID"]
    theirs, mine = _both(network, ours, "POST", "/modalities/down/store", {"Resources": [instance]})
    assert mine == theirs
    theirs, mine = _both(network, ours, "POST", "/modalities/down/store", {"Resources": [instance], "Permissive": True})
    assert _without(mine[1], "Resources", "LocalAet") == _without(theirs[1], "LocalAet")


def test_store_asynchronous_is_a_job(network, ours) -> None:
    instance = _upload(ours, network)[0]["ID"]
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance], "Asynchronous": True,
                                                                  "UserData": {"a": 1}}),
                       content_type="application/json").json()
    job = ours.get(answer["Path"]).json()
    assert job["Type"] == "DicomModalityStore" and job["State"] == "Success" and job["Progress"] == 100
    assert job["UserData"] == {"a": 1} and "UserData" not in job["Content"]     # 1.12.9: beside Content


def test_store_called_aet_host_port_override(network, ours) -> None:
    instance = _upload(ours, network)[0]["ID"]
    target = network["target"]
    before = len(target.received)
    port = target.server.server_address[1]
    content = ours.post("/modalities/down/store", data=json.dumps(
        {"Resources": [instance], "CalledAet": "TARGET", "Host": "127.0.0.1", "Port": port}),
        content_type="application/json").json()
    assert content["RemoteAet"] == "TARGET"
    assert len(target.received) == before + 1


def test_the_modalitys_local_aet_wins_over_the_requests(network, ours, orthanc_config) -> None:
    """Orthanc 1.12: "LocalAet ... Ignored if DicomModalities already sets LocalAet for this modality"
    (DicomAssociation::Open takes the modality's)."""
    instance = _upload(ours, network)[0]["ID"]
    target = network["target"]
    port = target.server.server_address[1]
    orthanc_config(DicomAet="OURS", DicomScuTimeout=10, DicomModalities={
        **network["modalities"], "plain": ["TARGET", "127.0.0.1", port],
        "own": {"AET": "TARGET", "Host": "127.0.0.1", "Port": port, "LocalAet": "MODLOCAL"}})
    for modality, body, calling in (("own", {"LocalAet": "PAYLOAD"}, "MODLOCAL"), ("own", {}, "MODLOCAL"),
                                     ("plain", {"LocalAet": "PAYLOAD"}, "PAYLOAD"), ("plain", {}, "OURS")):
        answer = ours.post(f"/modalities/{modality}/store", data=json.dumps({"Resources": [instance], **body}),
                           content_type="application/json")
        assert answer.status_code == 200, answer.content
        assert target.calling[-1] == calling, (modality, body)


@pytest.mark.parametrize(("port", "status"), [("14242", 5), (1.5, 5), (True, 5), (-1, 3), (70000, 3)])
def test_store_port_of_a_wrong_type_or_out_of_range(network, ours, port, status) -> None:
    """Toolbox::GetJsonUnsignedIntegerField: BadParameterType (5) or ParameterOutOfRange (3), both 400."""
    instance = _upload(ours, network)[0]["ID"]
    answer = ours.post("/modalities/down/store", data=json.dumps({"Resources": [instance], "Port": port}),
                       content_type="application/json")
    assert answer.status_code == 400 and answer.json()["OrthancStatus"] == status


PIXELS = bytes(range(16)) * 512    # 64 x 64 pixels of 16 bits allocated, values within the 12 bits stored


def _compressed_upload(client) -> tuple[str, str]:
    """A JPEG 2000 (lossless) CT in our archive: (Orthanc ID, SOP Instance UID)."""
    from archive.dicom.transcode import J2K_LOSSLESS, file_transcode

    sop = "1.2.826.0.1.3680043.8.498.7901.1.1"
    data = file_transcode(make_dicom(PatientID="J2K01", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7901",
                                     SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7901.1", SOPInstanceUID=sop,
                                     Rows=64, Columns=64, PixelData=PIXELS), syntax=J2K_LOSSLESS)
    return client.post("/instances", data=data, content_type="application/dicom").json()["ID"], sop


def test_store_sends_a_compressed_file_as_stored_to_a_peer_that_takes_it(network, ours) -> None:
    """Each syntax of the files is proposed alone: real Orthanc, offered JPEG 2000 along with the uncompressed
    syntaxes in one presentation context, chose an uncompressed one and the file went decompressed (and under a
    new SOP Instance UID, pydicom's default when decoding)."""
    instance, _sop = _compressed_upload(ours)
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance]}),
                       content_type="application/json")
    assert answer.status_code == 200 and answer.json()["FailedInstancesCount"] == 0
    there = requests.get(f"{network['pacs']}/instances/{instance}/metadata/TransferSyntax")
    assert there.status_code == 200 and there.text == "1.2.840.10008.1.2.4.90"
    # The same dataset bytes (Orthanc writes its own file meta group)
    mine = ours.get(f"/instances/{instance}/file").content
    theirs = requests.get(f"{network['pacs']}/instances/{instance}/file").content
    assert theirs[part10_meta(theirs)[0]:] == mine[part10_meta(mine)[0]:]


def test_store_sends_a_stored_dataset_without_file_meta(network, ours) -> None:
    """A file without preamble nor file meta group (a raw dataset, as some sample files are) is stored here as
    in Orthanc; sending it took its missing transfer syntax for a bad file."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = make_dataset(PatientID="RAW01", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7911",
                      SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7911.1",
                      SOPInstanceUID="1.2.826.0.1.3680043.8.498.7911.1.1")
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, True
    write_dataset(raw, ds)
    instance = ours.post("/instances", data=raw.getvalue(), content_type="application/dicom").json()["ID"]
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance]}),
                       content_type="application/json")
    assert answer.status_code == 200 and answer.json()["FailedInstancesCount"] == 0
    assert requests.get(f"{network['pacs']}/instances/{instance}").status_code == 200


def test_store_of_a_class_the_peer_refuses(network, ours) -> None:
    """Real Orthanc refuses an unknown SOP class (UnknownSopClassAccepted is false): the association still
    goes up (common classes are proposed too, as Orthanc does), so the answer is Orthanc 1.12's error for the
    instance, and a permissive job goes on with the others."""
    unknown = ours.post("/instances", content_type="application/dicom", data=make_dicom(
        PatientID="UNKNOWN01", SOPClassUID="1.2.826.0.1.3680043.8.498.1", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7921",
        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7921.1", SOPInstanceUID="1.2.826.0.1.3680043.8.498.7921.1.1")).json()["ID"]
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [unknown]}),
                       content_type="application/json")
    assert answer.status_code == 500 and answer.json()["OrthancStatus"] == 2015
    assert answer.json()["Details"] == ("Cannot C-Store an instance of SOPClassUID 1.2.826.0.1.3680043.8.498.1, the "
                                        "destination has not accepted any TransferSyntax for this SOPClassUID.")
    known = _upload(ours, network)[0]["ID"]
    requests.delete(f"{network['pacs']}/instances/{known}")
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [unknown, known], "Permissive": True}),
                       content_type="application/json")
    assert answer.status_code == 200 and answer.json()["FailedInstancesCount"] == 0
    assert requests.get(f"{network['pacs']}/instances/{known}").status_code == 200


def test_store_of_an_instance_without_sop_class(network, ours) -> None:
    """The C-STORE names the dataset's SOP class and instance: without them, Orthanc's NoSopClassOrInstance."""
    import io

    ds = make_dataset(PatientID="NOCLASS01", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7931",
                      SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7931.1",
                      SOPInstanceUID="1.2.826.0.1.3680043.8.498.7931.1.1")
    del ds.SOPClassUID      # the file meta group still names one
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    instance = ours.post("/instances", data=out.getvalue(), content_type="application/dicom").json()["ID"]
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance]}),
                       content_type="application/json")
    assert answer.status_code == 500 and answer.json()["OrthancStatus"] == 2014
    assert answer.json()["Details"] == "Unable to determine the SOP class/instance for C-STORE with AET PACS"


def test_store_names_the_datasets_sop_class_not_the_file_metas(network, ours) -> None:
    """A file whose file meta group names another SOP class than its dataset (one of the sample corpus): real
    Orthanc refused the C-STORE named after the meta (0xA900), and takes it named after the dataset, as its own
    SCU sends it."""
    import io

    ds = make_dataset(PatientID="META01", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7941",
                      SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7941.1",
                      SOPInstanceUID="1.2.826.0.1.3680043.8.498.7941.1.1")
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    instance = ours.post("/instances", data=out.getvalue(), content_type="application/dicom").json()["ID"]
    answer = ours.post("/modalities/pacs/store", data=json.dumps({"Resources": [instance]}),
                       content_type="application/json")
    assert answer.status_code == 200
    assert requests.get(f"{network['pacs']}/instances/{instance}/metadata/SopClassUid").text == \
        "1.2.840.10008.5.1.4.1.1.2"


class UncompressedScp:
    """A storage SCP that accepts CT images in Implicit VR Little Endian only."""

    def __init__(self, status: int = 0x0000):
        self.received: list = []
        self.status = status
        ae = AE(ae_title="PLAIN")
        ae.add_supported_context(CTImageStorage, ImplicitVRLittleEndian)
        handlers = [(evt.EVT_C_STORE, self._store)]
        self.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = self.server.server_address[1]

    def _store(self, event) -> int:
        self.received.append((str(event.context.transfer_syntax), event.dataset))
        return self.status


@pytest.mark.parametrize("allowed", [True, False])
def test_store_transcodes_only_where_allowed(network, ours, orthanc_config, allowed) -> None:
    """A peer that takes no compressed syntax gets the file decoded, the same instance (its SOP Instance UID
    kept), unless the modality's AllowTranscoding is false: then Orthanc's error."""
    instance, sop = _compressed_upload(ours)
    plain = UncompressedScp()
    try:
        modalities = {**network["modalities"], "plain": {"AET": "PLAIN", "Host": "127.0.0.1", "Port": plain.port,
                                                         "AllowTranscoding": allowed}}
        orthanc_config(DicomAet="OURS", DicomModalities=modalities, DicomScuTimeout=10)
        answer = ours.post("/modalities/plain/store", data=json.dumps({"Resources": [instance]}),
                           content_type="application/json")
    finally:
        plain.server.shutdown()
    if allowed:
        assert answer.status_code == 200 and answer.json()["FailedInstancesCount"] == 0
        [(syntax, ds)] = plain.received
        assert syntax == ImplicitVRLittleEndian and ds.SOPInstanceUID == sop
        assert ds.PixelData == PIXELS
    else:
        assert answer.status_code == 500 and plain.received == []
        assert answer.json()["Details"] == (
            "No valid presentation context was negotiated for SOP class UID [1.2.840.10008.5.1.4.1.1.2] and "
            "transfer syntax [1.2.840.10008.1.2.4.90] while sending to modality [PLAIN]")


@pytest.mark.parametrize(("status", "failed"), [(0x0111, False), (0xB007, False), (0xA700, True)])
def test_store_statuses_that_store_the_instance(network, ours, orthanc_config, status, failed) -> None:
    """Warnings and, since Orthanc 1.12.4, 0x0111 (duplicate SOP instance) count as stored."""
    instance = _upload(ours, network)[0]["ID"]
    plain = UncompressedScp(status=status)
    try:
        modalities = {**network["modalities"], "plain": ["PLAIN", "127.0.0.1", plain.port]}
        orthanc_config(DicomAet="OURS", DicomModalities=modalities, DicomScuTimeout=10)
        answer = ours.post("/modalities/plain/store", data=json.dumps({"Resources": [instance]}),
                           content_type="application/json")
    finally:
        plain.server.shutdown()
    assert len(plain.received) == 1
    if failed:
        assert answer.status_code == 500
        assert answer.json()["Details"] == 'C-STORE SCU to AET "PLAIN" has failed with DIMSE status 0xA700'
        # 1.12.10: the DIMSE status of the failed C-STORE (Orthanc's MakeDimseErrorStatusPayload)
        assert answer.json()["ErrorPayload"] == {"Type": "Dimse", "Content": {"DimseErrorStatus": 0xA700}}
    else:
        assert answer.status_code == 200 and answer.json()["FailedInstancesCount"] == 0


def test_permissive_store_ignores_the_instances_refused(network, ours, orthanc_config) -> None:
    """As Orthanc's SetOfCommandsJob (checked with real Orthanc 1.10.1: a peer answering 0xA700 to everything,
    or down): a permissive job ignores the failed C-STOREs and does not count them in FailedInstancesCount,
    which only counts the instances removed since the job was issued."""
    ids = [item["ID"] for item in _upload(ours, network)]
    plain = UncompressedScp(status=0xA700)
    try:
        modalities = {**network["modalities"], "plain": ["PLAIN", "127.0.0.1", plain.port]}
        orthanc_config(DicomAet="OURS", DicomModalities=modalities, DicomScuTimeout=10)
        answer = ours.post("/modalities/plain/store", data=json.dumps({"Resources": ids, "Permissive": True}),
                           content_type="application/json")
    finally:
        plain.server.shutdown()
    assert answer.status_code == 200 and len(plain.received) == 3
    assert answer.json()["InstancesCount"] == 3 and answer.json()["FailedInstancesCount"] == 0


def test_store_job_counts_instances_deleted_while_it_runs(network, ours, monkeypatch) -> None:
    """The job looks the files up a batch at a time: an instance deleted while it runs, after its batch was
    looked up (its file is gone) or before (its row is gone), is counted in FailedInstancesCount, as Orthanc
    counts an instance removed after the job was issued; the others are sent."""
    from archive.levels import Level
    from archive.network import scu
    from archive.services import resource_delete
    from jobs.models import Job

    monkeypatch.setattr(dicom_jobs, "_FILES_BATCH", 2)
    ids = [ours.post("/instances", content_type="application/dicom", data=make_dicom(
        PatientID="BATCHES", StudyInstanceUID="1.2.826.0.1.3680043.8.498.7960",
        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.7960.1",
        SOPInstanceUID=f"1.2.826.0.1.3680043.8.498.7960.1.{k}")).json()["ID"] for k in range(5)]
    uids = {i: ours.get(f"/instances/{i}").json()["MainDicomTags"]["SOPInstanceUID"] for i in ids}
    store = scu.StoreConnection.store
    deleted: list[str] = []

    def store_then_delete(connection, data):
        answer = store(connection, data)
        if not deleted:     # after the first instance: one of its batch, and one of the next batch
            order = Job.objects.order_by("-id").first().parameters["instances"]
            deleted.extend((order[1], order[3]))
            for public_id in deleted:
                resource_delete(level=Level.INSTANCE, public_id=public_id)
        return answer

    monkeypatch.setattr(scu.StoreConnection, "store", store_then_delete)
    target = network["target"]
    before = list(target.received)
    content = ours.post("/modalities/down/store", content_type="application/json", data=json.dumps(
        {"Resources": ids, "CalledAet": "TARGET", "Host": "127.0.0.1", "Port": target.server.server_address[1]})).json()
    assert content["InstancesCount"] == 5 and content["FailedInstancesCount"] == 2
    received = [uid for uid, _aet, _id in target.received[len(before):]]
    assert sorted(received) == sorted(uids[i] for i in ids if i not in deleted)


def test_store_straight_as_orthanc(network, ours) -> None:
    data = make_dicom(PatientID="STRAIGHT", SOPInstanceUID="1.2.826.0.1.3680043.8.498.7901")
    for uri, raw in (("/modalities/pacs/store-straight", data), ("/modalities/pacs/store-straight", b"notdicom"),
                     ("/modalities/down/store-straight", data), ("/modalities/nope/store-straight", data)):
        theirs, mine = _both(network, ours, "POST", uri, raw=raw)
        assert mine == theirs, uri


# -- C-MOVE and C-GET -----------------------------------------------------------------------------------------

def test_move_to_a_target_as_a_job(network, ours) -> None:
    target = network["target"]
    before = len(target.received)
    answer = ours.post("/modalities/pacs/move", data=json.dumps(
        {"Level": "Study", "Resources": [{"StudyInstanceUID": STUDY_UID, "PatientName": "x*"}],
         "TargetAet": "TARGET"}), content_type="application/json")
    assert answer.status_code == 200, answer.content
    content = answer.json()
    assert content == {
        "Description": "REST API", "LocalAet": "OURS", "RemoteAet": "PACS", "TargetAet": "TARGET",
        "Query": [{"0008,0052": "STUDY", "0010,0010": "x*", "0020,000d": STUDY_UID}],
        "Details": [{"DimseErrorStatus": 0, "Query": {"0008,0052": "STUDY", "0010,0010": "x*", "0020,000d": STUDY_UID},
                     "ReceivedInstancesIds": []}]}
    moved = target.received[before:]
    assert len(moved) == 3 and {m[1] for m in moved} == {"OURS"}


def test_move_errors_as_orthanc(network, ours) -> None:
    for body in ({"Level": "Study", "Resources": "x"},
                 {"Level": "Study", "Resources": [{"Foo": "1"}]},
                 {"Level": "Study", "Resources": [{"StudyInstanceUID": 3}]},
                 {"Level": "Bad", "Resources": [{"StudyInstanceUID": STUDY_UID}]}):
        theirs, mine = _both(network, ours, "POST", "/modalities/pacs/move", body)
        assert mine == theirs, body
    theirs, mine = _both(network, ours, "POST", "/modalities/down/move",
                         {"Level": "Study", "Resources": [{"StudyInstanceUID": STUDY_UID}]})
    # 1.12.10 adds the failed job's Details as the ErrorPayload (1.10.1 has none)
    assert mine[1].pop("ErrorPayload") == {"Type": "RetrieveJob", "Content": [
        {"DimseErrorStatus": 0, "Query": {"0008,0052": "STUDY", "0020,000d": STUDY_UID}, "ReceivedInstancesIds": []}]}
    assert mine == theirs


def test_move_failure_is_the_jobs_error(network, ours) -> None:
    """1.10.1 answered 422 outside a job; 1.12 runs the move as a job whose failure is the answer."""
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "9.9.9"}], "TargetAet": "TARGET"}
    theirs = requests.post(network["ref"] + "/modalities/pacs/move", data=json.dumps(body)).json()
    mine = ours.post("/modalities/pacs/move", data=json.dumps(body), content_type="application/json")
    assert mine.json()["Details"] == theirs["Details"]
    assert mine.json()["OrthancStatus"] == theirs["OrthancStatus"] == 9
    payload = mine.json()["ErrorPayload"]
    assert payload["Type"] == "RetrieveJob" and payload["Content"][0]["DimseErrorStatus"] == 0xC000
    body["Asynchronous"] = True
    job = ours.get(ours.post("/modalities/pacs/move", data=json.dumps(body),
                             content_type="application/json").json()["Path"]).json()
    assert job["State"] == "Failure" and job["ErrorCode"] == 9
    assert job["Content"]["Details"][0]["DimseErrorStatus"] == 0xC000


def test_get_stores_the_instances_here(network, ours) -> None:
    answer = ours.post("/modalities/pacs/get", data=json.dumps(
        {"Level": "Series", "Resources": [{"StudyInstanceUID": STUDY_UID, "SeriesInstanceUID": SERIES_UID}]}),
        content_type="application/json")
    assert answer.status_code == 200, answer.content
    content = answer.json()
    assert "TargetAet" not in content
    received = content["Details"][0]["ReceivedInstancesIds"]
    assert len(received) == 3
    assert sorted(received) == sorted(ours.get("/instances").json())


def test_retrieve_one_answer_with_move_as_orthanc(network, ours) -> None:
    body = {"Level": "Study", "Query": {"PatientID": "PAT001"}}
    mine, theirs = _query(ours, body), _ref_query(network, body)
    ref_content = requests.post(f"{network['ref']}/queries/{theirs}/answers/0/retrieve", data=b"TARGET").json()
    target = network["target"]
    before = len(target.received)
    content = ours.post(f"/queries/{mine}/answers/0/retrieve", data=b"TARGET", content_type="text/plain").json()
    assert _without(content, "Details", "TargetAet", "LocalAet") == _without(ref_content, "LocalAet")
    assert content["TargetAet"] == "TARGET" and content["LocalAet"] == "OURS"
    assert len(target.received) == before + 3


def test_retrieve_all_answers_with_get(network, ours) -> None:
    query = _query(ours, {"Level": "Series", "Query": {"Modality": "MR"}})
    content = ours.post(f"/queries/{query}/retrieve", data=json.dumps({"RetrieveMethod": "C-GET", "Full": True}),
                        content_type="application/json").json()
    assert content["Query"][0]["0008,0052"] == {"Name": "QueryRetrieveLevel", "Type": "String", "Value": "SERIES"}
    assert len(content["Details"][0]["ReceivedInstancesIds"]) == 1
    assert ours.post(f"/queries/{query}/retrieve", data=json.dumps({"RetrieveMethod": "C-FOO"}),
                     content_type="application/json").status_code == 400
    # 1.12.11 reads it with SerializationToolbox::ReadString (1.10.1 has no RetrieveMethod)
    wrong = ours.post(f"/queries/{query}/retrieve", data=json.dumps({"RetrieveMethod": 5}),
                      content_type="application/json")
    assert (wrong.status_code, wrong.json()["OrthancStatus"], wrong.json()["Details"]) == (
        400, 15, "String value expected in field: RetrieveMethod")


def test_get_brings_a_compressed_instance_as_the_pacs_stores_it(network, ours) -> None:
    """JPEG 2000 (lossy) in real Orthanc, which cannot decode it: offered the class in one context with the
    uncompressed syntaxes, it chose an uncompressed one and failed the C-GET ("Cannot transcode"). The class is
    asked first (SOPClassesInStudy, the answer not having it) and each compressed syntax proposed apart."""
    from archive.dicom.transcode import J2K, file_transcode

    study = "1.2.826.0.1.3680043.8.498.7951"
    data = file_transcode(make_dicom(PatientID="GETJ2K", StudyInstanceUID=study, SeriesInstanceUID=f"{study}.1",
                                     SOPInstanceUID=f"{study}.1.1", Rows=64, Columns=64, PixelData=PIXELS),
                          syntax=J2K)
    instance = requests.post(f"{network['pacs']}/instances", data=data).json()["ID"]
    query = _query(ours, {"Level": "Study", "Query": {"StudyInstanceUID": study}})
    content = ours.post(f"/queries/{query}/retrieve", data=json.dumps({"RetrieveMethod": "C-GET"}),
                        content_type="application/json")
    assert content.status_code == 200, content.content
    assert content.json()["Details"][0]["ReceivedInstancesIds"] == [instance]
    assert ours.get(f"/instances/{instance}/metadata/TransferSyntax").content == J2K.encode()


def test_default_retrieve_method_is_configurable(network, ours, orthanc_config) -> None:
    orthanc_config(DicomAet="OURS", DicomModalities=network["modalities"], DicomDefaultRetrieveMethod="C-GET")
    query = _query(ours, {"Level": "Patient", "Query": {"PatientID": "PAT002"}})
    answer = ours.post(f"/queries/{query}/retrieve", data=b"", content_type="text/plain")
    assert answer.status_code == 200, answer.content
    assert len(answer.json()["Details"][0]["ReceivedInstancesIds"]) == 1


# -- storage commitment ---------------------------------------------------------------------------------------

def test_storage_commitment_report_as_orthanc(network, ours) -> None:
    stored = _upload(ours, network)
    body = {"Resources": [stored[0]["ParentStudy"]],
            "DicomInstances": [{"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "SOPInstanceUID": "9.9.9"}]}
    requests.post(network["ref"] + "/modalities/pacs/store", data=stored[0]["ParentStudy"]).raise_for_status()
    ours.post("/modalities/pacs/store", data=stored[0]["ParentStudy"], content_type="text/plain")
    theirs = requests.post(network["ref"] + "/modalities/pacs/storage-commitment", data=json.dumps(body)).json()
    mine = ours.post("/modalities/pacs/storage-commitment", data=json.dumps(body),
                     content_type="application/json").json()
    assert mine["Path"] == f"/storage-commitment/{mine['ID']}"
    expected = _wait_report(lambda: requests.get(network["ref"] + theirs["Path"]).json())
    report = _wait_report(lambda: ours.get(mine["Path"]).json(), network["target"])
    key = lambda item: item["SOPInstanceUID"]  # noqa: E731
    for name in ("Success", "Failures"):
        report[name].sort(key=key)
        expected[name].sort(key=key)
    assert report == expected
    theirs_remove = requests.post(network["ref"] + theirs["Path"] + "/remove")
    mine_remove = ours.post(mine["Path"] + "/remove")
    assert mine_remove.status_code == theirs_remove.status_code == 500
    assert mine_remove.json()["Details"].replace(mine["ID"], theirs["ID"]) == theirs_remove.json()["Details"]
    theirs, mine = _both(network, ours, "GET", "/storage-commitment/nope")
    assert mine == theirs


def test_store_with_storage_commitment_then_remove(network, ours) -> None:
    stored = _upload(ours, network)
    content = ours.post("/modalities/pacs/store", data=json.dumps(
        {"Resources": [stored[0]["ParentSeries"]], "StorageCommitment": True}),
        content_type="application/json").json()
    uid = content["StorageCommitmentTransactionUID"]
    report = _wait_report(lambda: ours.get(f"/storage-commitment/{uid}").json(), network["target"])
    assert report["Status"] == "Success" and len(report["Success"]) == 3
    assert ours.post(f"/storage-commitment/{uid}/remove").json() == {}
    assert ours.get("/instances").json() == []


def _wait_report(read, target: TargetScp | None = None):
    import time

    for _ in range(300):  # Orthanc answers from a job of its own
        if target is not None:
            target.apply_reports()
        report = read()
        if report.get("Status") != "Pending":
            return report
        time.sleep(0.05)
    return report
