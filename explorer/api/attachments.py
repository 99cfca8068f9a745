"""Attachment routes, at every level."""

from __future__ import annotations

import re

from django.http import HttpResponse
from django.urls import path

from archive import attachments, selectors
from archive.errors import BadRange
from archive.levels import Level
from archive.metadata import parse_revision
from explorer.api.base import OrthancView
from explorer.api.params import flag
from explorer.api.rendering import json_response, text_response

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _etag(response: HttpResponse, revision: int) -> HttpResponse:
    response["ETag"] = f'"{revision}"'
    return response


def _attachment(view, public_id: str, name: str):
    resource = selectors.resource_get(level=view.level, public_id=public_id)
    return resource, attachments.attachment_get(resource=resource, name=name)


def _not_modified(request, att) -> bool:
    return parse_revision(request.META.get("HTTP_IF_NONE_MATCH")) == att.revision


def _ranged(request, data: bytes, content_type: str) -> HttpResponse:
    """Serve bytes, honouring a single HTTP Range (Orthanc 1.12.5)."""
    header = request.META.get("HTTP_RANGE") or request.META.get("HTTP_CONTENT_RANGE")
    if not header:
        return HttpResponse(data, content_type=content_type)
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise BadRange(f"Unsupported range: {header}")
    size = len(data)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(size - int(m.group(2)), 0), size - 1
    if start >= size or start > end:
        raise BadRange(f"Range outside of the attachment: {header}")
    response = HttpResponse(data[start:end + 1], status=206, content_type=content_type)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


class AttachmentListApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        found = attachments.attachments_list(resource=resource)
        return json_response(found if flag(request, "full") else list(found))


class AttachmentApi(OrthancView):
    def get(self, request, public_id: str, name: str):
        _resource, att = _attachment(self, public_id, name)
        if _not_modified(request, att):
            return _etag(HttpResponse(status=304), att.revision)
        return _etag(json_response(attachments.OPERATIONS), att.revision)

    def put(self, request, public_id: str, name: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        revision = attachments.attachment_put(resource=resource, name=name, data=request._request.body,
                                              if_match=parse_revision(request.META.get("HTTP_IF_MATCH")))
        return _etag(json_response({}), revision)

    def delete(self, request, public_id: str, name: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        attachments.attachment_delete(resource=resource, name=name,
                                      if_match=parse_revision(request.META.get("HTTP_IF_MATCH")))
        return text_response("")


class AttachmentPartApi(OrthancView):
    """The read-only facets of an attachment: data, sizes, MD5s, info, compression state."""

    part: str = "info"

    def get(self, request, public_id: str, name: str):
        _resource, att = _attachment(self, public_id, name)
        if _not_modified(request, att):
            return _etag(HttpResponse(status=304), att.revision)
        if self.part == "data":
            response = _ranged(request, attachments.attachment_data(att), attachments.mime_type(att.content_type))
        elif self.part == "compressed-data":
            response = _ranged(request, attachments.attachment_stored_bytes(att), "application/octet-stream")
        elif self.part == "info":
            response = json_response(attachments.attachment_info(att))
        else:
            value = {"size": att.uncompressed_size, "compressed-size": att.compressed_size,
                     "md5": att.uncompressed_md5, "compressed-md5": att.compressed_md5,
                     "is-compressed": int(att.compression == 2)}[self.part]
            response = text_response(str(value))
        filename = request.GET.get("filename")
        if filename and self.part in ("data", "compressed-data"):
            safe = "".join(c for c in filename if c.isalnum() or c in "._- ")
            response["Content-Disposition"] = f'filename="{safe}"'
        return _etag(response, att.revision)


class AttachmentActionApi(OrthancView):
    action: str = "verify-md5"

    def post(self, request, public_id: str, name: str):
        resource, att = _attachment(self, public_id, name)
        if self.action == "verify-md5":
            attachments.attachment_verify_md5(att)
        else:
            attachments.attachment_set_compression(resource=resource, name=name,
                                                   compressed=self.action == "compress")
        return json_response({})


urlpatterns = []
for _level in Level:
    base = f"{_level.plural}/<str:public_id>/attachments"
    urlpatterns += [
        path(base, AttachmentListApi.as_view(level=_level)),
        path(f"{base}/<str:name>", AttachmentApi.as_view(level=_level)),
        *[path(f"{base}/<str:name>/{part}", AttachmentPartApi.as_view(level=_level, part=part))
          for part in ("data", "compressed-data", "info", "size", "compressed-size", "md5", "compressed-md5",
                       "is-compressed")],
        *[path(f"{base}/<str:name>/{action}", AttachmentActionApi.as_view(level=_level, action=action))
          for action in ("verify-md5", "compress", "uncompress")],
    ]
