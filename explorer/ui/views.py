"""The web UI's pages: one function per page, one template per page, and the fragment an HTMX request
asks for rendered from a partial of that page (STYLE.md 9). Every link works without JavaScript."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from archive import selectors, services
from archive.browse import Cursor
from archive.levels import Level
from explorer.ui import browser
from explorer.ui.errors import ui_errors
from explorer.ui.filters import MODALITIES, SORTS, StudyFilter


def htmx_partial(request: HttpRequest) -> bool:
    """An HTMX request that wants a fragment (boosted navigation gets the whole page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _today() -> dt.date:
    return timezone.localdate()


def _page_query(filters: StudyFilter, *, after: Cursor | None = None, before: Cursor | None = None) -> str:
    """The query string of a page of the list: the filter, then where the page starts or ends."""
    pairs = filters.params()
    if after is not None:
        pairs.append(("after", after.encode()))
    elif before is not None:
        pairs.append(("before", before.encode()))
    return urlencode(pairs)


@require_GET
@csrf_protect
@ui_errors
def study_list(request: HttpRequest) -> HttpResponse:
    filters = StudyFilter.from_query(request.GET)
    cursor = Cursor.decode(request.GET.get("after", ""))
    before = None if cursor else Cursor.decode(request.GET.get("before", ""))
    listing = browser.study_list(filters=filters, cursor=cursor, before=before, today=_today())
    context = {"filters": filters, "listing": listing, "cursor": cursor or before, "modalities": MODALITIES,
               "labels": browser.study_labels(),
               "pages": {"first": _page_query(filters), "next": _page_query(filters, after=listing.next),
                         "previous": _page_query(filters, before=listing.previous)},
               "sort_links": {key: filters.sort_link(key) for key in SORTS}}
    if htmx_partial(request):
        # A change of filter, sort or page: the result table, and the address bar shows the canonical URL of
        # the filter and page (no empty fields), so it can be bookmarked and shared.
        response = render(request, "ui/_study_results.html", context)
        query = _page_query(filters, after=cursor, before=before)
        response["HX-Push-Url"] = reverse("ui:studies") + (f"?{query}" if query else "")
        return response
    return render(request, "ui/study_list.html", context)


@require_GET
@csrf_protect
@ui_errors
def patient_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "ui/patient.html", {"view": browser.patient_view(public_id=public_id)})


@require_POST
@csrf_protect
@ui_errors
def patient_protection(request: HttpRequest, public_id: str) -> HttpResponse:
    services.patient_protection_set(public_id=public_id, protected=request.POST.get("protected") == "1")
    back = request.POST.get("next", "")
    if not back.startswith("/ui/") or "//" in back:   # only our own pages: no open redirect
        back = reverse("ui:patient", args=[public_id])
    return HttpResponseRedirect(back)


@require_GET
@csrf_protect
@ui_errors
def study_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "ui/study.html", {"view": browser.study_view(public_id=public_id)})


@require_GET
@csrf_protect
@ui_errors
def series_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "ui/series.html", {"view": browser.series_view(public_id=public_id)})


@require_GET
@csrf_protect
@ui_errors
def instance_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    partial = htmx_partial(request)     # the tag search: the tags alone, no report to build
    view = browser.instance_view(public_id=public_id, query=request.GET.get("q", "")[:100], with_report=not partial)
    template = "ui/_tags.html" if partial else "ui/instance.html"
    return render(request, template, {"view": view})


@require_http_methods(["GET", "POST"])
@csrf_protect
@ui_errors
def resource_delete(request: HttpRequest, level: Level, public_id: str) -> HttpResponse:
    """GET: the confirmation page; POST (from its form): delete, then go to what remains."""
    resource = selectors.resource_get(level=level, public_id=public_id)
    if request.method == "GET":
        back = reverse(f"ui:{level.value.lower()}", args=[public_id])
        return render(request, "ui/confirm_delete.html", {"level": level, "resource": resource, "back": back})
    remaining = services.resource_delete(level=level, public_id=public_id)
    if remaining is None:
        return HttpResponseRedirect(reverse("ui:studies") + "?deleted=1")
    name = {"Patient": "ui:patient", "Study": "ui:study", "Series": "ui:series"}[remaining["Type"]]
    return HttpResponseRedirect(reverse(name, args=[remaining["ID"]]) + "?deleted=1")


@require_GET
@csrf_protect
def placeholder(request: HttpRequest, title: str, section: str, issue_part: str) -> HttpResponse:
    return render(request, "ui/placeholder.html", {"title": title, "section": section, "part": issue_part})
