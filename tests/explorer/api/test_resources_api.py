"""The resources family (/patients, /studies, /series, /instances and their sub-routes), checked against real
Orthanc: the answers Orthanc 1.10.1 recorded, replayed route by route, then each behaviour level by level
(checked live against 1.10.1, and against Orthanc 1.12's source where 1.12 differs)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from archive import services
from archive.identifiers import ResourceIds
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import Attachment
from tests.dicom_factory import make_dicom
from tests.samples import GOLDEN_FILES, golden, sample_path

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1", username="")
LEVELS = list(Level)
ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")


def store(**overrides: Any) -> ResourceIds:
    return instance_store(data=make_dicom(**overrides), origin=REST).ids


def id_at(ids: ResourceIds, level: Level) -> str:
    return getattr(ids, level.name.lower())


def stored_files(storage_dir: Path) -> set[str]:
    """The attachments present in the storage area, by name (their UUID)."""
    return {p.name for p in storage_dir.rglob("*") if p.is_file()}


# --- Golden replay: real Orthanc 1.10.1's answers (tools/capture-golden.py over tests.samples.GOLDEN_FILES) ---

# Normalized as /work/shared/tools/compare-golden.py does: fields that change from run to run, or that Orthanc
# added after 1.10.1 (found by name at any depth), are not compared.
VOLATILE = {"LastUpdate", "FileUuid", "Uuid", "Date", "ReceptionDate", "CompletionTime", "CreationTime",
            "Timestamp", "DicomPort", "HttpPort", "Name", "Version", "ApiVersion", "DatabaseVersion",
            "IsHttpServerSecure", "PluginsEnabled", "DatabaseBackendPlugin", "StorageAreaPlugin", "CheckRevisions",
            "Details", "Method", "Uri"}
NEWER = {"Labels", "TimezoneOffsetFromUTC", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
         "RequestAttributesSequence"}

# The route shapes of the recording that belong to this family ({id} stands for an Orthanc identifier). The
# metadata, attachments and labels sub-routes, /changes and /statistics have their own test modules.
LIST_QUERIES = ("", "?expand", "?expand&short", "?since=0&limit=2", "?expand&requested-tags=0008,0020;0010,0010")
INSTANCE_SUBROUTES = ("", "/tags", "/tags?short", "/tags?simplify", "/simplified-tags", "/header", "/header?short",
                      "/module", "/statistics", "/frames", "/patient", "/study", "/series", "/content",
                      "/content/0010-0010")
PARENT_SUBROUTES = ("", "/instances", "/shared-tags", "/shared-tags?short", "/module", "/statistics",
                    "/instances-tags?short")
GOLDEN_SHAPES = (
    [f"/{level.plural}{query}" for level in LEVELS for query in LIST_QUERIES]
    + [f"/instances/{{id}}{sub}" for sub in INSTANCE_SUBROUTES]
    + [f"/{plural}/{{id}}{sub}" for plural in ("patients", "studies", "series") for sub in PARENT_SUBROUTES]
    + ["/series/{id}/ordered-slices", "/studies/{id}/module-patient", "/patients/nope", "/instances/nope/tags"]
)
OTHER_FAMILIES = re.compile(r"/(metadata|attachments|labels)(\?|$)")

# Main tags that Orthanc 1.12.5 added for QIDO-RS, as ?short names them: TimezoneOffsetFromUTC (studies and
# series), PerformedProcedureStepStartDate and PerformedProcedureStepStartTime (series). NEWER filters them by
# name only, which misses the hexadecimal keys of the short format.
# RequestAttributesSequence (0040,0275) became a series main tag in 1.11.1 (kept in MainDicomSequences).
NEWER_MAIN_TAGS_SHORT = ("0008,0201", "0040,0244", "0040,0245", "0040,0275")


def shape_of(uri: str) -> str:
    return ORTHANC_ID.sub("{id}", uri)


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if k not in VOLATILE and k not in NEWER}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def recorded_form(response: HttpResponse) -> Any:
    """Our answer as capture-golden.py recorded Orthanc's: the JSON, else the number of bytes."""
    try:
        return json.loads(response.content)
    except ValueError:
        return {"_bytes": len(response.content)}


