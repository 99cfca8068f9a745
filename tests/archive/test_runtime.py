from __future__ import annotations

import logging

import pytest

from archive import runtime
from archive.errors import BadFileFormat, ParameterOutOfRange
from archive.models import GlobalProperty

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_runtime():
    runtime.runtime_reset()
    yield
    runtime.runtime_reset()


def forget_process_cache() -> None:
    """What another worker process sees: the database, not this process's memory."""
    runtime._cache.clear()


def test_default_encoding_starts_from_the_configuration(orthanc_config):
    orthanc_config(DefaultEncoding="Utf8")
    assert runtime.default_encoding(cached=False) == "Utf8"


def test_default_encoding_set_is_stored_canonically():
    assert runtime.default_encoding_set(name="windows1251") == "Windows1251"
    assert GlobalProperty.objects.get(key="Runtime.DefaultEncoding").value == "Windows1251"
    assert runtime.default_encoding() == "Windows1251"


def test_unknown_encoding_is_out_of_range():
    with pytest.raises(ParameterOutOfRange):
        runtime.default_encoding_set(name=" Utf8")


def test_cached_reader_sees_an_unstamped_change_after_the_cache_delay(monkeypatch):
    """A process of another machine (scale-out) changes the row; no stamp of ours tells us."""
    monkeypatch.setattr(runtime, "_stamp", lambda: 1)   # the stamp file is shared with the other test workers
    assert runtime.default_encoding() == "Latin1"
    GlobalProperty.objects.create(key="Runtime.DefaultEncoding", value="Utf8")
    assert runtime.default_encoding() == "Latin1"                                # still cached here
    assert runtime.default_encoding(cached=False) == "Utf8"
    monkeypatch.setattr(runtime, "CACHE_SECONDS", 0.0)
    assert runtime.default_encoding() == "Utf8"


def test_cached_reader_sees_a_change_of_another_process_of_this_machine_at_once():
    assert runtime.default_encoding() == "Latin1"
    assert runtime.accepted_transfer_syntaxes()[0] == "1.2.840.10008.1.2"
    # what runtime._write does in another worker: the row, then the stamp (its own cache is not ours)
    GlobalProperty.objects.create(key="Runtime.DefaultEncoding", value="Utf8")
    GlobalProperty.objects.create(key="Runtime.AcceptedTransferSyntaxes", value='["1.2.840.10008.1.2.1"]')
    runtime._stamp_touch()
    assert runtime.default_encoding() == "Utf8"
    assert runtime.accepted_transfer_syntaxes() == ["1.2.840.10008.1.2.1"]
    GlobalProperty.objects.filter(key="Runtime.DefaultEncoding").update(value="Latin2")
    runtime._stamp_touch()   # a second change right after the first one is seen too
    assert runtime.default_encoding() == "Latin2"


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), (" 0\n", False), ("false", False)])
def test_bool_parse(text, value):
    assert runtime.bool_parse(text) is value


@pytest.mark.parametrize("text", ["True", "yes", "", "2"])
def test_bool_parse_refuses_other_words(text):
    with pytest.raises(BadFileFormat):
        runtime.bool_parse(text)


def test_metrics_switch_is_shared():
    assert runtime.metrics_enabled() is True
    runtime.metrics_enabled_set(enabled=False)
    forget_process_cache()
    assert runtime.metrics_enabled() is False


def test_unknown_sop_class_accepted_follows_the_configuration(orthanc_config):
    orthanc_config(UnknownSopClassAccepted=True)
    assert runtime.unknown_sop_class_accepted(cached=False) is True
    runtime.unknown_sop_class_accepted_set(accepted=False)
    assert runtime.unknown_sop_class_accepted(cached=False) is False


def test_default_transfer_syntaxes_are_all_known_ones():
    accepted = runtime.accepted_transfer_syntaxes(cached=False)
    assert accepted == list(runtime.TRANSFER_SYNTAXES)
    assert accepted[:4] == ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99",
                            "1.2.840.10008.1.2.2"]


def test_transfer_syntax_groups_apply_after_the_patterns(orthanc_config):
    orthanc_config(AcceptedTransferSyntaxes=["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"],
                   RleTransferSyntaxAccepted=True, JpegTransferSyntaxAccepted=False)
    assert runtime.accepted_transfer_syntaxes(cached=False) == [
        "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"]


def test_transfer_syntax_wildcards_match_whole_uids():
    assert runtime.accepted_transfer_syntaxes_set(patterns=["1.2.840.10008.1.2.4.9?"]) == [
        f"1.2.840.10008.1.2.4.{n}" for n in range(90, 96)]
    assert runtime.accepted_transfer_syntaxes_set(patterns=["1.2.840.10008.1.2.4.5"]) == []
    assert runtime.accepted_transfer_syntaxes(cached=False) == []


def test_accepted_sop_classes_patterns(orthanc_config):
    orthanc_config(AcceptedSopClasses=["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4*", "9.9.9"],
                   RejectedSopClasses=["1.2.840.10008.5.1.4.1.1.4.?"])
    accepted = runtime.accepted_sop_classes()
    assert "1.2.840.10008.5.1.4.1.1.2" in accepted and "9.9.9" in accepted
    assert "1.2.840.10008.5.1.4.1.1.4" in accepted and "1.2.840.10008.5.1.4.1.1.4.1" not in accepted
    assert accepted == sorted(accepted)


@pytest.mark.parametrize(("options", "ct_accepted"), [
    ({"RejectSopClasses": ["1.2.840.10008.5.1.4.1.1.2"]}, False),   # 1.12.6-1.12.7's spelling (1.12.8)
    ({"RejectedSopClasses": ["1.2.840.10008.5.1.4.1.1.2"]}, False),
    ({"RejectedSopClasses": [], "RejectSopClasses": ["1.2.840.10008.5.1.4.1.1.2"]}, True),   # the right one wins
])
def test_reject_sop_classes_is_a_synonym(orthanc_config, options, ct_accepted):
    orthanc_config(**options)
    accepted = runtime.accepted_sop_classes()
    assert ("1.2.840.10008.5.1.4.1.1.2" in accepted) is ct_accepted
    assert "1.2.840.10008.5.1.4.1.1.4" in accepted


def test_log_level_of_all_categories_and_the_main_one():
    runtime.log_level_set(level="verbose")
    assert {runtime.log_level(category=c) for c in runtime.LOG_CATEGORIES} == {"verbose"}
    runtime.log_level_set(level="trace", category="sqlite")
    assert runtime.log_level() == "trace"              # the most verbose category
    assert runtime.log_level(category="http") == "verbose"


def test_log_level_is_applied_to_the_python_loggers():
    runtime.log_level_set(level="trace", category="dicom")
    assert logging.getLogger("pynetdicom").level == logging.DEBUG
    runtime.log_level_set(level="default", category="dicom")
    assert logging.getLogger("pynetdicom").level == logging.NOTSET


def test_logging_sync_applies_levels_set_by_another_process():
    GlobalProperty.objects.create(key="Runtime.LogLevel.http", value="verbose")
    runtime.logging_sync(force=True)
    assert logging.getLogger("django.request").level == logging.INFO


def test_log_level_parse_is_exact():
    with pytest.raises(ParameterOutOfRange, match="Verbosity can be"):
        runtime.log_level_set(level="Verbose")
