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
