"""POST /tools/find and /tools/count-resources: the body parser and Orthanc's error bodies.

Errors marked "live" were checked against real Orthanc 1.10.1 (status, OrthancStatus and Details); where 1.12.x
rewords the Details ("should be" -> "must be") the 1.12.x text is expected. The others follow the 1.12.11 code
notes (../shared/reference/orthanc-1.12.11-rest-routes.md). The end-to-end answers compared with real Orthanc
are at the end (tests/data/orthanc-find-answers.json, recorded by scripts/record-find-answers); they skip until
archive.find.resources_find is implemented.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.tag import Tag

from archive.errors import ArchiveError
from archive.find import FindQuery, MetadataConstraint, OrderKey, TagConstraint, resources_find
from archive.find_request import find_request_parse
from archive.levels import Level
from tests.samples import GOLDEN_FILES, sample_path

pytestmark = pytest.mark.django_db

PATIENT_NAME = 0x00100010


def post(client, uri: str, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.generic("POST", uri, data, content_type="application/json")


def parse(body, **kwargs):
    return find_request_parse(json.dumps(body).encode(), **kwargs)


def study(**fields) -> dict:
    return {"Level": "Study", "Query": {}, **fields}


UNHANDLED = "An unhandled exception was generated inside the HTTP server"
NOT_OBJECT = "The body must contain a JSON object"

# (body, HTTP status, OrthancStatus, Details); "live": checked against Orthanc 1.10.1.
ERRORS = [
    # live
    ("[1]", 400, 8, NOT_OBJECT),
    ("junk", 400, 8, NOT_OBJECT),
    ("", 400, 8, NOT_OBJECT),
    ('"Study"', 400, 8, NOT_OBJECT),
    ({}, 400, 8, 'Field "Level" is missing, or should be a string'),
    ({"Level": 3, "Query": {}}, 400, 8, 'Field "Level" is missing, or should be a string'),
    ({"Level": "Study"}, 400, 8, 'Field "Query" is missing, or should be a JSON object'),
    ({"Level": "Foo", "Query": {}}, 400, 3, None),
    ({"Level": " Study", "Query": {}}, 400, 3, None),
    (study(Query={"PatientName": 1}), 400, 8, 'Tag "PatientName" must be associated with a string'),
    (study(Query={"PatientName": None}), 400, 8, 'Tag "PatientName" must be associated with a string'),
    (study(Query={"Foo": "x"}), 500, 27, None),
    (study(Query={"patientname": "x"}), 500, 27, None),
    (study(Query={" PatientName": "x"}), 500, 27, None),
    (study(Limit=-1), 400, 3, 'Field "Limit" must be a positive integer'),
    (study(Limit="1"), 400, 8, 'Field "Limit" must be an integer'),
    (study(Limit=1.5), 400, 8, 'Field "Limit" must be an integer'),
    (study(Limit=None), 400, 8, 'Field "Limit" must be an integer'),
    (study(Since=-1), 400, 3, 'Field "Since" must be a positive integer'),
    (study(Since="a"), 400, 8, 'Field "Since" must be an integer'),
    (study(Limit=-1, Since=-1), 400, 3, 'Field "Limit" must be a positive integer'),
    (study(CaseSensitive=1), 400, 8, 'Field "CaseSensitive" must be a Boolean'),
    (study(Expand="yes"), 500, -1, UNHANDLED),
    (study(Full="x"), 400, 15, "Boolean value expected in field: Full"),
    (study(Short=1), 400, 15, "Boolean value expected in field: Short"),
    (study(Simplify=None), 400, 15, "Boolean value expected in field: Simplify"),
    (study(Short="x", Full="y"), 400, 15, "Boolean value expected in field: Short"),
    (study(Simplify=False, Short=False, Full="x"), 400, 15, "Boolean value expected in field: Full"),
    (study(Query={"StudyDate": "2004*"}), 400, 3, "Wildcards are not allowed on tag 0008,0020"),
    (study(Query={"StudyDate": "2004*-2005"}), 400, 3, "Wildcards are not allowed on tag 0008,0020"),
    (study(Query={"StudyInstanceUID": "1.2*"}), 400, 3, "Wildcards are not allowed on tag 0020,000d"),
    ({"Level": "Instance", "Query": {"Rows": "5?"}}, 400, 3, "Wildcards are not allowed on tag 0028,0010"),
    (study(Query={"Foo": "", "StudyDate": "1*", "Bar": 1}), 400, 8, 'Tag "Bar" must be associated with a string'),
    # 1.12.x: the level is read before Limit (1.10.1 reported Limit first)
    ({"Level": "Foo", "Query": {}, "Limit": -1}, 400, 3, None),
    # 1.12.x: Query must be an object (1.10.1 let a list through to a 500)
    ({"Level": "Study", "Query": []}, 400, 8, 'Field "Query" is missing, or should be a JSON object'),
    ({"Level": "Study", "Query": "x"}, 400, 8, 'Field "Query" is missing, or should be a JSON object'),
    # RequestedTags (1.11.0)
    (study(RequestedTags="PatientName"), 400, 8, 'Field "RequestedTags" must be an array'),
    (study(RequestedTags=["Foo"]), 500, 27, None),
    (study(RequestedTags=[1]), 400, 8, "Expecting a list of tags"),
    # Labels, LabelsConstraint (1.12.0)
    (study(Labels="x"), 400, 8, 'Field "Labels" must be an array of strings'),
    (study(Labels=["a", 1]), 400, 8, 'Field "Labels" must contain strings'),
    (study(LabelsConstraint=1), 400, 8, 'Field "LabelsConstraint" must be an array of strings'),
    (study(LabelsConstraint="Some"), 400, 8, 'Field "LabelsConstraint" must be "All", "Any", or "None"'),
    (study(LabelsConstraint="all"), 400, 8, 'Field "LabelsConstraint" must be "All", "Any", or "None"'),
    # OrderBy, ParentPatient/Study/Series, MetadataQuery, ResponseContent (1.12.5)
    (study(OrderBy={}), 400, 8, 'Field "OrderBy" must be an array'),
    (study(OrderBy=["x"]), 400, 8, 'Field "OrderBy" must contain objects'),
    (study(OrderBy=[{"Type": "DicomTag", "Key": "PatientName"}]), 400, 8,
     'OrderBy items must have "Type", "Key" and "Direction" strings'),
    (study(OrderBy=[{"Type": "DicomTag", "Key": "PatientName", "Direction": "UP"}]), 400, 3,
     'OrderBy "Direction" must be "ASC" or "DESC": UP'),
    (study(OrderBy=[{"Type": "Tag", "Key": "PatientName", "Direction": "ASC"}]), 400, 3,
     'OrderBy "Type" is not valid: Tag'),
    (study(OrderBy=[{"Type": "DicomTag", "Key": "Foo", "Direction": "ASC"}]), 500, 27, None),
    (study(ParentPatient=1), 400, 8, 'Field "ParentPatient" must be a string'),
    (study(ParentSeries=["x"]), 400, 8, 'Field "ParentSeries" must be a string'),
    (study(MetadataQuery=[]), 400, 8, 'Field "MetadataQuery" must be a JSON object'),
    (study(MetadataQuery={"RemoteAET": 1}), 400, 8, 'Metadata "RemoteAET" must be associated with a string'),
    (study(ResponseContent="MainDicomTags"), 400, 8, 'Field "ResponseContent" must be an array'),
    (study(ResponseContent=["MainDicomTags", "Everything"]), 400, 3,
     "Unsupported value for ResponseContent: Everything"),
    # Since cannot be honoured in the database when a tag is read from the files (1.12.5)
    (study(Query={"ImageType": "ORIGINAL*"}, Since=1), 400, 8,
     "nable to use 'Since' when finding resources when querying against Dicom Tags that are not in the "
     "MainDicomTags or when using CaseSenstive queries."),
    (study(Query={"PatientName": "a*"}, CaseSensitive=True, Since=2), 400, 8,
     "nable to use 'Since' when finding resources when querying against Dicom Tags that are not in the "
     "MainDicomTags or when using CaseSenstive queries."),
]


COMMON = ERRORS[:35]   # the live-checked ones: count-resources shares the handler


def _id(case) -> str:
    body = case[0]
    return (body if isinstance(body, str) else json.dumps(body))[:60]


@pytest.mark.parametrize(("body", "status", "orthanc_status", "details"), ERRORS, ids=[_id(c) for c in ERRORS])
def test_find_errors_are_orthanc_bodies(client, body, status, orthanc_status, details):
    response = post(client, "/tools/find", body)
    assert response.status_code == status
    answer = response.json()
    assert answer["OrthancStatus"] == orthanc_status
    assert answer["HttpStatus"] == status
    assert answer["Uri"] == "/tools/find"
    assert answer["Method"] == "POST"
    assert answer.get("Details") == details


@pytest.mark.parametrize(("body", "status", "orthanc_status", "details"), COMMON, ids=[_id(c) for c in COMMON])
def test_count_resources_shares_the_checks(client, body, status, orthanc_status, details):
    response = post(client, "/tools/count-resources", body)
    assert response.status_code == status
    assert response.json()["OrthancStatus"] == orthanc_status
    assert response.json().get("Details") == details


COUNT_REFUSED = ("Unable to count resources when querying tags that are not stored as MainDicomTags in the "
                 "Database or when using case sensitive queries.")


@pytest.mark.parametrize("body", [study(CaseSensitive=True), study(Query={"ImageType": "ORIGINAL*"}),
                                  study(Query={"NumberOfStudyRelatedSeries": "2"})])
def test_count_resources_refuses_what_the_database_cannot_count(client, body):
    response = post(client, "/tools/count-resources", body)
    assert response.status_code == 400
    assert response.json()["OrthancStatus"] == 8
    assert response.json()["Details"] == COUNT_REFUSED


def test_full_error_body_of_a_live_checked_case(client):
    response = post(client, "/tools/find", study(Limit=-1))
    assert response.json() == {
        "Details": 'Field "Limit" must be a positive integer', "HttpError": "Bad Request", "HttpStatus": 400,
        "Message": "Parameter out of range", "Method": "POST", "OrthancError": "Parameter out of range",
        "OrthancStatus": 3, "Uri": "/tools/find"}


def test_unknown_level_matches_the_golden_recording(client):
    from tests.samples import golden

    response = post(client, "/tools/find", {"Level": "Foo", "Query": {}})
    recorded = golden()["POST /tools/find"]
    assert response.status_code == recorded["status"]
    assert response.json() == recorded["json"]


# --- the parser on good bodies -------------------------------------------------------------------------------

def test_empty_query_strings_are_universal_and_dropped():
    find = parse(study(Query={"PatientName": "", "StudyDate": "20200101-", "Foo": ""}))
    assert find.query.tags == (TagConstraint(tag=0x00080020, query="20200101-"),)


@pytest.mark.parametrize("key", ["0010,0010", "0010-0010", "00100010", "PatientName"])
def test_query_tags_by_name_or_number(key):
    assert parse(study(Query={key: "A*"})).query.tags == (TagConstraint(tag=PATIENT_NAME, query="A*"),)


@pytest.mark.parametrize("query", [{"StudyDate": "2004*\\2005"}, {"0011,0010": "a*"},
                                   {"SeriesDescription": "2004-*"}, {"PatientName": "?a*"}])
def test_wildcards_where_orthanc_allows_them(query):  # live: each answers 200 on 1.10.1
    assert parse(study(Query=query)).query.tags[0].query == next(iter(query.values()))


def test_query_members_are_checked_in_sorted_order():
    # JsonCpp hands Orthanc the members sorted: "Bar" comes before "Zed" whatever the body's order.
    with pytest.raises(ArchiveError) as raised:
        parse(study(Query={"Zed": "x", "Bar": 1}))
    assert raised.value.details == 'Tag "Bar" must be associated with a string'


@pytest.mark.parametrize(("text", "level"), [("Patient", Level.PATIENT), ("study", Level.STUDY),
                                             ("STUDIES", Level.STUDY), ("series", Level.SERIES),
                                             ("Instances", Level.INSTANCE), ("Images", Level.INSTANCE),
                                             ("image", Level.INSTANCE)])
def test_level_names(text, level):  # live: 1.10.1 takes all of these
    assert parse({"Level": text, "Query": {}}).query.level is level


def test_defaults():
    find = parse(study())
    assert (find.expand, find.fmt, find.requested_tags, find.response_content) == (False, "simplify", (), None)
    q = find.query
    assert (q.since, q.limit, q.case_sensitive, q.labels, q.labels_constraint, q.parent, q.metadata,
            q.order_by) == (0, 0, False, (), "All", None, (), ())


def test_limit_zero_means_no_limit_and_since_is_kept():
    q = parse(study(Limit=0, Since=5)).query
    assert (q.limit, q.since) == (0, 5)


@pytest.mark.parametrize(("fields", "fmt"), [({"Short": True, "Full": True}, "short"),
                                             ({"Short": False, "Full": True}, "full"),
                                             ({"Simplify": True, "Short": "x"}, "simplify"),
                                             ({"Short": True, "Simplify": True}, "simplify"),
                                             ({"full": True}, "simplify")])
def test_tag_format_precedence(fields, fmt):  # live
    assert parse(study(**fields)).fmt == fmt


@pytest.mark.parametrize(("value", "expand"), [(True, True), (False, False), (1, True), (0, False), (None, False)])
def test_expand_converts_as_jsoncpp(value, expand):  # live: 1 expands, null does not
    assert parse(study(Expand=value)).expand is expand


def test_requested_tags_and_lookup_tags_read_from_files():
    find = parse(study(RequestedTags=["StudyDescription", "0008,1030", "0020,0013"],
                       Query={"ImageType": "ORIGINAL*", "PatientName": "A*"}))
    # 1.12.5 reports the lookup tags that are not in the index as requested tags too
    assert [int(t) for t in find.requested_tags] == [0x00081030, 0x00081030, 0x00200013, 0x00080008]


def test_labels_and_constraint():
    q = parse(study(Labels=["a", "b"], LabelsConstraint="None")).query
    assert (q.labels, q.labels_constraint) == (("a", "b"), "None")


def test_first_parent_wins_in_orthanc_order():
    q = parse(study(ParentSeries="s", ParentStudy="t", ParentPatient="p")).query
    assert q.parent == (Level.PATIENT, "p")
    assert parse(study(ParentSeries="s", ParentStudy="t")).query.parent == (Level.STUDY, "t")


def test_metadata_query_by_name_or_number_and_empty_dropped(orthanc_config):
    orthanc_config(UserMetadata={"Sample": 1024})
    q = parse(study(MetadataQuery={"RemoteAET": "MOD*", "Sample": "x\\y", "1025": "", "ReceptionDate": "2024*"})).query
    assert q.metadata == (MetadataConstraint(metadata=2, query="2024*"), MetadataConstraint(metadata=3, query="MOD*"),
                          MetadataConstraint(metadata=1024, query="x\\y"))


def test_order_by():
    q = parse(study(OrderBy=[
        {"Type": "DicomTag", "Key": "PatientName", "Direction": "asc"},
        {"Type": "DicomTagAsInt", "Key": "0020,0011", "Direction": "DESC"},
        {"Type": "Metadata", "Key": "LastUpdate", "Direction": "Desc"},
        {"Type": "MetadataAsInt", "Key": "IndexInSeries", "Direction": "ASC"},
        {"Type": "MetadataAsFloat", "Key": "IndexInSeries", "Direction": "ASC"},
    ])).query
    assert q.order_by == (OrderKey("DicomTag", PATIENT_NAME, False), OrderKey("DicomTagAsInt", 0x00200011, True),
                          OrderKey("Metadata", 7, True), OrderKey("MetadataAsInt", 1, False),
                          OrderKey("Metadata", 1, False))  # 1.12.11 sorts MetadataAsFloat as text


def test_response_content_overrides_expand():
    find = parse(study(Expand=True, ResponseContent=["Parent", "Labels", "IsProtected"]))
    assert find.response_content == frozenset({"Parent", "Labels", "IsProtected"})


def test_case_sensitive_passes_through():
    assert parse(study(CaseSensitive=True, Query={"PatientName": "a*"})).query.case_sensitive is True


def test_since_with_main_tags_only_is_allowed():
    assert parse(study(Query={"PatientName": "A*"}, Since=3)).query.since == 3
    assert parse(study(Query={"ImageType": "ORIGINAL*"}, Since=0)).query.tags[0].tag == Tag(0x00080008)


def test_count_ignores_paging_fields():
    q = parse(study(Limit=3, Since=2, Query={"PatientName": "A*"}), count=True).query
    assert q.tags == (TagConstraint(tag=PATIENT_NAME, query="A*"),)


# --- end to end: the golden samples, answers compared with real Orthanc 1.10.1 ---------------------------------

ANSWERS = Path(__file__).resolve().parents[2] / "data" / "orthanc-find-answers.json"
RECORDED = json.loads(ANSWERS.read_text(encoding="utf-8"))["answers"]
# Fields that differ by nature between two servers (time, stability delay, storage names) or that 1.10.1 lacks.
VOLATILE = {"LastUpdate", "IsStable", "FileUuid", "Labels"}
# Main tags 1.12.5 added to the series and study lists (archive/dicom/tags.py): 1.10.1 does not report them.
NEWER_MAIN_TAGS = {"TimezoneOffsetFromUTC", "0008,0201", "PerformedProcedureStepStartDate", "0040,0244",
                   "PerformedProcedureStepStartTime", "0040,0245", "RequestAttributesSequence", "0040,0275"}
# Answers whose order depends on what the data path chooses where Orthanc documents none: 1.10.1 lists the
# patients of an empty Query by ID there, ours in the order they were stored (see the report of issue 4).
# Queries without OrderBy whose page depends on the order of the whole result. Orthanc 1.10.1 sorted such a
# result by public ID (an std::set); 1.12.5 rewrote /tools/find on SQL and documents no default order, and
# OrderBy exists for callers that need one. We page in insertion order (the index's primary key: no sort at a
# million resources), so for these the page is compared by size, the result set of the unpaged query by value.
ORDER_UNSETTLED = {"limit-since-patients"}


@pytest.fixture
def golden_archive(client):
    """The golden files stored in ours, as scripts/record-find-answers stored them in real Orthanc."""
    try:
        resources_find(query=FindQuery(level=Level.PATIENT))
    except NotImplementedError:
        pytest.skip("archive.find.resources_find is not implemented yet")
    for rel in GOLDEN_FILES:
        response = client.generic("POST", "/instances", sample_path(rel).read_bytes(),
                                  content_type="application/dicom")
        assert response.status_code == 200, rel
    return client


def _comparable(answer):
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        return {item["ID"]: {k: _older_tags(v) if k == "MainDicomTags" else v for k, v in item.items()
                             if k not in VOLATILE} for item in answer}
    return answer


def _older_tags(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if k not in NEWER_MAIN_TAGS}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_find_answers_as_real_orthanc(golden_archive, name):
    recorded = RECORDED[name]
    response = post(golden_archive, "/tools/find", recorded["body"])
    assert response.status_code == recorded["status"]
    ours, theirs = response.json(), recorded["json"]
    if response.status_code != 200:
        assert ours == theirs
    elif name in ORDER_UNSETTLED:
        since, limit = recorded["body"].get("Since", 0), recorded["body"]["Limit"]
        assert len(ours) == len(theirs)  # the page size; which page is an order question (see above)
        assert ours == _all_ids(golden_archive, recorded)[since:since + limit]   # a page of our own order
    elif "Limit" in recorded["body"] or "Since" in recorded["body"]:
        assert ours == theirs            # paging: the same resources in the same order
    elif theirs and isinstance(theirs[0], dict):
        assert _comparable(ours) == _comparable(theirs)
    else:
        assert sorted(ours) == sorted(theirs)


def _all_ids(client, recorded: dict) -> list[str]:
    """Every resource the recorded query matches when not paged."""
    body = {k: v for k, v in recorded["body"].items() if k not in ("Limit", "Since", "Expand")}
    return post(client, "/tools/find", body).json()


@pytest.mark.parametrize("name", [n for n, r in sorted(RECORDED.items())
                                  if r["status"] == 200 and not {"Limit", "Since", "CaseSensitive"} & set(r["body"])
                                  and not n.startswith("not-main-tag")])
def test_count_resources_counts_what_find_finds(golden_archive, name):
    body = RECORDED[name]["body"]
    response = post(golden_archive, "/tools/count-resources", body)
    assert response.status_code == 200
    assert response.json() == {"Count": len(RECORDED[name]["json"])}


BRAINIX_STUDY = "27f7126f-4f66fb14-03f4081b-f9341db2-53925988"
BRAINIX_PATIENT = "16738bc3-e47ed42a-43ce044c-a3414a45-cb069bd0"


def test_requested_tags_from_index_computed_and_files(golden_archive):
    answer = post(golden_archive, "/tools/find", {
        "Level": "Study", "Query": {"PatientName": "BRAINIX"}, "Expand": True,
        "RequestedTags": ["ModalitiesInStudy", "NumberOfStudyRelatedSeries", "PatientName", "0008,1030",
                          "SeriesDescription"]}).json()
    assert [a["ID"] for a in answer] == [BRAINIX_STUDY]
    requested = answer[0]["RequestedTags"]
    assert requested["ModalitiesInStudy"] == "MR"
    assert requested["NumberOfStudyRelatedSeries"] == "2"
    assert requested["PatientName"] == "BRAINIX"
    assert requested["StudyDescription"] == answer[0]["MainDicomTags"]["StudyDescription"]
    assert "SeriesDescription" in requested       # read from one of the study's files


def test_requested_tags_need_expand(golden_archive):
    answer = post(golden_archive, "/tools/find", {"Level": "Study", "Query": {"PatientName": "BRAINIX"},
                                                  "RequestedTags": ["ModalitiesInStudy"]}).json()
    assert answer == [BRAINIX_STUDY]


def test_expand_is_the_resource_description(golden_archive):
    found = post(golden_archive, "/tools/find", {"Level": "Study", "Query": {"PatientID": "5Yp0E"},
                                                 "Expand": True}).json()
    assert found == [golden_archive.get(f"/studies/{BRAINIX_STUDY}").json()]


def test_response_content_parts(golden_archive):
    golden_archive.put(f"/studies/{BRAINIX_STUDY}/labels/reviewed")
    found = post(golden_archive, "/tools/find", {
        "Level": "Study", "Query": {"PatientID": "5Yp0E"},
        "ResponseContent": ["Parent", "Children", "Labels", "MainDicomTags", "Metadata", "IsStable"]}).json()
    item = found[0]
    assert set(item) == {"ID", "Type", "ParentPatient", "Series", "Labels", "MainDicomTags",
                         "PatientMainDicomTags", "Metadata", "IsStable"}
    assert (item["ID"], item["Type"], item["ParentPatient"]) == (BRAINIX_STUDY, "Study", BRAINIX_PATIENT)
    assert item["Series"] == sorted(item["Series"]) and len(item["Series"]) == 2
    assert item["Labels"] == ["reviewed"]
    assert item["PatientMainDicomTags"]["PatientID"] == "5Yp0E"
    assert "LastUpdate" in item["Metadata"]


def test_response_content_of_instances_and_patients(golden_archive):
    instance = post(golden_archive, "/tools/find", {
        "Level": "Instance", "Query": {"PatientID": "5Yp0E"}, "Limit": 1,
        "ResponseContent": ["Attachments", "Metadata", "Status", "IsStable"]}).json()[0]
    assert set(instance) == {"ID", "Type", "Attachments", "Metadata"}   # no Status/IsStable for an instance
    assert instance["Attachments"][0]["ContentType"] == 1
    assert {"Uuid", "UncompressedSize", "CompressedSize", "UncompressedMD5", "CompressedMD5"} <= set(
        instance["Attachments"][0])
    assert instance["Metadata"]["IndexInSeries"] == "1" or "IndexInSeries" in instance["Metadata"]
    patient = post(golden_archive, "/tools/find", {"Level": "Patient", "Query": {"PatientID": "5Yp0E"},
                                                   "ResponseContent": ["IsProtected", "Parent"]}).json()[0]
    assert patient == {"ID": BRAINIX_PATIENT, "Type": "Patient", "IsProtected": False}


def test_empty_response_content_gives_identifiers(golden_archive):
    found = post(golden_archive, "/tools/find", {"Level": "Patient", "Query": {"PatientID": "5Yp0E"},
                                                 "Expand": True, "ResponseContent": []}).json()
    assert found == [BRAINIX_PATIENT]


def test_labels_constraints(golden_archive):
    golden_archive.put(f"/studies/{BRAINIX_STUDY}/labels/reviewed")
    def ids(**fields):
        return post(golden_archive, "/tools/find", {"Level": "Study", "Query": {}, **fields}).json()
    everyone = ids()
    assert ids(Labels=["reviewed"]) == [BRAINIX_STUDY]
    assert ids(Labels=["reviewed", "other"], LabelsConstraint="Any") == [BRAINIX_STUDY]
    assert ids(Labels=["reviewed", "other"], LabelsConstraint="All") == []
    assert sorted(ids(Labels=["reviewed"], LabelsConstraint="None")) == sorted(set(everyone) - {BRAINIX_STUDY})
    assert sorted(ids(Labels=[], LabelsConstraint="None")) == sorted(set(everyone) - {BRAINIX_STUDY})  # 1.12.11


def test_expand_and_short_on_one_resource_by_parent(golden_archive):
    found = post(golden_archive, "/tools/find", {"Level": "Series", "Query": {}, "ParentStudy": BRAINIX_STUDY,
                                                 "Expand": True, "Short": True}).json()
    assert len(found) == 2
    assert all("0008,0060" in s["MainDicomTags"] for s in found)


def test_expanded_answers_take_a_fixed_number_of_queries(golden_archive):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(body):
        with CaptureQueriesContext(connection) as captured:
            assert post(golden_archive, "/tools/find", body).status_code == 200
        return len(captured)

    content = ["Parent", "Children", "Labels", "MainDicomTags", "Metadata", "Attachments", "Status"]
    for extra in ({"Expand": True}, {"ResponseContent": content}):
        # No constraint: a Limit with constraints adds the plan's fixed look-ups (archive.find._shape_for_limit)
        one = queries({"Level": "Instance", "Query": {}, "Limit": 1, **extra})
        assert queries({"Level": "Instance", "Query": {}, **extra}) == one   # 1 instance or 12: no N+1


def test_order_by_sorts_the_answer_and_pages_it(golden_archive):
    """ExtendedFind (1.12.5, claimed in /system Capabilities): OrderBy on a main tag, both directions."""
    body = {"Level": "Study", "Query": {}, "Expand": True,
            "OrderBy": [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "DESC"}]}
    dates = [s["MainDicomTags"].get("StudyDate", "") for s in post(golden_archive, "/tools/find", body).json()]
    assert len(dates) > 3 and dates == sorted(dates, reverse=True)
    body["OrderBy"][0]["Direction"] = "ASC"
    body["Limit"] = 2
    page = [s["MainDicomTags"].get("StudyDate", "") for s in post(golden_archive, "/tools/find", body).json()]
    assert page == sorted(dates)[:2]


def test_a_nul_in_a_constraint_matches_nothing_on_every_backend(client):
    """As Orthanc: stored text holds no NUL, so a constraint with one matches nothing (PostgreSQL refused it
    as a parameter: a 500; SQLite's GLOB cut the pattern there: '*\\0*' matched everything)."""
    from tests.dicom_factory import make_dicom

    client.generic("POST", "/instances", make_dicom(PatientName="AB", StudyDescription="dx"),
                   content_type="application/dicom")
    study = {"Level": "Study", "Query": {}}
    assert post(client, "/tools/find", study).json() != []
    for body in ({"Query": {"PatientName": "A\u0000B"}}, {"Query": {"PatientName": "*\u0000*"}},
                 {"Query": {"StudyDescription": "d\u0000*"}}, {"Labels": ["a\u0000"]},
                 {"MetadataQuery": {"LastUpdate": "*\u0000"}}, {"ParentPatient": "x\u0000"}):
        answer = post(client, "/tools/find", {**study, **body})
        assert (answer.status_code, answer.json()) == (200, []), body
    assert post(client, "/tools/find", {**study, "Labels": ["a\u0000"], "LabelsConstraint": "None"}).json() != []
