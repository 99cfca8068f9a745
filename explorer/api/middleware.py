"""Access control as Orthanc does it (RemoteAccessAllowed, HTTP Basic users) and one error formatter."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import tempfile

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from archive.errors import ArchiveError, OrthancError
from archive.settings import archive_settings
from explorer.api.errors import archive_error_response, error_response
from explorer.api.rendering import bare_response

logger = logging.getLogger(__name__)

REALM = "Orthanc Secure Area"


# Orthanc admits exactly "127.0.0.1" as local (its HTTP server compares the text of the client address),
# so 127.0.0.2 is remote. The IPv6 spellings of that client count as local too: Orthanc listens on IPv4
# only and never sees them, while a dual-stack WSGI server may report them.
_LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::ffff:127.0.0.1", "::1"})


def _is_local(address: str) -> bool:
    return address in _LOCAL_ADDRESSES


def _unauthorized() -> HttpResponse:
    """Orthanc's 401: the Basic challenge, an empty body and no Content-Type."""
    response = HttpResponse(b"", status=401)
    response["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    del response["Content-Type"]
    return response


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class NoSniffMiddleware:
    """X-Content-Type-Options: nosniff on every answer, as Orthanc >= 1.12.2 (its fix of an XSS in error
    reports): a browser never reads a body as another type than the one declared."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Content-Type-Options"] = "nosniff"
        return response


class ContentLengthMiddleware:
    """Content-Length on every answer held in memory, as Orthanc sends it (0 on its bare answers). Django's
    CommonMiddleware sets it only on what passes through it: the answers of the middlewares before it (401,
    the 400/404 of an unknown method, /health) went out chunked, and a HEAD answer without it left
    ``curl -X HEAD`` waiting for a body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response


class OrthancPathMiddleware:
    """Orthanc ignores empty path components ("/instances/" is "/instances"); clients rely on it. Its HTTP
    server reads the decoded URI as a C string: an encoded NUL (%00) ends it (PostgreSQL would refuse the
    NUL in an identifier lookup)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if "\x00" in path:
            path = request.path_info = path.partition("\x00")[0] or "/"
            request.path = request.path.partition("\x00")[0] or "/"
        if "//" in path or (len(path) > 1 and path.endswith("/")):
            request.path_info = "/" + "/".join(part for part in path.split("/") if part)
        return self.get_response(request)


class OrthancMethodMiddleware:
    """Orthanc's HTTP server knows GET, POST, PUT and DELETE only: it answers OPTIONS and HEAD with a bare
    404 and any other method with a bare 400 (checked against Orthanc 1.10.1), before any route."""

    KNOWN = frozenset({"GET", "POST", "PUT", "DELETE"})

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in self.KNOWN:
            return self.get_response(request)
        return bare_response(404 if request.method in ("OPTIONS", "HEAD") else 400)


class OrthancPatientLevelMiddleware:
    """PatientLevelEnabled=false (Orthanc 1.12.11, experimental): Orthanc does not register its /patients
    routes, so each of them is an unknown URI, whatever the method. After access control, as in Orthanc,
    whose HTTP server authenticates before it looks for a route."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if (path == "/patients" or path.startswith("/patients/")) and not archive_settings().patient_level_enabled:
            return error_response(request, OrthancError.UNKNOWN_RESOURCE)
        return self.get_response(request)


class OrthancAccessMiddleware:
    """RemoteAccessAllowed=false refuses clients other than 127.0.0.1, credentials or not; AuthenticationEnabled
    asks for a RegisteredUsers login. Both refusals are Orthanc's 401 with the Basic challenge (Orthanc 1.12.11
    HttpServer, checked live against 1.10.1). The user name goes to ``request.orthanc_user``."""

    def __init__(self, get_response):
        self.get_response = get_response
        cfg = settings.ORTHANC
        self.remote_allowed = bool(cfg.get("RemoteAccessAllowed", False))
        self.auth_enabled = bool(cfg.get("AuthenticationEnabled", False))
        self.users = dict(cfg.get("RegisteredUsers") or {})

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.orthanc_user = ""
        if not self.remote_allowed and not _is_local(request.META.get("REMOTE_ADDR", "")):
            return _unauthorized()
        credentials = _basic_credentials(request)
        if credentials is not None and credentials[0] in self.users:
            if hmac.compare_digest(self.users[credentials[0]].encode(), credentials[1].encode()):
                request.orthanc_user = credentials[0]
        if self.auth_enabled and not request.orthanc_user:
            return _unauthorized()
        return self.get_response(request)


class RequestBodyMiddleware:
    """The request body as Orthanc's HTTP server takes it, before any route reads it:
    - larger than MaximumRequestBodySizeMB (Orthanc 1.12.11, default 8192; 0: none): refused with 413 before
      it is read (CVE-2026-5440: an unbounded Content-Length exhausted Orthanc's memory);
    - sent chunked (Transfer-Encoding, no Content-Length), as a client streaming a file of unknown length does:
      read here, under the same limit, into a file that spills to disk beyond FILE_UPLOAD_MAX_MEMORY_SIZE.
      Django reads a body by its Content-Length only, so such an upload arrived empty (400 "Bad file format"
      where Orthanc stores it).
    After access control: a client that may not come in learns nothing of the limit."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        megabytes = int(settings.ORTHANC.get("MaximumRequestBodySizeMB", 8192) or 0)
        limit = megabytes * 1024 * 1024 if megabytes > 0 else None
        declared = (request.META.get("CONTENT_LENGTH") or "").strip()
        if declared.isascii() and declared.isdigit():
            if limit is not None and int(declared) > limit:
                return _too_large(request, megabytes)
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = _chunked_body(request.META["wsgi.input"], limit)
            if body is None:
                return _too_large(request, megabytes)
            request.META["CONTENT_LENGTH"] = str(body.seek(0, 2))
            body.seek(0)
            request._stream = body      # what HttpRequest.read/body/POST read from
        return self.get_response(request)


def _chunked_body(stream, limit: int | None):
    """The whole of a chunked body (the WSGI server has taken the chunks apart: its input ends with the body),
    or None when it is larger than ``limit``."""
    body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)
    size = 0
    while piece := stream.read(1 << 20):
        size += len(piece)
        if limit is not None and size > limit:
            body.close()
            return None
        body.write(piece)
    return body


def _too_large(request: HttpRequest, megabytes: int) -> HttpResponse:
    return error_response(request, OrthancError.BAD_REQUEST,
                          f"The body of the request is larger than MaximumRequestBodySizeMB ({megabytes} MB)",
                          status=413)


class OrthancErrorMiddleware:
    """Domain errors raised by plain Django views become Orthanc's JSON error body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ArchiveError):
            return archive_error_response(request, exception)
        return None
