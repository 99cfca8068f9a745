"""archive.find: /tools/find answered from the MainDicomTag index (and from files for other tags)."""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import labels, services
from archive.dicom.matching import constraint_match, constraint_parse
from archive.errors import ParameterOutOfRange
from archive.find import (
    FindQuery,
    MetadataConstraint,
    OrderKey,
    TagConstraint,
    resources_count,
    resources_find,
)
from archive.index_writes import IndexWriter
from archive.ingest import Origin, instance_store
from archive.levels import Level
from archive.models import MainDicomTag, Metadata, Resource
from archive.timeutil import utcnow
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db
REST = Origin.rest(remote_ip="127.0.0.1")

PATIENT_NAME, PATIENT_ID, STUDY_DATE, STUDY_DESCRIPTION = 0x00100010, 0x00100020, 0x00080020, 0x00081030
ACCESSION, MODALITY, SERIES_DESCRIPTION, INSTANCE_NUMBER = 0x00080050, 0x00080060, 0x0008103E, 0x00200013
MODALITIES_IN_STUDY, BODY_PART, SERIES_NUMBER = 0x00080061, 0x00180015, 0x00200011
CONTENT_DATE, LASTUPDATE = 0x00080023, 7


def store(**tags):
    return instance_store(data=make_dicom(**tags), origin=REST).ids


@pytest.fixture
def archive():
    """Three patients, four studies, five series, six instances."""
    a = store(PatientID="P1", PatientName="Doe^John", StudyInstanceUID="1.1", StudyDate="20200115",
              StudyDescription="Brain MRI", AccessionNumber="ab12", SeriesInstanceUID="1.1.1", Modality="MR",
              SeriesNumber="2", InstanceNumber="1", ContentDate="20200115")
    b = store(PatientID="P1", PatientName="Doe^John", StudyInstanceUID="1.1", StudyDate="20200115",
              StudyDescription="Brain MRI", AccessionNumber="ab12", SeriesInstanceUID="1.1.1", Modality="MR",
              SeriesNumber="2", InstanceNumber="2", ContentDate="20200116")
    c = store(PatientID="P2", PatientName="Émile^Zola", StudyInstanceUID="2.1", StudyDate="20200601",
              StudyDescription="brain mri", AccessionNumber="AB12", SeriesInstanceUID="2.1.1", Modality="CT",
              SeriesNumber="10", BodyPartExamined="HEAD", ContentDate="20200601")
    d = store(PatientID="P2", PatientName="Émile^Zola", StudyInstanceUID="2.2", StudyDate="20210101",
              StudyDescription="Chest", SeriesInstanceUID="2.2.1", Modality="CT", SeriesNumber="9",
              ContentDate="20210101")
    e = store(PatientID="P2", PatientName="Émile^Zola", StudyInstanceUID="2.2", StudyDate="20210101",
              StudyDescription="Chest", SeriesInstanceUID="2.2.2", Modality="PT", SeriesNumber="1")
    f = store(PatientID="P3", PatientName="Strauß^Hans", StudyInstanceUID="3.1", StudyDate="",
              StudyDescription="", SeriesInstanceUID="3.1.1", Modality="US", SeriesNumber=None)
    return [a, b, c, d, e, f]


def metadata_set(public_id: str, value: str) -> None:
    Metadata.objects.create(resource=Resource.objects.get(public_id=public_id), type=1024, value=value)


def find(level: Level, tags: dict[int, str] | None = None, **kw) -> list[str]:
    query = FindQuery(level=level, tags=tuple(TagConstraint(t, q) for t, q in (tags or {}).items()), **kw)
    return [r.public_id for r in resources_find(query=query)]


def count(level: Level, tags: dict[int, str] | None = None, **kw) -> int:
    query = FindQuery(level=level, tags=tuple(TagConstraint(t, q) for t, q in (tags or {}).items()), **kw)
    return resources_count(query=query)


# --- the index ---------------------------------------------------------------------------------------------

