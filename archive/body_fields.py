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


def unsigned_field(body: dict, name: str, default: int) -> int:
    """``body[name]`` read as Orthanc's SerializationToolbox::ReadUnsignedInteger: a JSON integer (JsonCpp
    reads one beyond 64 bits as a real: not an integer) that ``asInt()`` takes (outside 32 bits it throws: a
    bare Bad file format for a peer, compared with Orthanc 1.10.1, a 500 for a modality there, the same 400
    here), then not negative."""
    if name not in body:
        return default
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not -2**63 <= value < 2**64:
        raise BadFileFormat(f"Integer value expected in field: {name}")
    if not -2**31 <= value < 2**31:
        raise BadFileFormat()
    if value < 0:
        raise BadFileFormat(f"Unsigned integer value expected in field: {name}")
    return value
