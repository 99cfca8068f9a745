"""POST /tools/find and POST /tools/count-resources (Orthanc's Find handler of OrthancRestResources.cpp).

The body is parsed by ``find_request_parse`` (archive/find_request.py, shared with the C-FIND SCP); this module
runs the query and renders the answer: IDs, Orthanc's legacy description (Expand) or the ResponseContent parts.
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from archive import selectors
from archive.find import resources_count, resources_find
from archive.find_request import FindRequest, find_request_parse
from archive.levels import Level
from archive.metadata import metadata_name
from archive.models import Resource
from archive.requested_tags import requested_values_many
from archive.selectors import series_status_from
from explorer.api.base import OrthancView
from explorer.api.rendering import json_response
from explorer.api.representations import format_tags, main_tags_of, resource_json


def find_answer(resources: list[Resource], request: FindRequest) -> list:
    """The /tools/find answer: IDs, Orthanc's legacy description (Expand), or the ResponseContent parts."""
    content = request.response_content
    if content is None and not request.expand:
        return [r.public_id for r in resources]
    return resources_described(resources, content, fmt=request.fmt, tags=list(request.requested_tags))


def resources_described(resources: list[Resource], content: frozenset[str] | None, *, fmt: str,
                        tags: list) -> list:
    """Each resource as its ResponseContent parts (an empty set: the IDs), or Orthanc's legacy description
    when ``content`` is None; with the values of the requested ``tags``. Shared by /tools/find and the
    resource lists' ``response-content``."""
    if content is not None and not content:
        return [r.public_id for r in resources]
    details = selectors.resource_details(resources)
    values = requested_values_many(resources, tags) if tags else {}

    def requested(resource: Resource) -> dict | None:
        return values[resource.id] if tags else None

    if content is None:
        return [resource_json(r, details, fmt=fmt, requested=requested(r)) for r in resources]
    extra = selectors.resources_extras(resources, metadata="Metadata" in content,
                                       attachments="Attachments" in content)
    return [_content_json(r, details, extra, content, fmt, requested(r)) for r in resources]


_PARENT_KEY = {Level.STUDY: "ParentPatient", Level.SERIES: "ParentStudy", Level.INSTANCE: "ParentSeries"}
_CHILDREN_KEY = {Level.PATIENT: "Studies", Level.STUDY: "Series", Level.SERIES: "Instances"}


def _content_json(resource: Resource, details: selectors.Details, extra: selectors.Extras,
                  content: frozenset[str], fmt: str, requested: dict | None) -> dict:
    """One item with ResponseContent (ResourceFinder::Expand): ID and Type, then each part asked for."""
    level = list(Level)[resource.level]
    out: dict[str, Any] = {"ID": resource.public_id, "Type": level.value}
    if "Parent" in content and level in _PARENT_KEY:
        out[_PARENT_KEY[level]] = resource.parent.public_id
    if "Children" in content and level in _CHILDREN_KEY:
        out[_CHILDREN_KEY[level]] = sorted(details.children.get(resource.id, []))  # a std::set in Orthanc
    if "Status" in content and level is Level.SERIES:
        out["Status"] = series_status_from(details.indexes.get(resource.id, []), details.expected.get(resource.id))
    if "IsStable" in content and level is not Level.INSTANCE:
        out["IsStable"] = resource.is_stable
    if "MainDicomTags" in content:
        out["MainDicomTags"] = format_tags(main_tags_of(resource, level), fmt)
        if level is Level.STUDY:
            out["PatientMainDicomTags"] = format_tags(main_tags_of(resource, Level.PATIENT), fmt)
    if "Labels" in content:
        out["Labels"] = list(details.labels.get(resource.id, []))
    if "Metadata" in content:
        out["Metadata"] = {metadata_name(t): v for t, v in sorted(extra.metadata.get(resource.id, {}).items())}
    if "Attachments" in content:
        out["Attachments"] = extra.attachments.get(resource.id, [])
    if "IsProtected" in content and level is Level.PATIENT:   # 1.12.9
        out["IsProtected"] = resource.is_protected
    if requested is not None:
        out["RequestedTags"] = format_tags(requested, fmt)
    return out


class FindApi(OrthancView):
    """POST /tools/find."""

    def post(self, request):
        find = find_request_parse(request._request.body)
        return json_response(find_answer(resources_find(query=find.query), find))


class CountResourcesApi(OrthancView):
    """POST /tools/count-resources (1.12.5): ``{"Count": N}``."""

    def post(self, request):
        find = find_request_parse(request._request.body, count=True)
        return json_response({"Count": resources_count(query=find.query)})


urlpatterns = [
    path("tools/find", FindApi.as_view()),                          # POST; body fields of 1.12.0/1.12.5 above
    path("tools/count-resources", CountResourcesApi.as_view()),     # POST, new in Orthanc 1.12.5
]
