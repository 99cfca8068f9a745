"""Metadata routes at every level, as Orthanc's RegisterResources lays them out.

Orthanc answers some outcomes with a bare status and no JSON body: a metadata the resource does not carry
(404, the handler answers nothing) and a write to system metadata (403, ``SignalError``, an ArchiveError
marked ``bare`` that the one formatter renders bare).
"""

from __future__ import annotations

from django.urls import path

from archive import metadata
from archive.levels import Level
from explorer.api.base import OrthancView
from explorer.api.params import flag
from explorer.api.rendering import bare_response, json_response, text_response, with_etag


class MetadataListApi(OrthancView):
    def get(self, request, public_id: str):
        # New in Orthanc 1.12.0: ?numeric
        return json_response(metadata.metadata_list(level=self.level, public_id=public_id,
                                                    numeric="numeric" in request.GET,
                                                    expand=flag(request, "expand")))


class MetadataApi(OrthancView):
    def get(self, request, public_id: str, name: str):
        found = metadata.metadata_get(level=self.level, public_id=public_id, name=name)
        if found is None:
            return bare_response(404)
        if found.matches(request.headers.get("If-None-Match")):
            return bare_response(304, ETag=found.etag)
        return with_etag(text_response(found.data), found.etag)

    def put(self, request, public_id: str, name: str):
        stored = metadata.metadata_set(public_id=public_id, name=name,
                                       value=metadata.metadata_text(request._request.body),
                                       if_match=request.headers.get("If-Match"))
        return with_etag(text_response(""), stored.etag)

    def delete(self, request, public_id: str, name: str):
        metadata.metadata_delete(public_id=public_id, name=name, if_match=request.headers.get("If-Match"))
        return text_response("")


urlpatterns = []
for _level in Level:
    urlpatterns += [
        path(f"{_level.plural}/<str:public_id>/metadata", MetadataListApi.as_view(level=_level)),
        path(f"{_level.plural}/<str:public_id>/metadata/<str:name>", MetadataApi.as_view(level=_level)),
    ]
