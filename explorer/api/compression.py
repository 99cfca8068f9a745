"""HttpCompressionEnabled: answers compressed as Orthanc's HTTP server compresses them.

What real Orthanc 1.10.1 does with the option on (seen with curl, tests/explorer/api/test_compression.py):
every successful answer it sends in one piece is compressed, whatever its type or size (JSON, text, DICOM,
PNG, raw frames); the ZIP archives it streams are not; errors are not. Accept-Encoding is read as a list of
exact tokens ("gzip", "deflate"; a token with a parameter such as "gzip;q=0" or another case is none of them),
gzip preferred to deflate, which is the zlib format (RFC 1950) as HTTP's "deflate" means.

Ours also says ``Vary: Accept-Encoding`` (Orthanc does not), so that a cache in between never gives a
compressed answer to a client that did not ask for one. gzip goes through Django's compress_string and
compress_sequence: their random padding of the gzip header defeats BREACH-style guessing on the HTML pages.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.text import compress_sequence, compress_string

# What Orthanc streams in chunks rather than in one piece: its archives (/archive, /media), never compressed
_STREAMED_UNCOMPRESSED = ("application/zip",)
# Django's setting for the gzip header's random padding (its GZipMiddleware's)
_MAX_RANDOM_BYTES = 100


def encoding_chosen(accept_encoding: str) -> str | None:
    """The Content-Encoding Orthanc picks for an Accept-Encoding header: "gzip", "deflate" or None."""
    tokens = {token.strip() for token in accept_encoding.split(",")}
    if "gzip" in tokens:
        return "gzip"
    if "deflate" in tokens:
        return "deflate"
    return None


def _deflate_sequence(sequence: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj()
    for chunk in sequence:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()


def response_compress(response: HttpResponse | StreamingHttpResponse, encoding: str) -> None:
    """Compress ``response`` in place with ``encoding`` ("gzip" or "deflate")."""
    if response.streaming:
        if encoding == "gzip":
            response.streaming_content = compress_sequence(response.streaming_content,
                                                           max_random_bytes=_MAX_RANDOM_BYTES)
        else:
            response.streaming_content = _deflate_sequence(response.streaming_content)
        del response["Content-Length"]
    else:
        if encoding == "gzip":
            response.content = compress_string(response.content, max_random_bytes=_MAX_RANDOM_BYTES)
        else:
            response.content = zlib.compress(response.content)
        response["Content-Length"] = str(len(response.content))
    # The ETag stays as it is (Orthanc keeps it): clients send it back in If-Match as the revision
    response["Content-Encoding"] = encoding


def _compressible(request: HttpRequest, response: HttpResponse | StreamingHttpResponse) -> bool:
    if not 200 <= response.status_code < 300 or response.status_code == 204 or request.method == "HEAD":
        return False
    if response.has_header("Content-Encoding"):
        return False
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return not (response.streaming and content_type in _STREAMED_UNCOMPRESSED)


class HttpCompressionMiddleware:
    """Compress successful answers when HttpCompressionEnabled is true (false by default, as Orthanc)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not settings.ORTHANC.get("HttpCompressionEnabled", False):
            return response
        if not _compressible(request, response):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        encoding = encoding_chosen(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        if encoding is not None:
            response_compress(response, encoding)
        return response
