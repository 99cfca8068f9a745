"""archive.dicom.matching: PS3.4 C.2.2.2 as Orthanc's /tools/find applies it.

Cases marked "Orthanc 1.10.1" were checked against the real server (POST /tools/find on studies).
"""

from __future__ import annotations

import pytest

from archive.dicom.matching import Kind, constraint_match, constraint_parse, fold
from archive.errors import ParameterOutOfRange

PATIENT_NAME, STUDY_DATE, STUDY_TIME, STUDY_UID = 0x00100010, 0x00080020, 0x00080030, 0x0020000D
STUDY_DESCRIPTION, ACQUISITION_DATETIME = 0x00081030, 0x0008002A


def match(query: str, value: str | None, *, vr: str = "LO", case_sensitive: bool = True, tag: int = 0x00081030):
    return constraint_match(constraint_parse(tag, query, vr=vr, case_sensitive=case_sensitive), value)


def test_single_value_is_exact():
    assert match("Chest", "Chest")
    assert not match("Chest", "Chest CT")


def test_single_value_is_case_sensitive_when_asked():
    assert not match("CHEST", "Chest")


def test_case_insensitive_applies_to_any_vr_for_tools_find():
    # Orthanc 1.10.1: {"StudyDescription": "BRAIN MRI"} finds "brain mri" unless CaseSensitive is true
    assert match("BRAIN MRI", "brain mri", vr="LO", case_sensitive=False)


def test_case_insensitive_keeps_accents_but_folds_their_case():
    # Orthanc 1.10.1: "ÉMILE^ZOLA" finds "Émile^Zola" and "émile^zola"
    assert match("ÉMILE^ZOLA", "émile^zola", vr="PN", case_sensitive=False)
    assert not match("EMILE^ZOLA", "Émile^Zola", vr="PN", case_sensitive=False)


def test_sharp_s_is_not_expanded():
    # Orthanc 1.10.1: "STRAUSS^HANS" does not find "Strauß^Hans", "STRAUß^HANS" does
    assert fold("Strauß") == "STRAUß"
    assert not match("STRAUSS^HANS", "Strauß^Hans", vr="PN", case_sensitive=False)


def test_absent_value_never_matches():
    assert not match("Chest", None)


def test_absent_value_does_not_match_star():
    # Orthanc 1.10.1: SeriesDescription "*" at study level (not stored there) finds nothing
    assert not match("*", None)


def test_star_matches_any_present_value_even_empty():
    # Orthanc 1.10.1: StudyDescription "*" finds the study whose description is empty
    assert match("*", "")
    assert match("*", "anything")


def test_question_mark_needs_one_character():
    # Orthanc 1.10.1: "?*" does not find the empty description
    assert not match("?*", "")
    assert match("?*", "x")


def test_question_mark_is_one_byte_as_in_orthanc():
    # Orthanc 1.10.1: "?MILE*" does not find "Émile^Zola" (É is two bytes in UTF-8)
    assert not match("?MILE*", "ÉMILE^ZOLA", vr="PN")
    assert match("??MILE*", "ÉMILE^ZOLA", vr="PN")


def test_wildcard_is_anchored():
    assert match("*SMITH*", "JOHN SMITH JR", vr="PN")
    assert not match("SMITH*", "JOHN SMITH", vr="PN")


def test_wildcard_treats_regex_characters_literally():
    assert match("a.b*", "a.bc")
    assert not match("a.b*", "axbc")


def test_wildcard_case_insensitive():
    assert match("*smith*", "JOHN SMITH", vr="PN", case_sensitive=False)


def test_wildcard_on_a_vr_that_forbids_it_is_refused():
    # Orthanc 1.10.1: StudyInstanceUID "1.2.3.*" -> 400 "Wildcards are not allowed on tag 0020,000d"
    with pytest.raises(ParameterOutOfRange) as info:
        constraint_parse(STUDY_UID, "1.2.3.*", vr="UI", case_sensitive=True)
    assert info.value.details == "Wildcards are not allowed on tag 0020,000d"