def test_ingest_writes_one_row_per_main_tag(archive):
    study = Resource.objects.get(public_id=archive[0].study)
    rows = dict(MainDicomTag.objects.filter(resource=study).values_list("tag", "value"))
    assert rows[STUDY_DESCRIPTION] == "Brain MRI"
    assert rows[PATIENT_NAME] == "Doe^John"  # the study carries its patient's tags, as in Orthanc
    assert len(rows) == len(study.main_tags)


def test_folded_column_holds_orthancs_upper_case(archive):
    row = MainDicomTag.objects.get(level=0, tag=PATIENT_NAME, value="Émile^Zola")
    assert row.value_folded == "ÉMILE^ZOLA"


def test_delete_removes_the_rows(archive):
    services.resource_delete(level=Level.PATIENT, public_id=archive[2].patient)
    assert not MainDicomTag.objects.filter(value="Émile^Zola").exists()
    assert MainDicomTag.objects.filter(value="Doe^John").exists()


def test_backfill_migration_rebuilds_rows_from_main_tags(archive):
    import importlib

    from django.apps import apps

    backfill = importlib.import_module("archive.migrations.0003_main_dicom_tag")._backfill
    expected = sorted(MainDicomTag.objects.values_list("resource_id", "level", "tag", "value", "value_folded"))
    MainDicomTag.objects.all().delete()

    class Editor:
        connection = connection

    backfill(apps, Editor())
    assert sorted(MainDicomTag.objects.values_list("resource_id", "level", "tag", "value", "value_folded")) == expected


# --- constraints on main tags ------------------------------------------------------------------------------

def test_no_constraint_lists_the_level_in_insertion_order(archive):
    assert find(Level.STUDY) == [archive[0].study, archive[2].study, archive[3].study, archive[5].study]


def test_exact_match(archive):
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "Chest"}) == [archive[3].study]


def test_case_insensitive_by_default_flag(archive):
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "BRAIN MRI"}) == [archive[0].study, archive[2].study]


def test_case_sensitive(archive):
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "brain mri"}, case_sensitive=True) == [archive[2].study]


def test_accented_case_insensitive(archive):
    assert find(Level.PATIENT, {PATIENT_NAME: "émile^zola"}) == [archive[2].patient]


def test_wildcard(archive):
    assert find(Level.STUDY, {PATIENT_NAME: "*ZOLA"}) == [archive[2].study, archive[3].study]


def test_wildcard_question_mark_is_one_byte(archive):
    assert find(Level.PATIENT, {PATIENT_NAME: "?MILE*"}) == []
    assert find(Level.PATIENT, {PATIENT_NAME: "??MILE*"}) == [archive[2].patient]


def test_wildcard_with_sql_special_characters_is_literal(archive):
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "%"}) == []
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "B_ain*"}) == []
    assert find(Level.STUDY, {STUDY_DESCRIPTION: "[B]*"}) == []


def test_star_matches_empty_values_but_not_absent_ones(archive):
    assert count(Level.STUDY, {STUDY_DESCRIPTION: "*"}) == 4
    assert count(Level.SERIES, {BODY_PART: "*"}) == 1


def test_date_range(archive):
    assert find(Level.STUDY, {STUDY_DATE: "20200201-20201231"}) == [archive[2].study]


def test_open_ranges(archive):
    assert find(Level.STUDY, {STUDY_DATE: "20200601-"}) == [archive[2].study, archive[3].study]
    assert find(Level.STUDY, {STUDY_DATE: "-20200115"}) == [archive[0].study, archive[5].study]


def test_list(archive):
    assert find(Level.SERIES, {MODALITY: "PT\\MR"}) == [archive[0].series, archive[4].series]


def test_identifier_matching(archive):
    assert find(Level.STUDY, {ACCESSION: "AB12"}, case_sensitive=True) == [archive[2].study]
    assert find(Level.STUDY, {ACCESSION: "AB12"}) == [archive[0].study, archive[2].study]


def test_several_constraints_all_apply(archive):
    assert find(Level.STUDY, {PATIENT_ID: "P2", STUDY_DATE: "2021*"[:0] + "20210101"}) == [archive[3].study]


