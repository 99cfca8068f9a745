"""/changes and /exports."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path

from archive import changes
from explorer.api.base import OrthancView
from explorer.api.params import non_negative_int
from explorer.api.rendering import json_response


class ChangesApi(OrthancView):
    def get(self, request):
        if "last" in request.GET:
            return json_response(changes.changes_last())
        to = non_negative_int(request, "to", default=-1)
        types = changes.change_types(request.GET.get("type", ""))
        return json_response(changes.changes_page(
            since=non_negative_int(request, "since"), limit=non_negative_int(request, "limit"),
            to=None if to < 0 else to, types=types))

    def delete(self, request):
        changes.changes_clear()
        return HttpResponse(b"", content_type="text/plain")


class ExportsApi(OrthancView):
    def get(self, request):
        return json_response(changes.exports_page(since=non_negative_int(request, "since"),
                                                  limit=non_negative_int(request, "limit")))

    def delete(self, request):
        changes.exports_clear()
        return HttpResponse(b"", content_type="text/plain")


urlpatterns = [
    path("changes", ChangesApi.as_view()),
    path("exports", ExportsApi.as_view()),
]
