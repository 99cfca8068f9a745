"""JSON columns that keep any string a client sent, NUL included.

PostgreSQL's jsonb refuses the NUL character (``\\u0000``), which SQLite keeps and Orthanc accepts in job
bodies (a Replace value, a UserData) and query bodies. Strings holding a NUL, or beginning with the marker
below, are stored behind the marker with NUL and backslash escaped, and given back as they were put: on
both backends, so that what is stored does not depend on the engine.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

_MARK = "\ufffe"   # a Unicode noncharacter: no client text begins with it in practice
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _encode_string(text: str) -> str:
    if "\x00" not in text and not text.startswith(_MARK):
        return text
    return _MARK + text.replace("\\", "\\\\").replace("\x00", "\\0")


def _decode_string(text: str) -> str:
    if not text.startswith(_MARK):
        return text
    return _ESCAPED.sub(lambda m: "\x00" if m[1] == "0" else m[1], text[1:])


def _walk(value: Any, convert) -> Any:
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, dict):
        return {convert(k) if isinstance(k, str) else k: _walk(v, convert) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, convert) for v in value]
    return value


class NulSafeEncoder(DjangoJSONEncoder):
    def encode(self, o: Any) -> str:
        return super().encode(_walk(o, _encode_string))


class NulSafeDecoder(json.JSONDecoder):
    def decode(self, s: str, *args, **kwargs) -> Any:
        return _walk(super().decode(s, *args, **kwargs), _decode_string)