def test_star_alone_on_a_date_is_refused():
    # Orthanc 1.10.1: StudyDate "*" -> 400
    with pytest.raises(ParameterOutOfRange):
        constraint_parse(STUDY_DATE, "*", vr="DA", case_sensitive=True)


def test_wildcard_in_a_range_bound_is_refused():
    # Orthanc 1.10.1: StudyDate "20200101-2020*" -> 400
    with pytest.raises(ParameterOutOfRange):
        constraint_parse(STUDY_DATE, "20200101-2020*", vr="DA", case_sensitive=True)


def test_date_range_is_inclusive():
    assert match("20200101-20201231", "20200101", vr="DA", tag=STUDY_DATE)
    assert match("20200101-20201231", "20201231", vr="DA", tag=STUDY_DATE)
    assert not match("20200101-20201231", "20210101", vr="DA", tag=STUDY_DATE)


def test_date_range_open_above():
    # Orthanc 1.10.1: "20200101-" finds 20200115, 20200601, 20210101, not "" nor "2020"
    assert match("20200101-", "20210101", vr="DA", tag=STUDY_DATE)
    assert not match("20200101-", "", vr="DA", tag=STUDY_DATE)
    assert not match("20200101-", "2020", vr="DA", tag=STUDY_DATE)


def test_date_range_open_below_compares_strings():
    # Orthanc 1.10.1: "-20200601" finds 20200115, 20200601, "" and "2020"
    assert match("-20200601", "", vr="DA", tag=STUDY_DATE)
    assert match("-20200601", "2020", vr="DA", tag=STUDY_DATE)
    assert not match("-20200601", "20200602", vr="DA", tag=STUDY_DATE)


def test_range_without_bounds_is_universal():
    # Orthanc 1.10.1: StudyDate "-" finds every study
    constraint = constraint_parse(STUDY_DATE, "-", vr="DA", case_sensitive=True)
    assert constraint.kind is Kind.UNIVERSAL
    assert constraint_match(constraint, None)


def test_time_range_compares_strings():
    # Orthanc 1.10.1: StudyTime "1000-1200" finds 101500 but not 120030.5 nor 0800
    assert match("1000-1200", "101500", vr="TM", tag=STUDY_TIME)
    assert not match("1000-1200", "120030.5", vr="TM", tag=STUDY_TIME)
    assert not match("1000-1200", "0800", vr="TM", tag=STUDY_TIME)


def test_datetime_range():
    assert match("20200101000000-20200102", "20200101120000", vr="DT", tag=ACQUISITION_DATETIME)


def test_dash_is_not_a_range_outside_dates_and_times():
    assert match("A-B", "A-B", vr="LO")
    assert constraint_parse(STUDY_DESCRIPTION, "A-B", vr="LO", case_sensitive=True).kind is Kind.SINGLE


def test_list_of_values():
    # Orthanc 1.10.1: "Chest\\brain mri" (case-insensitive) finds Chest, Brain MRI and brain mri
    assert match("Chest\\brain mri", "Brain MRI", case_sensitive=False)
    assert not match("Chest\\brain mri", "Head", case_sensitive=False)


def test_list_keeps_empty_items():
    # Orthanc 1.10.1: "Chest\\" also finds the study whose description is empty
    assert match("Chest\\", "")


def test_list_items_are_literal():
    # Orthanc 1.10.1: "x\\*y" does not find "x*y"... nor anything but "x" and "*y"
    assert match("x\\*y", "*y")
    assert not match("x\\*y", "x*y")


def test_list_of_uids():
    assert match("1.2.3\\1.2.4", "1.2.4", vr="UI", tag=STUDY_UID)


def test_empty_query_is_universal():
    assert constraint_parse(PATIENT_NAME, "", vr="PN", case_sensitive=True).kind is Kind.UNIVERSAL
