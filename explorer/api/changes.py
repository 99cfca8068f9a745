"""/changes and /exports (Orthanc's OrthancRestChanges.cpp)."""

from __future__ import annotations

import re

from django.urls import path

from archive import changes
from explorer.api.base import OrthancView
from explorer.api.rendering import json_response, text_response

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")   # what boost::lexical_cast reads as an integer
_INT64 = 2 ** 63
_UINT32 = 2 ** 32


def _integer(text: str, *, bits_unsigned: bool = False) -> int:
    if not _INTEGER.match(text):
        raise ValueError(text)
    value = int(text)
    if bits_unsigned:
        if not -_UINT32 < value < _UINT32:
            raise ValueError(text)
        return value % _UINT32  # lexical_cast<unsigned>("-1") is 4294967295: no limit, in effect
    if not -_INT64 <= value < _INT64:
        raise ValueError(text)
    return value


def log_arguments(request) -> tuple[int, int | None, int]:
    """``since``, ``to`` and ``limit`` as Orthanc reads them: if any is not an integer, all three take
    their defaults (0, none, 100), with no error. ``to=-1`` means no ``to``."""
    try:
        since = _integer(request.GET.get("since", "0"))
        to = _integer(request.GET.get("to", "-1"))
        limit = _integer(request.GET.get("limit", str(changes.DEFAULT_LIMIT)), bits_unsigned=True)
    except ValueError:
        return 0, None, changes.DEFAULT_LIMIT
    return since, None if to == -1 else to, limit


class ChangesApi(OrthancView):
    def get(self, request):
        # New in Orthanc 1.12.5: "type" (names separated by ";") and "to"; "last" is used alone.
        types = changes.change_types_parse(request.GET.get("type", "all"))
        if "last" in request.GET:
            return json_response(changes.changes_last())
        since, to, limit = log_arguments(request)
        return json_response(changes.changes_page(since=since, limit=limit, to=to, types=types))

    def delete(self, request):
        changes.changes_clear()
        return text_response("")


class ExportsApi(OrthancView):
    def get(self, request):
        if "last" in request.GET:
            return json_response(changes.exports_last())
        since, _to, limit = log_arguments(request)
        return json_response(changes.exports_page(since=since, limit=limit))

    def delete(self, request):
        changes.exports_clear()
        return text_response("")


urlpatterns = [
    path("changes", ChangesApi.as_view()),          # GET, DELETE
    path("exports", ExportsApi.as_view()),          # GET, DELETE
]