def test_ancestor_tag_at_a_lower_level(archive):
    assert find(Level.SERIES, {STUDY_DESCRIPTION: "Chest"}) == [archive[3].series, archive[4].series]
    assert find(Level.INSTANCE, {PATIENT_NAME: "doe^john"}) == [archive[0].instance, archive[1].instance]


def test_main_tag_of_a_lower_level_matches_nothing(archive):
    # Orthanc 1.10.1 and 1.12: {"Modality": "CT"} at study level finds nothing
    assert find(Level.STUDY, {MODALITY: "CT"}) == []
    assert count(Level.STUDY, {MODALITY: "CT"}) == 0


def test_modalities_in_study(archive):
    assert find(Level.STUDY, {MODALITIES_IN_STUDY: "CT"}) == [archive[2].study, archive[3].study]
    assert find(Level.STUDY, {MODALITIES_IN_STUDY: "PT\\US"}) == [archive[3].study, archive[5].study]
    # One value is parsed as any value, a wildcard too, as Orthanc's DatabaseLookup (1.10.1 compared with
    # findscu); a list is matched exactly
    assert find(Level.STUDY, {MODALITIES_IN_STUDY: "C*"}) == [archive[2].study, archive[3].study]
    assert find(Level.STUDY, {MODALITIES_IN_STUDY: "?T"}) == [archive[2].study, archive[3].study]
    assert find(Level.STUDY, {MODALITIES_IN_STUDY: "C*\\US"}) == [archive[5].study]


def test_bad_wildcard_raises(archive):
    with pytest.raises(ParameterOutOfRange):
        find(Level.STUDY, {0x0020000D: "1.*"})


# --- tags read from the files ------------------------------------------------------------------------------

def test_tag_outside_the_index_is_read_from_the_file(archive):
    assert find(Level.INSTANCE, {CONTENT_DATE: "20200116"}) == [archive[1].instance]


def test_file_tag_at_study_level_reads_one_instance(archive):
    # the instance created last in the study, as Orthanc reads
    assert find(Level.STUDY, {CONTENT_DATE: "20200116"}) == [archive[0].study]
    assert find(Level.STUDY, {CONTENT_DATE: "20200115"}) == []


def test_limit_applies_after_file_constraints(archive):
    found = find(Level.INSTANCE, {CONTENT_DATE: "20200101-20201231"}, limit=1)
    assert found == [archive[0].instance]
    assert find(Level.INSTANCE, {CONTENT_DATE: "20200101-20201231"}, since=1, limit=5) == [archive[1].instance,
                                                                               archive[2].instance]


def test_count_with_file_constraint(archive):
    assert count(Level.INSTANCE, {CONTENT_DATE: "20200101-20201231"}) == 3


# --- labels, parent, metadata ------------------------------------------------------------------------------

@pytest.fixture
def labelled(archive):
    labels.label_add(level=Level.STUDY, public_id=archive[0].study, name="red")
    labels.label_add(level=Level.STUDY, public_id=archive[0].study, name="blue")
    labels.label_add(level=Level.STUDY, public_id=archive[2].study, name="red")
    return archive


def test_labels_all(labelled):
    assert find(Level.STUDY, labels=("red", "blue")) == [labelled[0].study]


def test_labels_any(labelled):
    assert find(Level.STUDY, labels=("blue", "red"), labels_constraint="Any") == [labelled[0].study,
                                                                                  labelled[2].study]


def test_labels_none(labelled):
    assert find(Level.STUDY, labels=("blue",), labels_constraint="None") == [labelled[2].study,
                                                                             labelled[3].study,
                                                                             labelled[5].study]


def test_labels_none_with_empty_list_means_without_labels(labelled):
    assert find(Level.STUDY, labels_constraint="None") == [labelled[3].study, labelled[5].study]


def test_parent(archive):
    assert find(Level.SERIES, parent=(Level.STUDY, archive[3].study)) == [archive[3].series, archive[4].series]
    assert find(Level.INSTANCE, parent=(Level.PATIENT, archive[0].patient)) == [archive[0].instance,
                                                                                archive[1].instance]


def test_unknown_parent_finds_nothing(archive):
    assert find(Level.SERIES, parent=(Level.STUDY, "nope")) == []


