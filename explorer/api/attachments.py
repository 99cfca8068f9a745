"""Attachment routes at every level, as Orthanc's RegisterResources lays them out.

Every GET below ``.../attachments/{name}`` carries the attachment's ETag and answers 304 to a matching
If-None-Match. Orthanc answers some outcomes bare (no JSON body): an MD5 that is not stored (404), a failed
or impossible MD5 check (400), a write to a system attachment (403).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path

from archive import attachments
from archive.levels import Level
from archive.metadata import etag_of
from explorer.api.base import OrthancView
from explorer.api.rendering import bare_response, json_response, text_response, with_etag, with_filename

PARTS = ("data", "compressed-data", "info", "size", "compressed-size", "md5", "compressed-md5", "is-compressed")
ACTIONS = ("verify-md5", "compress", "uncompress")


def answer_attachment(request, att) -> HttpResponse:
    """Send an attachment's content as Orthanc does (its MIME type, ``filename="<uuid>.dcm"`` unless the
    ``filename`` argument of 1.12.7 names another, ``Range`` of 1.12.5 answered 206)."""
    byte_range = _requested_range(request)
    mime = attachments.mime_type(att.content_type)
    if byte_range is not None:
        return _partial(*attachments.attachment_range(att, byte_range, uncompressed=True), mime)
    response = HttpResponse(attachments.attachment_data(att), content_type=mime)
    return with_filename(response, request.GET.get("filename") or attachments.download_name(att))


def _requested_range(request) -> attachments.ByteRange | None:
    # Orthanc documents the request header as "Content-Range" and its NEWS as "Range": both are read.
    header = request.headers.get("Range") or request.headers.get("Content-Range")
    return None if header is None else attachments.ByteRange.parse(header.strip())


def _partial(content: bytes, content_range: str, mime: str) -> HttpResponse:
    response = HttpResponse(content, status=206, content_type=mime)
    response["Content-Range"] = content_range
    return response


class AttachmentListApi(OrthancView):
    def get(self, request, public_id: str):
        return json_response(attachments.attachments_list(level=self.level, public_id=public_id,
                                                          full="full" in request.GET))


class AttachmentApi(OrthancView):
    read_only_absent = frozenset({"put", "delete"})

    def get(self, request, public_id: str, name: str):
        att = attachments.attachment_get(public_id=public_id, name=name)
        if attachments.attachment_matches(att, request.headers.get("If-None-Match")):
            return bare_response(304, ETag=attachments.attachment_etag(att))
        return with_etag(json_response(attachments.attachment_operations(att)), attachments.attachment_etag(att))

    def put(self, request, public_id: str, name: str):
        body = request._request.body
        att = attachments.attachment_put(public_id=public_id, name=name, data=body,
                                         if_match=request.headers.get("If-Match"))
        # Orthanc's ETag here is the MD5 of the body, even when MD5s are not stored.
        return with_etag(json_response({}), etag_of(att.revision, body))

    def delete(self, request, public_id: str, name: str):
        attachments.attachment_delete(public_id=public_id, name=name, if_match=request.headers.get("If-Match"))
        return text_response("")


class AttachmentPartApi(OrthancView):
    """The read-only facets of one attachment: content, sizes, MD5s, info, compression state."""

    part: str = "info"

    def get(self, request, public_id: str, name: str):
        att = attachments.attachment_get(public_id=public_id, name=name)
        etag = attachments.attachment_etag(att)
        if attachments.attachment_matches(att, request.headers.get("If-None-Match")):
            return bare_response(304, ETag=etag)
        return with_etag(self.answer(request, att), etag)

    def answer(self, request, att) -> HttpResponse:
        if self.part == "data":
            return answer_attachment(request, att)
        if self.part == "compressed-data":
            byte_range = _requested_range(request)
            if byte_range is not None:
                return _partial(*attachments.attachment_range(att, byte_range, uncompressed=False),
                                "application/octet-stream")
            response = HttpResponse(attachments.attachment_stored_bytes(att), content_type="application/octet-stream")
            filename = request.GET.get("filename")
            return with_filename(response, filename) if filename else response
        if self.part == "info":
            return json_response(attachments.attachment_info(att))
        if self.part in ("md5", "compressed-md5"):
            md5 = att.uncompressed_md5 if self.part == "md5" else att.compressed_md5
            return text_response(md5) if md5 else bare_response(404)
        value = {"size": att.uncompressed_size, "compressed-size": att.compressed_size,
                 "is-compressed": int(att.compression == attachments.COMPRESSION_ZLIB)}[self.part]
        return text_response(str(value))


class AttachmentActionApi(OrthancView):
    action: str = "verify-md5"

    def post(self, request, public_id: str, name: str):
        if self.action == "verify-md5":
            if not attachments.attachment_verify_md5(public_id=public_id, name=name):
                return bare_response(400)
        else:
            attachments.attachment_set_compression(public_id=public_id, name=name,
                                                   compressed=self.action == "compress")
        return json_response({})


urlpatterns = []
for _level in Level:
    _base = f"{_level.plural}/<str:public_id>/attachments"
    urlpatterns += [
        path(_base, AttachmentListApi.as_view(level=_level)),
        path(f"{_base}/<str:name>", AttachmentApi.as_view(level=_level)),
        # Range on data and compressed-data: new in Orthanc 1.12.5; ?filename: new in 1.12.7
        *[path(f"{_base}/<str:name>/{part}", AttachmentPartApi.as_view(level=_level, part=part)) for part in PARTS],
        *[path(f"{_base}/<str:name>/{action}", AttachmentActionApi.as_view(
            level=_level, action=action,
            read_only_absent=frozenset({"post"}) if action in ("compress", "uncompress") else frozenset()))
          for action in ACTIONS],
    ]