def without_newer_behaviours(uri: str, answer: Any) -> Any:
    """Our answer minus what Orthanc 1.12 adds to the 1.10.1 answer of the same request, each named below."""
    answer = copy.deepcopy(answer)
    if "requested-tags=" in uri:
        # `requested-tags` is Orthanc 1.12.4's name for the `requestedTags` of 1.11.0: 1.10.1 knows neither and
        # ignores it, so its answer lacks the RequestedTags field that each resource carries in 1.12.
        for item in answer:
            assert "RequestedTags" in item, uri
            del item["RequestedTags"]
    if "short" in uri and isinstance(answer, list):
        # The 1.12.5 main tags (NEWER_MAIN_TAGS_SHORT) appear in the MainDicomTags of `?expand&short` lists.
        for item in answer:
            for key in NEWER_MAIN_TAGS_SHORT:
                item["MainDicomTags"].pop(key, None)
    return answer


@pytest.fixture
def golden_archive():
    """The twelve files the recording was made with, stored in the same order."""
    for rel in GOLDEN_FILES:
        instance_store(data=sample_path(rel).read_bytes(), origin=REST)


def test_the_replay_covers_every_resource_route_of_the_recording():
    recorded = {shape_of(key.split(" ", 1)[1]) for key in golden() if key.startswith("GET /")}
    family = {s for s in recorded if re.match(r"/(patients|studies|series|instances)\b", s)
              and not OTHER_FAMILIES.search(s)}
    assert family == set(GOLDEN_SHAPES)


@pytest.mark.parametrize("shape", GOLDEN_SHAPES)
def test_answers_as_orthanc_recorded(client, golden_archive, shape):
    entries = {key.split(" ", 1)[1]: ref for key, ref in golden().items()
               if key.startswith("GET ") and shape_of(key.split(" ", 1)[1]) == shape}
    assert entries, f"no recorded answer for {shape}"
    for uri, ref in entries.items():
        response = client.get(uri)
        assert response.status_code == ref["status"], uri
        # Error bodies are compared too (compare-golden.py only compares their status).
        ours = without_newer_behaviours(uri, recorded_form(response))
        assert normalized(ours) == normalized(ref["json"]), uri


# --- Per level: lists, one resource, unknown IDs, delete ---

@pytest.fixture
def three():
    """Three instances in three patients: three resources at every level, in this order."""
    return [store(PatientID=f"P{i}", StudyInstanceUID=f"1.2.{i}", SeriesInstanceUID=f"1.2.{i}.1",
                  SOPInstanceUID=f"1.2.{i}.1.1") for i in range(3)]


@pytest.mark.parametrize("level", LEVELS)
def test_list_gives_ids_in_insertion_order(client, three, level):
    response = client.get(f"/{level.plural}")
    assert response.status_code == 200
    assert response.json() == [id_at(ids, level) for ids in three]


@pytest.mark.parametrize("level", LEVELS)
def test_empty_archive_lists_nothing(client, level):
    assert client.get(f"/{level.plural}").json() == []


@pytest.mark.parametrize("level", LEVELS)
def test_expand_gives_the_resources(client, three, level):
    resources = client.get(f"/{level.plural}?expand").json()
    assert [r["ID"] for r in resources] == [id_at(ids, level) for ids in three]
    assert {r["Type"] for r in resources} == {level.value}


@pytest.mark.parametrize("level", LEVELS)
def test_expand_false_gives_ids(client, three, level):
    # Orthanc 1.12.2: every expand argument takes true/false.
    assert client.get(f"/{level.plural}?expand=false").json() == [id_at(ids, level) for ids in three]


