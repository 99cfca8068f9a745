"""Labels on a study, series or instance, edited inline (issue 8, part 3).

One view per resource level: GET shows the labels (a page of its own without JavaScript, the fragment for
HTMX), POST adds or removes one through archive.labels, whose rule (Orthanc's CheckValidLabel) decides what
is refused; the refusal is shown next to the field. Each label links to the study list filtered by it, except
a patient's: the study list filters on the studies' own labels (as /tools/find at the Study level does), so a
patient label would link to a list that does not show that patient."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from archive import selectors
from archive.errors import ParameterOutOfRange
from archive.labels import label_add, label_remove, labels_all, labels_get
from archive.levels import Level
from explorer.ui.errors import ui_errors

# Orthanc 1.12 labels every level: /patients/{id}/labels too.
LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE)


def labels_context(*, level: Level, public_id: str, error: str = "", value: str = "") -> dict:
    """What the labels fragment shows: the resource's labels, the archive's known labels for the
    suggestions (those not on the resource yet), and a refusal to show inline."""
    mine = labels_get(level=level, public_id=public_id)
    return {"label_level": level.value.lower(), "label_public_id": public_id, "labels": mine,
            "known_labels": [name for name in labels_all() if name not in mine],
            "label_url": reverse(f"ui:labels-{level.value.lower()}", args=[public_id]),
            "label_error": error, "label_value": value,
            # a study's chip links to the studies with that label; the study list filters studies only
            "label_links": level is Level.STUDY}


@require_http_methods(["GET", "POST"])
@csrf_protect
@ui_errors
def resource_labels(request: HttpRequest, level: Level, public_id: str) -> HttpResponse:
    htmx = request.headers.get("HX-Request") == "true"
    error, value, status = "", "", 200
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        try:
            if request.POST.get("action") == "remove":
                label_remove(level=level, public_id=public_id, name=name)
            else:
                label_add(level=level, public_id=public_id, name=name)
        except ParameterOutOfRange as exc:
            # HTMX swaps 2xx answers only: the fragment with the message is a 200 for it, a 400 otherwise.
            error, value, status = exc.details or str(exc), name, 200 if htmx else 400
        else:
            if not htmx:
                return HttpResponseRedirect(reverse(f"ui:{level.value.lower()}", args=[public_id]))
    context = labels_context(level=level, public_id=public_id, error=error, value=value)
    if htmx:
        # The box is swapped whole: the focus goes back to its field (htmx honours autofocus in new content),
        # not to the top of the page, for the keyboard and screen reader users who added or removed a label
        context["label_focus"] = request.method == "POST"
        return render(request, "ui/_labels.html", context, status=status)
    resource = selectors.resource_get(level=level, public_id=public_id)
    context.update({"resource": resource, "level": level,
                    "back": reverse(f"ui:{level.value.lower()}", args=[public_id])})
    return render(request, "ui/labels.html", context, status=status)
