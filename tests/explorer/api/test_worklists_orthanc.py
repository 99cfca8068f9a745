"""/modalities/{id}/find-worklist against a real worklist SCP: Orthanc 1.10.1 with its sample ModalityWorklists
plugin serving the worklists of DCMTK's distribution (the samples' Worklists/Dcmtk/Database, converted with
dump2dcm) and a Latin-1 one; a second Orthanc is the reference SCU. DCMTK's own queries
(Worklists/Dcmtk/Queries) and a few of ours go to the reference and to us, and the answers must be the same.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
import requests
from django.test import Client

from bench.servers import free_port, orthanc_server
from tests.samples import samples_dir

pytestmark = pytest.mark.django_db

PLUGIN = Path("/usr/share/orthanc/plugins/libModalityWorklists.so")


def _query_json(ds: pydicom.Dataset) -> dict:
    """A worklist query file as the "Query" of /find-worklist: keywords (or "gggg,eeee"), sequences as lists."""
    out: dict = {}
    for element in ds:
        if element.tag.group in (0x0000, 0x0002):
            continue
        name = element.keyword or f"{element.tag.group:04x},{element.tag.element:04x}"
        if element.VR == "SQ":
            out[name] = [_query_json(item) for item in element.value]
        elif isinstance(element.value, pydicom.multival.MultiValue):
            out[name] = "\\".join(str(v) for v in element.value)
        else:
            out[name] = "" if element.value is None else str(element.value)
    return out


def _dump2dcm(dump: Path, target: Path) -> Path:
    subprocess.run(["dump2dcm", "-q", "-g", str(dump), str(target)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def worklists(tmp_path_factory):
    if not PLUGIN.exists() or shutil.which("dump2dcm") is None:
        pytest.fail("the orthanc package's ModalityWorklists plugin and DCMTK's dump2dcm are needed (apt-get install "
                    "orthanc dcmtk)")
    samples = samples_dir() / "Worklists"
    database = tmp_path_factory.mktemp("worklists")
    for dump in sorted((samples / "Dcmtk" / "Database").glob("*.dump")):
        _dump2dcm(dump, database / (dump.stem + ".wl"))
    _dump2dcm(samples / "Encodings" / "database.dump", database / "encodings.wl")
    shutil.copy(samples / "Encodings" / "issue49-latin1.wl", database / "issue49-latin1.wl")
    queries = {}
    for dump in sorted((samples / "Dcmtk" / "Queries").glob("*.dump")):
        queries[dump.stem] = _query_json(pydicom.dcmread(_dump2dcm(dump, database.parent / "query.dcm"), force=True))
    queries["utf8-wildcard"] = _query_json(pydicom.dcmread(
        _dump2dcm(samples / "Encodings" / "query.dump", database.parent / "query.dcm"), force=True))
    scp_port, ref_port = free_port(), free_port()
    scp_extra = {"DicomAet": "WLSCP", "Plugins": [str(PLUGIN)], "Worklists": {"Enable": True, "Database": str(database)},
                 "DicomModalities": {"ref": ["REF", "127.0.0.1", ref_port], "ours": ["OURS", "127.0.0.1", 1]}}
    modalities = {"wl": ["WLSCP", "127.0.0.1", scp_port]}
    with orthanc_server(dicom_port=scp_port, extra=scp_extra), \
            orthanc_server(dicom_port=ref_port, extra={"DicomAet": "REF", "DicomModalities": modalities}) as ref:
        yield {"ref": ref, "modalities": modalities, "queries": queries}


QUERIES = [f"wlistqry{n}" for n in range(13)] + ["utf8-wildcard"]
EXTRA = {
    "all": {},
    "names": {"PatientName": "", "PatientID": "", "SpecificCharacterSet": ""},
    "wildcard-in-sequence": {"PatientName": "V*", "ScheduledProcedureStepSequence": [
        {"Modality": "MR", "ScheduledStationAETitle": "", "ScheduledProcedureStepStartDate": ""}]},
    "date-range": {"PatientName": "", "ScheduledProcedureStepSequence": [
        {"ScheduledProcedureStepStartDate": "19951001-19951031", "ScheduledProcedureStepStartTime": ""}]},
}


def _answers(status: int, content: bytes):
    body = json.loads(content)
    return status, sorted(json.dumps(answer, sort_keys=True) for answer in body) if status == 200 else body


@pytest.mark.parametrize("name", QUERIES + list(EXTRA))
def test_find_worklist_answers_as_orthanc(worklists, orthanc_config, name):
    query = worklists["queries"].get(name, EXTRA.get(name))
    orthanc_config(DicomAet="OURS", DicomModalities=worklists["modalities"], DicomScuTimeout=10)
    theirs = requests.post(worklists["ref"] + "/modalities/wl/find-worklist", json={"Query": query}, timeout=60)
    mine = Client().post("/modalities/wl/find-worklist", json.dumps({"Query": query}), content_type="application/json")
    assert _answers(mine.status_code, mine.content) == _answers(theirs.status_code, theirs.content)


def test_the_worklist_queries_find_something(worklists, orthanc_config):
    """The comparison means something: the SCP holds the worklists, and most queries find some of them."""
    orthanc_config(DicomAet="OURS", DicomModalities=worklists["modalities"], DicomScuTimeout=10)
    counts = {}
    for name in ("all", "wlistqry0", "wlistqry5", "utf8-wildcard"):
        query = worklists["queries"].get(name, EXTRA.get(name))
        answer = Client().post("/modalities/wl/find-worklist", json.dumps({"Query": query}),
                               content_type="application/json")
        counts[name] = len(answer.json())
    assert counts["all"] == 12 and counts["wlistqry0"] == 12 and 0 < counts["wlistqry5"] < 12
    assert counts["utf8-wildcard"] == 1
