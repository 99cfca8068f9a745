"""Exceptions to Orthanc's HTTP answers: the JSON error body and the bare 401/403/405 responses."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions as drf_exceptions

from archive.errors import ArchiveError, OrthancError
from explorer.api.rendering import bare_response, json_response

logger = logging.getLogger(__name__)

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict",
            413: "Request Entity Too Large", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
            422: "Unprocessable Entity", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 507: "Insufficient Storage"}


def error_body(request: HttpRequest, error: OrthancError, details: str | None = None, *,
               status: int | None = None, payload: dict | None = None) -> dict:
    """Orthanc's error body; ``status`` when the HTTP status is not the error code's own (as Orthanc's
    OrthancException::SetHttpStatus); ``payload``, Orthanc 1.12.10's ErrorPayload."""
    status = status or error.http_status
    body = {
        "HttpError": _REASONS.get(status, "Internal Server Error"),
        "HttpStatus": status,
        "Message": error.description,
        "Method": request.method,
        "OrthancError": error.description,
        "OrthancStatus": error.code,
        "Uri": request.path,
    }
    if payload:
        body = {"ErrorPayload": payload, **body}  # Orthanc's JSON writer sorts the keys
    if details:
        body = {"Details": details, **body}  # Orthanc's JSON writer sorts the keys: Details comes first
    return body


def error_response(request: HttpRequest, error: OrthancError, details: str | None = None, *,
                   status: int | None = None, payload: dict | None = None) -> HttpResponse:
    status = status or error.http_status
    if not settings.ORTHANC.get("HttpDescribeErrors", True):
        return bare_response(status)
    return json_response(error_body(request, error, details, status=status, payload=payload), status=status)


def archive_error_response(request: HttpRequest, exc: ArchiveError) -> HttpResponse:
    if exc.bare:
        return bare_response(exc.http_status)
    details = exc.details if exc.details and exc.details != exc.orthanc_error.description else None
    return error_response(request, exc.orthanc_error, details, status=exc.http_status, payload=exc.payload)


def method_not_allowed(allowed: list[str]) -> HttpResponse:
    response = bare_response(405)   # no body, no Content-Type, as Orthanc
    response["Allow"] = ",".join(m for m in allowed if m not in ("OPTIONS", "HEAD"))
    return response


def drf_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    request = context["request"]._request if "request" in context else None
    if isinstance(exc, ArchiveError):
        return archive_error_response(request, exc)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        view = context.get("view")
        if hasattr(view, "allowed_methods_now"):
            allowed = view.allowed_methods_now()
        else:
            allowed = [m.upper() for m in view.http_method_names if hasattr(view, m)] if view else []
        if view is not None and not allowed:   # a route with no method left (ReadOnly): not registered at all
            return error_response(request, OrthancError.UNKNOWN_RESOURCE)
        return method_not_allowed(allowed)
    if isinstance(exc, drf_exceptions.ParseError):
        return error_response(request, OrthancError.BAD_JSON, str(exc.detail))
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return error_response(request, OrthancError.UNSUPPORTED_MEDIA_TYPE)
    if isinstance(exc, drf_exceptions.NotFound):
        return error_response(request, OrthancError.UNKNOWN_RESOURCE)
    if isinstance(exc, drf_exceptions.APIException):
        return error_response(request, OrthancError.BAD_REQUEST, str(exc.detail))
    logger.exception("internal error on %s %s", request.method if request else "?", request.path if request else "?")
    return error_response(request, OrthancError.INTERNAL_ERROR, str(exc) or exc.__class__.__name__)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler404: Orthanc answers an unknown URI with its 'Unknown resource' body."""
    return error_response(request, OrthancError.UNKNOWN_RESOURCE)


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, OrthancError.INTERNAL_ERROR)
