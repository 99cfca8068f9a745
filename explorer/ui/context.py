"""Template context every UI page shares."""

from __future__ import annotations

from django.http import HttpRequest

from archive.read_only import read_only


def server_mode(request: HttpRequest) -> dict:
    """``read_only``: ReadOnly is on, so the pages leave out what would write (upload, delete, modify, labels)."""
    return {"read_only": read_only()}