@pytest.mark.parametrize("level", LEVELS)
def test_response_content_gives_the_parts_asked_for(client, three, level):
    """1.12.5: ``response-content``, ``;``-separated, as /tools/find's ResponseContent; with or without expand."""
    for query in ("response-content=MainDicomTags;Parent", "expand&response-content=Parent;MainDicomTags"):
        items = client.get(f"/{level.plural}?{query}&since=1&limit=1").json()
        assert len(items) == 1
        item = items[0]
        assert (item["ID"], item["Type"]) == (id_at(three[1], level), level.value)
        parent = {Level.STUDY: "ParentPatient", Level.SERIES: "ParentStudy", Level.INSTANCE: "ParentSeries"}
        expected = {"ID", "Type", "MainDicomTags"} | ({parent[level]} if level in parent else set()) \
            | ({"PatientMainDicomTags"} if level is Level.STUDY else set())
        assert set(item) == expected
        if level in parent:
            assert item[parent[level]] == id_at(three[1], list(Level)[level.depth - 1])
    labelled = client.get(f"/{level.plural}?response-content=Labels&requested-tags=PatientID").json()
    assert [(r["Labels"], r["RequestedTags"]) for r in labelled] == [([], {"PatientID": f"P{i}"}) for i in range(3)]


@pytest.mark.parametrize("level", LEVELS)
def test_response_content_empty_gives_ids_and_unknown_is_an_error(client, three, level):
    assert client.get(f"/{level.plural}?expand&response-content=").json() == [id_at(ids, level) for ids in three]
    response = client.get(f"/{level.plural}?response-content=MainDicomTags;Everything")
    assert response.status_code == 400
    assert (response.json()["OrthancStatus"], response.json()["Details"]) == (
        3, "Unsupported value for ResponseContent: Everything")