def test_metadata_query(archive):
    metadata_set(archive[2].series, "keep")
    metadata_set(archive[3].series, "kept")
    query = (MetadataConstraint(1024, "kee?"),)
    assert find(Level.SERIES, metadata=query) == [archive[2].series]
    assert find(Level.SERIES, metadata=(MetadataConstraint(1024, "keep\\kept"),)) == [archive[2].series,
                                                                                      archive[3].series]
    assert find(Level.SERIES, metadata=(MetadataConstraint(1024, "KEEP"),)) == []


# --- order and paging --------------------------------------------------------------------------------------

def test_order_by_tag(archive):
    order = (OrderKey("DicomTag", STUDY_DESCRIPTION, False),)
    assert find(Level.STUDY, order_by=order) == [archive[5].study, archive[0].study, archive[3].study,
                                                 archive[2].study]


def test_order_by_tag_as_int_descending(archive):
    order = (OrderKey("DicomTagAsInt", SERIES_NUMBER, True),)
    assert find(Level.SERIES, order_by=order) == [archive[2].series, archive[3].series, archive[0].series,
                                                  archive[4].series, archive[5].series]


def test_order_by_tag_as_float_reads_sign_and_exponent():
    """PostgreSQL's substring() gave the first group of the number pattern: -5 sorted as 5, 1e3 as 1."""
    values = ["-5", "1e3", "10", " 2.5", ".5", "-2.5e-1", "abc"]
    ids = [store(PatientID=f"F{i}", StudyInstanceUID=f"7.{i}", StudyDescription=v).study
           for i, v in enumerate(values)]
    order = (OrderKey("DicomTagAsFloat", STUDY_DESCRIPTION, True),)
    by_value = dict(zip(values, ids, strict=True))
    assert find(Level.STUDY, order_by=order) == [by_value[v] for v in
                                                 ["1e3", "10", " 2.5", ".5", "abc", "-2.5e-1", "-5"]]


@pytest.mark.parametrize("kind", ["DicomTagAsFloat", "DicomTagAsInt"])
def test_order_by_number_out_of_the_databases_ranges(kind):
    """1e400, 2^64 and 60 digits are past double precision and bigint: PostgreSQL's CAST failed (500)."""
    values = ["1e400", "-1e400", "1e-400", "18446744073709551616", "9" * 60, "7", "1e99999", "-1e-9999"]
    ids = [store(PatientID=f"N{i}", StudyInstanceUID=f"8.{i}", StudyDescription=v).study
           for i, v in enumerate(values)]
    by_value = dict(zip(values, ids, strict=True))
    found = find(Level.STUDY, order_by=(OrderKey(kind, STUDY_DESCRIPTION, False),))
    assert sorted(found) == sorted(ids)
    assert found.index(by_value["7"]) < found.index(by_value["18446744073709551616"])
    if kind == "DicomTagAsFloat":
        assert found[0] == by_value["-1e400"] and found.index(by_value["1e-400"]) < found.index(by_value["7"])
        assert found.index(by_value["7"]) < found.index(by_value["1e99999"])


def test_order_by_ancestor_tag_then_insertion_order(archive):
    order = (OrderKey("DicomTag", STUDY_DATE, True),)
    assert find(Level.SERIES, order_by=order) == [archive[3].series, archive[4].series, archive[2].series,
                                                  archive[0].series, archive[5].series]


def test_order_by_metadata(archive):
    metadata_set(archive[2].series, "b")
    metadata_set(archive[3].series, "a")
    order = (OrderKey("Metadata", 1024, False),)
    assert find(Level.SERIES, order_by=order)[-2:] == [archive[3].series, archive[2].series]


def test_order_by_metadata_as_int(archive):
    metadata_set(archive[2].series, "10")
    metadata_set(archive[3].series, "9")
    order = (OrderKey("MetadataAsInt", 1024, True),)
    assert find(Level.SERIES, order_by=order)[:2] == [archive[2].series, archive[3].series]


def test_since_and_limit(archive):
    assert find(Level.SERIES, since=1, limit=2) == [archive[2].series, archive[3].series]
    assert find(Level.SERIES, since=4) == [archive[5].series]


