"""Fields of a JSON request body checked as Orthanc checks them: a value of the wrong type is a 400 Bad file
format that names the field."""

from __future__ import annotations

from archive.errors import BadFileFormat


def boolean_field(body: dict, name: str, default: bool) -> bool:
    """``body[name]`` when it is a Boolean, ``default`` when absent; anything else (null too) is refused."""
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, bool):
        raise BadFileFormat(f"Boolean value expected in field: {name}")
    return value