def test_response_content_list_takes_a_fixed_number_of_queries(client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/instances?response-content=Parent;MainDicomTags;Metadata;Labels").status_code == 200
        return len(captured)

    store(SOPInstanceUID="1.9.1")
    one = queries()
    for i in range(5):
        store(SOPInstanceUID=f"1.9.1.{i}", SeriesInstanceUID=f"1.9.{i}")
    assert queries() == one


@pytest.mark.parametrize("level", LEVELS)
def test_since_and_limit_give_a_page(client, three, level):
    assert client.get(f"/{level.plural}?since=1&limit=1").json() == [id_at(three[1], level)]


@pytest.mark.parametrize("level", LEVELS)
def test_since_past_the_end_gives_nothing(client, three, level):
    assert client.get(f"/{level.plural}?since=3&limit=2").json() == []


def test_since_and_limit_read_as_orthanc_reads_an_uint64(client, three):
    """Up to 2^64 - 1 (ours gave a 500 from 2^63: beyond the databases' integers), then a bad parameter."""
    assert client.get(f"/studies?since={2 ** 63}&limit=1").json() == []
    assert client.get(f"/studies?since=0&limit={2 ** 64 - 1}").json() == [id_at(ids, Level.STUDY) for ids in three]
    assert client.get(f"/studies?since={2 ** 64}&limit=1").status_code == 400


@pytest.mark.parametrize("level", LEVELS)
def test_limit_zero_means_no_limit(client, three, level):
    # Orthanc 1.12.5; before, limit=0 gave no results.
    assert client.get(f"/{level.plural}?since=1&limit=0").json() == [id_at(ids, level) for ids in three[1:]]


@pytest.mark.parametrize("level", LEVELS)
def test_since_and_limit_page_the_expanded_list(client, three, level):
    page = client.get(f"/{level.plural}?expand&since=2&limit=5").json()
    assert [r["ID"] for r in page] == [id_at(three[2], level)]


@pytest.mark.parametrize(("query", "missing"), [("since=1", "limit"), ("limit=1", "since")])
@pytest.mark.parametrize("level", LEVELS)
def test_since_or_limit_alone_is_a_bad_request(client, level, query, missing):
    response = client.get(f"/{level.plural}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["OrthancStatus"] == 8
    assert body["Details"] == f'Missing "{missing}" argument for GET request against: /{level.plural}/'


@pytest.mark.parametrize("level", LEVELS)
def test_since_not_a_number_is_bad_parameter_type(client, level):
    response = client.get(f"/{level.plural}?since=x&limit=1")
    assert response.status_code == 400
    assert response.json()["OrthancStatus"] == 5


@pytest.mark.parametrize("level", LEVELS)
def test_short_lists_main_tags_by_hexadecimal_tag(client, three, level):
    resource = client.get(f"/{level.plural}?expand&short").json()[0]
    keys = set(resource["MainDicomTags"])
    assert keys and all(re.fullmatch(r"[0-9a-f]{4},[0-9a-f]{4}", k) for k in keys)


@pytest.mark.parametrize("level", LEVELS)
def test_full_lists_main_tags_with_name_type_and_value(client, three, level):
    tags = client.get(f"/{level.plural}?expand&full").json()[0]["MainDicomTags"]
    uid = {Level.PATIENT: "0010,0020", Level.STUDY: "0020,000d", Level.SERIES: "0020,000e",
           Level.INSTANCE: "0008,0018"}[level]
    expected = {Level.PATIENT: ("PatientID", "P0"), Level.STUDY: ("StudyInstanceUID", "1.2.0"),
                Level.SERIES: ("SeriesInstanceUID", "1.2.0.1"), Level.INSTANCE: ("SOPInstanceUID", "1.2.0.1.1")}
    name, value = expected[level]
    assert tags[uid] == {"Name": name, "Type": "String", "Value": value}


def test_study_short_also_formats_patient_main_tags(client, three):
    study = client.get("/studies?expand&short").json()[0]
    assert study["PatientMainDicomTags"]["0010,0020"] == "P0"


@pytest.mark.parametrize("level", LEVELS)
def test_get_one_is_the_expanded_list_item(client, three, level):
    response = client.get(f"/{level.plural}/{id_at(three[1], level)}")
    assert response.status_code == 200
    assert response.json() == client.get(f"/{level.plural}?expand").json()[1]


@pytest.mark.parametrize("level", LEVELS)
def test_get_one_names_parent_and_children(client, three, level):
    resource = client.get(f"/{level.plural}/{id_at(three[0], level)}").json()
    if level.parent is not None:
        assert resource[f"Parent{level.parent.value}"] == id_at(three[0], level.parent)
    if level.child is not None:
        children_key = {Level.PATIENT: "Studies", Level.STUDY: "Series", Level.SERIES: "Instances"}[level]
        assert resource[children_key] == [id_at(three[0], level.child)]


@pytest.mark.parametrize("level", LEVELS)
def test_get_unknown_id_is_a_bare_404(client, three, level):
    # Orthanc's handler answers nothing for an unknown ID, and its HTTP server sends a 404 without a body
    # (recorded for /patients/nope; the same code path in 1.12's ResourceFinder).
    response = client.get(f"/{level.plural}/nope")
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize("level", LEVELS)
def test_get_id_of_another_level_is_a_bare_404(client, three, level):
    other = Level.INSTANCE if level is Level.PATIENT else Level.PATIENT
    response = client.get(f"/{level.plural}/{id_at(three[0], other)}")
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize("level", LEVELS)
def test_sub_route_of_unknown_id_gives_orthancs_error_body(client, level):
    response = client.get(f"/{level.plural}/nope/statistics")
    assert response.status_code == 404
    assert response.json() == {
        "HttpError": "Not Found", "HttpStatus": 404, "Message": "Unknown resource", "Method": "GET",
        "OrthancError": "Unknown resource", "OrthancStatus": 17, "Uri": f"/{level.plural}/nope/statistics"}


@pytest.mark.parametrize("level", LEVELS)
def test_delete_unknown_id_is_a_bare_404(client, three, level):
    response = client.delete(f"/{level.plural}/nope")
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize("level", LEVELS)
def test_delete_of_everything_leaves_no_ancestor(client, level):
    ids = store()
    response = client.delete(f"/{level.plural}/{id_at(ids, level)}")
    assert response.status_code == 200
    assert response.json() == {"RemainingAncestor": None}
    assert client.get("/patients").json() == []


@pytest.mark.parametrize("level", [Level.STUDY, Level.SERIES, Level.INSTANCE])
def test_delete_names_the_parent_that_remains(client, level):
    # Two siblings at this level under one parent: the parent stays.
    uids = {Level.STUDY: "StudyInstanceUID", Level.SERIES: "SeriesInstanceUID", Level.INSTANCE: "SOPInstanceUID"}
    first = store(**{uids[level]: "1.7.1"})
    store(**{uids[level]: "1.7.2"})
    parent = id_at(first, level.parent)
    response = client.delete(f"/{level.plural}/{id_at(first, level)}")
    assert response.json() == {"RemainingAncestor": {
        "ID": parent, "Path": f"/{level.parent.plural}/{parent}", "Type": level.parent.value}}


def test_delete_names_the_nearest_ancestor_that_remains(client):
    # The series and study of the only instance go with it; the patient has another study.
    ids = store(StudyInstanceUID="1.7.1")
    store(StudyInstanceUID="1.7.2")
    response = client.delete(f"/instances/{ids.instance}")
    assert response.json()["RemainingAncestor"]["ID"] == ids.patient
    assert client.get(f"/studies/{ids.study}").status_code == 404


def test_delete_of_a_patient_with_other_patients_leaves_no_ancestor(client, three):
    assert client.delete(f"/patients/{three[0].patient}").json() == {"RemainingAncestor": None}
    assert client.get("/patients").json() == [three[1].patient, three[2].patient]


@pytest.mark.parametrize("level", LEVELS)
def test_delete_removes_the_files_from_the_storage_area(client, storage_dir, three, level):
    kept = {a.uuid for a in Attachment.objects.exclude(resource__public_id=three[0].instance)}
    client.delete(f"/{level.plural}/{id_at(three[0], level)}")
    assert stored_files(storage_dir) == kept
    assert len(kept) == 2


# --- Series status, instance index, stability, dates, labels, protection ---

def series_of(client: Client, ids: ResourceIds) -> dict:
    return client.get(f"/series/{ids.series}").json()


def test_series_without_expected_count_is_unknown(client):
    series = series_of(client, store())
    assert series["ExpectedNumberOfInstances"] is None
    assert series["Status"] == "Unknown"


def test_series_expected_count_is_images_in_acquisition_times_temporal_positions(client):
    ids = store(ImagesInAcquisition="3", NumberOfTemporalPositions="2")
    assert series_of(client, ids)["ExpectedNumberOfInstances"] == 6


def test_expected_count_is_slices_times_time_slices(client):
    ids = store(NumberOfSlices=2, NumberOfTimeSlices=3)
    assert series_of(client, ids)["ExpectedNumberOfInstances"] == 6


def test_number_of_slices_alone_gives_no_expected_count(client):
    # Orthanc needs NumberOfTimeSlices beside NumberOfSlices (its cardio-PET rule); checked live on 1.10.1.
    assert series_of(client, store(NumberOfSlices=2))["ExpectedNumberOfInstances"] is None


def test_series_with_an_instance_missing_is_missing(client):
    ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber="1")
    assert series_of(client, ids)["Status"] == "Missing"


def test_series_with_every_instance_is_complete(client):
    for number in ("1", "2"):
        ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber=number)
    series = series_of(client, ids)
    assert series["Status"] == "Complete"
    assert series["ExpectedNumberOfInstances"] == 2