def test_count_ignores_paging(archive):
    assert count(Level.SERIES, since=1, limit=2) == 5


# --- the plan of a Limit query: the same answer whichever shape the database is asked in ------------------
# resources_find(scan_threshold=...) sets the number of matches of the most selective term above which the
# resources are scanned in id order with EXISTS probes (_SCAN) instead of reading that term's matches (IN).

# (level, tags, extra FindQuery fields): every kind of term, one or several, own level and ancestors'
_LIMIT_QUERIES = [
    (Level.SERIES, {MODALITY: "CT"}, {}),
    (Level.SERIES, {MODALITY: "CT\\MR\\PT"}, {}),
    (Level.STUDY, {STUDY_DATE: "20200101-20211231"}, {}),
    (Level.STUDY, {PATIENT_NAME: "*O*"}, {}),
    (Level.PATIENT, {PATIENT_NAME: "??MILE*"}, {}),                       # wildcard with ?: rechecked
    (Level.SERIES, {STUDY_DESCRIPTION: "*"}, {}),                         # ancestor's tag
    (Level.INSTANCE, {PATIENT_ID: "P2", MODALITY: "CT\\PT"}, {}),         # two levels up and own level
    (Level.SERIES, {MODALITY: "CT\\MR\\US\\PT", STUDY_DATE: "20200601-"}, {}),
    (Level.STUDY, {MODALITIES_IN_STUDY: "CT\\US"}, {}),
    (Level.STUDY, {MODALITIES_IN_STUDY: "CT\\MR"}, {"labels": ("red",), "labels_constraint": "None"}),
    (Level.STUDY, {}, {"labels": ("red", "blue"), "labels_constraint": "Any"}),
    (Level.STUDY, {STUDY_DESCRIPTION: "*"}, {"labels": ("red",)}),
    (Level.INSTANCE, {CONTENT_DATE: "20200101-20211231", MODALITY: "MR\\CT"}, {}),  # file tag: rechecked
]


def _paged(level, tags, fields, *, since, limit, threshold):
    query = FindQuery(level=level, tags=tuple(TagConstraint(t, q) for t, q in tags.items()), since=since,
                      limit=limit, **fields)
    return [r.public_id for r in resources_find(query=query, scan_threshold=threshold)]


@pytest.mark.parametrize(("level", "tags", "fields"), _LIMIT_QUERIES)
def test_limit_plans_agree_at_every_switch_point(labelled, level, tags, fields):
    everything = find(level, tags, **fields)   # no Limit: every term as IN, as before the adaptive plan
    assert everything  # each query has matches, so the plans have something to disagree on
    for since in (0, 1, 2):
        for limit in (1, 2, 5):
            expected = everything[since:since + limit]
            # 0: scan whenever a term matches; a huge threshold: always the IN driver; in between, each count
            # on either side of the switch
            for threshold in (0, 1, 2, 3, 4, 5, 6, 10**9):
                assert _paged(level, tags, fields, since=since, limit=limit, threshold=threshold) == expected, (
                    since, limit, threshold)


def test_limit_plan_switches_from_in_to_exists(archive):
    """The threshold really selects the shape: pinned so the tests above exercise both."""
    from django.test.utils import CaptureQueriesContext

    def last_sql(threshold):
        with CaptureQueriesContext(connection) as captured:
            _paged(Level.SERIES, {MODALITY: "CT\\MR"}, {}, since=0, limit=1, threshold=threshold)
        return captured.captured_queries[-1]["sql"].upper()

    many = last_sql(2)    # 3 CT or MR series: more than 2, scan
    assert "EXISTS" in many and " IN (SELECT" not in many
    few = last_sql(3)     # 3: few enough, read them
    assert "EXISTS" not in few and " IN (SELECT" in few


# --- the database and the in-memory matcher agree ----------------------------------------------------------

_TEXT = st.text(alphabet="aAbBéÉß*?_%[ 1-", max_size=5)
_DATE = st.sampled_from(["", "2020", "20200101", "20200615", "20201231", "20210101", "19991231"])
_TAGS = {STUDY_DESCRIPTION: ("LO", _TEXT), PATIENT_NAME: ("PN", _TEXT), STUDY_DATE: ("DA", _DATE),
         ACCESSION: ("SH", _TEXT)}
