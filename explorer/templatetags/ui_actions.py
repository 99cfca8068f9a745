"""Template tags of the UI's resource pages: the inline labels box, so that the pages' views stay as they are."""

from __future__ import annotations

from django import template

from archive.levels import Level
from explorer.ui.labels import labels_context

register = template.Library()


@register.inclusion_tag("ui/_labels.html", takes_context=True)
def labels_box(context, level: str, public_id: str) -> dict:
    """``{% labels_box "Study" view.study.public_id %}``: the labels of a resource, editable inline."""
    return {"csrf_token": context.get("csrf_token"), "request": context.get("request"),
            "read_only": context.get("read_only", False),
            **labels_context(level=Level(level), public_id=public_id)}
