"""Metadata routes, at every level."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path

from archive import metadata, selectors
from archive.levels import Level
from explorer.api.base import OrthancView
from explorer.api.params import flag
from explorer.api.rendering import json_response, text_response


def _etag(response: HttpResponse, revision: int) -> HttpResponse:
    response["ETag"] = f'"{revision}"'
    return response


class MetadataListApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        values = metadata.metadata_list(resource=resource, numeric=flag(request, "numeric"))
        return json_response(values if flag(request, "expand") else list(values))


class MetadataApi(OrthancView):
    def get(self, request, public_id: str, name: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        value, revision = metadata.metadata_get(resource=resource, name=name)
        if metadata.parse_revision(request.META.get("HTTP_IF_NONE_MATCH")) == revision:
            return _etag(HttpResponse(status=304), revision)
        return _etag(text_response(value), revision)

    def put(self, request, public_id: str, name: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        revision = metadata.metadata_set(resource=resource, name=name,
                                         value=request._request.body.decode("utf-8", "replace"),
                                         if_match=metadata.parse_revision(request.META.get("HTTP_IF_MATCH")))
        return _etag(text_response(""), revision)

    def delete(self, request, public_id: str, name: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        metadata.metadata_delete(resource=resource, name=name,
                                 if_match=metadata.parse_revision(request.META.get("HTTP_IF_MATCH")))
        return text_response("")


urlpatterns = []
for _level in Level:
    urlpatterns += [
        path(f"{_level.plural}/<str:public_id>/metadata", MetadataListApi.as_view(level=_level)),
        path(f"{_level.plural}/<str:public_id>/metadata/<str:name>", MetadataApi.as_view(level=_level)),
    ]
