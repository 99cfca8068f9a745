from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from archive.json_nul import NulSafeDecoder, NulSafeEncoder

_TEXT = st.text(alphabet=st.sampled_from(["\x00", "\\", "0", "a", "\ufffe", "é"]), max_size=8)
_VALUES = st.recursive(st.none() | st.integers() | _TEXT,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                       max_leaves=10)


@given(_VALUES)
def test_any_value_comes_back_as_it_was_put_and_the_text_holds_no_nul(value):
    text = json.dumps(value, cls=NulSafeEncoder)
    assert "\\u0000" not in text.replace("\\\\", "")   # what PostgreSQL's jsonb refuses
    assert json.loads(text, cls=NulSafeDecoder) == value


def test_plain_values_are_stored_as_plain_json():
    assert json.dumps({"a": ["b", 1]}, cls=NulSafeEncoder) == json.dumps({"a": ["b", 1]})