def test_series_with_an_index_out_of_range_is_inconsistent(client):
    ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber="3")
    assert series_of(client, ids)["Status"] == "Inconsistent"


def test_series_with_an_index_twice_is_inconsistent(client):
    # As 1.10.1 answers live and 1.12.5's source reads. A later 1.12 source (ResourceFinder::GetSeriesStatus)
    # collects the index texts in a set, which would hide a repeated "1": to check against 1.12.11.
    for _ in range(2):
        ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber="1")
    assert series_of(client, ids)["Status"] == "Inconsistent"


def test_series_with_an_index_that_is_not_a_number_is_unknown_without_count(client):
    # Unknown as 1.10.1 answers live; Orthanc 1.12.5 derives the count from the same status computation, so
    # Unknown shows no count (1.10.1 still showed 2).
    # pydicom refuses to write "1a" as an IS value, so the bytes of a valid "11" are changed in the file.
    data = make_dicom(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber="11")
    element = b"\x20\x00\x13\x00IS\x02\x00"      # (0020,0013) IS, length 2, explicit VR little endian
    assert data.count(element + b"11") == 1
    ids = instance_store(data=data.replace(element + b"11", element + b"1a"), origin=REST).ids
    series = series_of(client, ids)
    assert series["Status"] == "Unknown"
    assert series["ExpectedNumberOfInstances"] is None


