"""JSON as Orthanc writes it: the fast path for lists of IDs writes the same text as the general one."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from explorer.api.rendering import dumps


@given(st.lists(st.text()))
def test_list_of_strings_is_written_as_json_dumps_indent_3(items: list[str]) -> None:
    assert dumps(items) == json.dumps(items, ensure_ascii=False, indent=3).encode("utf-8")


def test_other_values_keep_the_general_encoder() -> None:
    data = {"ID": "é", "List": ["a", 1], "Empty": []}
    assert dumps(data) == json.dumps(data, ensure_ascii=False, indent=3).encode("utf-8")
    assert dumps(["a", 1]) == b'[\n   "a",\n   1\n]'


# JSON values as the API answers them (no floats here: see the next test)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@given(_json_values)
def test_any_answer_is_written_as_json_dumps_indent_3(data) -> None:
    assert dumps(data) == json.dumps(data, ensure_ascii=False, indent=3).encode("utf-8")


@given(st.recursive(st.floats(allow_nan=False, allow_infinity=False) | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                    max_leaves=20))
def test_floats_read_back_the_same(data) -> None:
    assert json.loads(dumps(data)) == data


def test_what_orjson_refuses_takes_the_json_modules_way() -> None:
    for data in ({"big": 2 ** 70}, {1: "integer key"}, [{"x": [2 ** 64]}]):
        assert dumps(data) == json.dumps(data, ensure_ascii=False, indent=3).encode("utf-8")


def test_strings_with_spaces_and_newlines_keep_them() -> None:
    data = {"Name": "Doe  Jane\n    Indented", "Deep": [[{"A": "  two"}]]}
    assert dumps(data) == json.dumps(data, ensure_ascii=False, indent=3).encode("utf-8")


_deep_values = st.recursive(
    st.none() | st.integers() | st.text(),
    lambda children: st.lists(children, min_size=1, max_size=2) | st.dictionaries(st.text(), children, min_size=1,
                                                                                   max_size=2),
    max_leaves=60,
)


@given(_deep_values)
def test_deep_answers_are_written_as_json_dumps_indent_3(data) -> None:
    # past ten levels (structured reports) the re-indentation splits instead of replacing level by level
    for _ in range(12):
        data = {"Value": [data, "  x\n  y"]}
    assert dumps(data) == json.dumps(data, ensure_ascii=False, indent=3).encode("utf-8")
