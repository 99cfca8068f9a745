"""Errors on the UI's pages are HTML pages, not Orthanc's JSON bodies (which the REST API keeps)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from archive.errors import ArchiveError
from explorer.api import errors as api_errors

logger = logging.getLogger(__name__)

UI_PREFIX = "/ui"


def is_ui(request: HttpRequest) -> bool:
    path = request.path_info or request.path
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def explorer_enabled() -> bool:
    """Orthanc's OrthancExplorerEnabled (default true), read on each request so a test or a reload can change it."""
    return bool(settings.ORTHANC.get("OrthancExplorerEnabled", True))


def explorer_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """With OrthancExplorerEnabled false, the UI's routes do not exist: Orthanc then answers /app/explorer.html
    as any unknown URI (404 with its 'Unknown resource' body); the REST API is not affected."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not explorer_enabled():
            return api_errors.not_found(request)
        return view(request, *args, **kwargs)

    return wrapper


def error_page(request: HttpRequest, *, status: int, message: str) -> HttpResponse:
    return render(request, "ui/error.html", {"status": status, "message": message}, status=status)


def ui_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A domain error raised by a page (an unknown resource, a refused delete) becomes an error page with
    the same HTTP status the REST API would answer."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ArchiveError as exc:
            return error_page(request, status=exc.http_status, message=exc.details or exc.orthanc_error.description)

    return wrapper


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_ui(request) and explorer_enabled():
        return error_page(request, status=404, message="There is no such page.")
    return api_errors.not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_ui(request) and explorer_enabled():
        return error_page(request, status=500, message="Something went wrong on the server.")
    return api_errors.server_error(request)