def test_instance_without_index_does_not_count_in_series_status(client):
    # Orthanc reads the IndexInSeries of the instances that have one (1.10.1 live: Missing).
    store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber="1")
    ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber=None)
    assert series_of(client, ids)["Status"] == "Missing"


def test_series_status_in_a_list_matches_the_resource(client):
    for number in ("1", "2"):
        ids = store(ImagesInAcquisition="2", NumberOfTemporalPositions="1", InstanceNumber=number)
    assert client.get("/series?expand").json()[0]["Status"] == "Complete"
    assert series_of(client, ids)["Status"] == "Complete"


def test_index_in_series_is_the_instance_number(client):
    ids = store(InstanceNumber="7")
    assert client.get(f"/instances/{ids.instance}").json()["IndexInSeries"] == 7


def test_index_in_series_is_null_without_instance_number(client):
    ids = store(InstanceNumber=None)
    assert client.get(f"/instances/{ids.instance}").json()["IndexInSeries"] is None


def test_index_in_series_is_null_when_negative(client):
    # Orthanc 1.12.5 parses it as an unsigned 32-bit integer (1.10.1 showed -2).
    ids = store(InstanceNumber="-2")
    assert client.get(f"/instances/{ids.instance}").json()["IndexInSeries"] is None


@pytest.mark.parametrize("level", [Level.PATIENT, Level.STUDY, Level.SERIES])
def test_new_resources_are_not_stable(client, level):
    ids = store()
    assert client.get(f"/{level.plural}/{id_at(ids, level)}").json()["IsStable"] is False


@pytest.mark.parametrize("level", [Level.PATIENT, Level.STUDY, Level.SERIES])
def test_resources_become_stable(client, level):
    ids = store()
    services.resources_stabilize(stable_age=0)
    assert client.get(f"/{level.plural}/{id_at(ids, level)}").json()["IsStable"] is True


@pytest.mark.parametrize("level", [Level.PATIENT, Level.STUDY, Level.SERIES])
def test_last_update_is_an_orthanc_timestamp(client, level):
    ids = store()
    last_update = client.get(f"/{level.plural}/{id_at(ids, level)}").json()["LastUpdate"]
    assert re.fullmatch(r"\d{8}T\d{6}", last_update)


def test_instances_have_neither_stability_nor_last_update(client):
    instance = client.get(f"/instances/{store().instance}").json()
    assert "IsStable" not in instance and "LastUpdate" not in instance


@pytest.mark.parametrize("level", LEVELS)
def test_labels_are_listed_sorted(client, level):
    ids = store()
    base = f"/{level.plural}/{id_at(ids, level)}"
    for label in ("zeta", "alpha"):
        assert client.put(f"{base}/labels/{label}").status_code == 200
    assert client.get(base).json()["Labels"] == ["alpha", "zeta"]


@pytest.mark.parametrize("level", LEVELS)
def test_labels_are_empty_by_default(client, level):
    ids = store()
    assert client.get(f"/{level.plural}/{id_at(ids, level)}").json()["Labels"] == []


def test_patient_protection_round_trip(client):
    url = f"/patients/{store().patient}/protected"
    assert client.get(url).content == b"0"
    assert client.put(url, b"1", content_type="text/plain").status_code == 200
    assert client.get(url).content == b"1"
    client.put(url, b"0", content_type="text/plain")
    assert client.get(url).content == b"0"


# --- Query counts: a list costs the same number of queries whatever its length (no N+1) ---