_NAMES = {STUDY_DESCRIPTION: "StudyDescription", PATIENT_NAME: "PatientName", STUDY_DATE: "StudyDate",
          ACCESSION: "AccessionNumber"}


@st.composite
def _query(draw):
    tag = draw(st.sampled_from(sorted(_TAGS)))
    vr = _TAGS[tag][0]
    if vr == "DA":
        lower, upper = draw(_DATE), draw(_DATE)
        text = draw(st.sampled_from([lower, f"{lower}-{upper}", f"{lower}\\{upper}"]))
    else:
        text = draw(st.one_of(_TEXT, st.builds(lambda a, b: f"{a}\\{b}", _TEXT, _TEXT)))
    return tag, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(studies=st.lists(st.fixed_dictionaries({}, optional={tag: strategy for tag, (_, strategy) in _TAGS.items()}),
                        max_size=6),
       query=_query(), case_sensitive=st.booleans(),
       paging=st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(0, 7)))
def test_database_agrees_with_matcher(studies, query, case_sensitive, paging):
    tag, text = query
    db = IndexWriter()
    now = utcnow()
    made = []
    for i, values in enumerate(studies):
        tags = {_NAMES[t]: v for t, v in values.items()}
        rid = db.insert_resource(level=Level.STUDY, public_id=f"prop-{i}", parent_id=None, tags=tags, now=now)
        db.insert_main_tags([(rid, Level.STUDY.depth, tags)])
        made.append((f"prop-{i}", values.get(tag)))
    try:
        try:
            constraint = constraint_parse(tag, text, vr=_TAGS[tag][0], case_sensitive=case_sensitive)
        except ParameterOutOfRange:
            with pytest.raises(ParameterOutOfRange):
                find(Level.STUDY, {tag: text}, case_sensitive=case_sensitive)
            return
        expected = [pid for pid, value in made if text == "" or constraint_match(constraint, value)]
        assert find(Level.STUDY, {tag: text} if text else {}, case_sensitive=case_sensitive) == expected
        # and a page of it, whichever plan the Limit takes (see test_limit_plans_agree_at_every_switch_point)
        since, limit, threshold = paging
        page = _paged(Level.STUDY, {tag: text} if text else {}, {"case_sensitive": case_sensitive},
                      since=since, limit=limit, threshold=threshold)
        assert page == expected[since:since + limit]
    finally:
        MainDicomTag.objects.filter(resource__public_id__startswith="prop-").delete()
        Resource.objects.filter(public_id__startswith="prop-").delete()


def test_metadata_and_labels_compare_byte_by_byte_on_every_engine():
    """As Orthanc's std::string order: PostgreSQL's database collation (en_US.UTF-8 on Debian) would sort
    OrderBy Metadata and the Labels lists in dictionary order; their columns are COLLATE "C"."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT table_name, column_name, collation_name FROM information_schema.columns"
                           " WHERE (table_name, column_name) IN (('archive_metadata', 'value'),"
                           " ('archive_label', 'name'), ('archive_maindicomtag', 'value'))")
            assert {(t, c): coll for t, c, coll in cursor.fetchall()} == {
                ("archive_metadata", "value"): "C", ("archive_label", "name"): "C",
                ("archive_maindicomtag", "value"): "C"}
    words = ["b", "B", "a", "_x", "\u00c4rger", "Z"]
    ids = [store(PatientID=f"C{i}", StudyInstanceUID=f"8.{i}") for i in range(len(words))]
    for word, stored in zip(words, ids, strict=True):
        Metadata.objects.create(resource=Resource.objects.get(public_id=stored.study), type=1030, value=word)
        if word.isascii():
            labels.label_add(level=Level.STUDY, public_id=stored.study, name=word)
    order = (OrderKey("Metadata", 1030, False),)
    by_word = dict(zip(words, [i.study for i in ids], strict=True))
    assert find(Level.STUDY, order_by=order) == [by_word[w] for w in sorted(words)]
    assert labels.labels_all() == sorted(w for w in words if w.isascii())