def list_queries(client: Client, uri: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(uri).status_code == 200
    return len(queries)


def store_patients(count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        store(PatientID=f"Q{i}", StudyInstanceUID=f"1.5.{i}", SeriesInstanceUID=f"1.5.{i}.1",
              SOPInstanceUID=f"1.5.{i}.1.1", InstanceNumber="1", ImagesInAcquisition="1",
              NumberOfTemporalPositions="1")


def test_instances_expand_costs_the_same_for_3_and_30_instances(client):
    store_patients(3)
    few = list_queries(client, "/instances?expand")
    store_patients(27, start=3)
    assert list_queries(client, "/instances?expand") == few


@pytest.mark.parametrize("level", [Level.PATIENT, Level.STUDY, Level.SERIES])
def test_expanded_list_costs_the_same_for_3_and_30_resources(client, level):
    store_patients(3)
    few = list_queries(client, f"/{level.plural}?expand")
    store_patients(27, start=3)
    assert list_queries(client, f"/{level.plural}?expand") == few


def test_module_reads_the_instance_created_last_at_each_level(client):
    """Orthanc 1.10.1 reads the module of a patient, study or series from the child created last at each
    level going down (scripts/compare-with-orthanc matched this on every module answer of the samples)."""
    first = store(PatientName="First^Name", StudyInstanceUID="1.2.1", SeriesInstanceUID="1.2.1.1")
    store(PatientName="Second^Name", StudyInstanceUID="1.2.2", SeriesInstanceUID="1.2.2.1")
    store(PatientName="Third^Name", StudyInstanceUID="1.2.1", SeriesInstanceUID="1.2.1.2")
    patient = client.get(f"/patients/{first.patient}/module?simplify").json()
    assert patient["PatientName"] == "Second^Name"       # study 1.2.2 was created after 1.2.1
    study = client.get(f"/studies/{first.study}/module-patient?simplify").json()
    assert study["PatientName"] == "Third^Name"          # series 1.2.1.2 was created after 1.2.1.1


def _with_request_attributes() -> ResourceIds:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RequestedProcedureID = "RP1"
    item.ScheduledProcedureStepID = "SPS1"
    return store(RequestAttributesSequence=[item])


def test_series_main_tags_carry_request_attributes_sequence(client):
    """A series main tag since Orthanc 1.11.1, shown in MainDicomTags in each tag format."""
    ids = _with_request_attributes()
    simplified = client.get(f"/series/{ids.series}").json()["MainDicomTags"]
    assert simplified["RequestAttributesSequence"] == [{"RequestedProcedureID": "RP1",
                                                         "ScheduledProcedureStepID": "SPS1"}]
    short = client.get(f"/series/{ids.series}?short").json()["MainDicomTags"]
    assert short["0040,0275"] == [{"0040,0009": "SPS1", "0040,1001": "RP1"}]
    full = client.get("/series?expand&full").json()[0]["MainDicomTags"]["0040,0275"]
    assert (full["Name"], full["Type"]) == ("RequestAttributesSequence", "Sequence")
    assert full["Value"][0]["0040,1001"] == {"Name": "RequestedProcedureID", "Type": "String", "Value": "RP1"}


def test_main_dicom_sequences_is_series_metadata(client):
    ids = _with_request_attributes()
    assert "MainDicomSequences" in client.get(f"/series/{ids.series}/metadata").json()
    stored = json.loads(client.get(f"/series/{ids.series}/metadata/MainDicomSequences").content)
    assert stored["Version"] == 1 and list(stored["Sequences"]) == ["0040,0275"]
    assert "MainDicomSequences" not in client.get(f"/instances/{ids.instance}/metadata").json()


# Only index and computed tags: the others are read from a file per resource, as Orthanc does.
REQUESTED = ("PatientName;NumberOfPatientRelatedStudies;NumberOfStudyRelatedInstances;"
             "NumberOfSeriesRelatedInstances;ModalitiesInStudy;SOPClassesInStudy")


@pytest.mark.parametrize("level", list(Level))
def test_requested_tags_cost_the_same_for_3_and_30_resources(client, level):
    store_patients(3)
    few = list_queries(client, f"/{level.plural}?expand&requested-tags={REQUESTED}")
    store_patients(27, start=3)
    assert list_queries(client, f"/{level.plural}?expand&requested-tags={REQUESTED}") == few


@pytest.mark.parametrize("level", list(Level))
def test_a_page_is_the_slice_of_the_whole_list(client, level):
    store_patients(7)
    everything = client.get(f"/{level.plural}").json()
    expanded = client.get(f"/{level.plural}?expand").json()
    assert client.get(f"/{level.plural}?since=2&limit=3").json() == everything[2:5]
    assert client.get(f"/{level.plural}?since=2&limit=3&expand").json() == expanded[2:5]
    assert client.get(f"/{level.plural}?since=6&limit=10").json() == everything[6:]
    assert client.get(f"/{level.plural}?since=9&limit=10").json() == []


@pytest.mark.parametrize("level", list(Level))
def test_a_page_costs_one_query(client, level):
    store_patients(5)
    assert list_queries(client, f"/{level.plural}?since=1&limit=2") == 1


def test_an_encoded_nul_ends_the_uri_as_in_orthanc(client, three):
    """Orthanc reads the decoded URI as a C string; PostgreSQL refused the NUL in the lookup (a 500).
    Answers checked against Orthanc 1.10.1."""
    study = three[0].study
    assert client.get("/studies/ab%00cd").status_code == 404
    assert client.get(f"/studies/{study}%00/labels").json()["ID"] == study
    assert client.get(f"/studies/{study[:-1]}%00{study[-1]}/metadata").status_code == 404
    assert len(client.get("/studies%00/ab").json()) == 3
    assert client.post("/jobs/x%00/cancel").status_code == 405


# --- POST /instances/{id}/export (RestApiWriteToFileSystemEnabled), as Debian's Orthanc 1.10.1 answered live ---

def test_export_is_refused_by_default(client, tmp_path):
    ids = store()
    target = tmp_path / "out.dcm"
    for instance in (ids.instance, "nope"):     # refused before the instance is looked up
        r = client.post(f"/instances/{instance}/export", data=str(target), content_type="text/plain")
        assert (r.status_code, r.content) == (403, b"")
    assert not target.exists()


def test_export_writes_the_file_when_enabled(client, tmp_path, orthanc_config):
    orthanc_config(RestApiWriteToFileSystemEnabled=True)
    ids = store()
    target = tmp_path / "out.dcm"
    r = client.post(f"/instances/{ids.instance}/export", data=str(target), content_type="text/plain")
    assert r.status_code == 200 and json.loads(r.content) == {}
    assert target.read_bytes() == client.get(f"/instances/{ids.instance}/file").content
    r = client.post("/instances/nope/export", data=str(target), content_type="text/plain")
    assert r.status_code == 404 and json.loads(r.content)["OrthancStatus"] == 17
    r = client.post(f"/instances/{ids.instance}/export", data=str(tmp_path / "no-such-folder" / "x.dcm"),
                    content_type="text/plain")
    body = json.loads(r.content)
    assert (r.status_code, body["Message"], body["OrthancStatus"]) == (500, "Cannot write to file", 14)


def test_content_answers_as_orthanc(client):
    """Orthanc 1.10.1 (live): an absent path is a bare 404, a part that is no tag a 500 "Unknown DICOM tag", an
    unknown instance the JSON "Unknown resource"."""
    ids = store(PatientName="Content^Test")
    assert client.get(f"/instances/{ids.instance}/content/0010-0010").content.rstrip(b" \x00") == b"Content^Test"
    for absent in ("0008-9999", "0010-0010/0", "0008-0016/extra", "0008-1140/x", "7fe0-0010/9"):
        r = client.get(f"/instances/{ids.instance}/content/{absent}")
        assert (r.status_code, r.content) == (404, b""), absent
    r = client.get(f"/instances/{ids.instance}/content/zzzz")
    body = json.loads(r.content)
    assert (r.status_code, body["Message"], body["OrthancStatus"]) == (500, "Unknown DICOM tag", 27)
    r = client.get("/instances/nope/content/0010-0010")
    assert r.status_code == 404 and json.loads(r.content)["Message"] == "Unknown resource"


@pytest.mark.django_db
def test_an_unknown_requested_tag_is_the_same_error_on_get_and_find(client):
    # Orthanc 1.12's ParseListOfTags throws UnknownDicomTag (27, HTTP 500), as RequestedTags of /tools/find
    instance_store(data=make_dicom(), origin=Origin())
    listed = client.get("/studies?expand&requested-tags=NoSuchTag")
    found = client.post("/tools/find", {"Level": "Study", "Query": {}, "RequestedTags": ["NoSuchTag"]},
                        content_type="application/json")
    for answer in (listed, found):
        assert answer.status_code == 500 and answer.json()["OrthancStatus"] == 27, answer.content
    assert listed.json()["Details"] == "Unknown DICOM tag: NoSuchTag"
