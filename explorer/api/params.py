"""Orthanc's GET arguments: presence flags, expand, since/limit, tag format, requested tags, response content."""

from __future__ import annotations

from django.http import HttpRequest

from archive.dicom.tags import parse_tag
from archive.errors import BadParameterType, BadRequest, ParameterOutOfRange, UnknownDicomTag
from archive.find_request import response_content_parse


def flag(request: HttpRequest, name: str) -> bool:
    """Orthanc's boolean arguments: present and not 'false' (1.12: expand=true/false)."""
    if name not in request.GET:
        return False
    return request.GET.get(name, "").lower() not in ("false", "0")


def boolean_argument(request: HttpRequest, name: str, default: bool) -> bool:
    """Orthanc's strict GetBooleanArgument (numpy's compress, rescale): absent is the default, present and
    empty is true, anything but 1/true/0/false is ParameterOutOfRange (unlike ``flag``)."""
    if name not in request.GET:
        return default
    value = request.GET[name]
    if value in ("", "1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise ParameterOutOfRange(f'Expected a Boolean for argument "{name}", found: {value}')


def tag_format(request: HttpRequest, default: str = "full") -> str:
    for name in ("simplify", "short", "full"):
        if name in request.GET:
            return name
    return default


def non_negative_int(request: HttpRequest, name: str, default: int = 0) -> int:
    """An integer argument. Text that is not an integer is Orthanc's answer to a failed lexical_cast (Bad type
    for a parameter); a negative one is refused, where Orthanc would wrap it around."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameterType("Syntax error in some user-supplied data") from None
    if value < 0:
        raise ParameterOutOfRange(f"Argument \"{name}\" must be a non-negative integer: {raw}")
    if value >= 2 ** 64:   # beyond Orthanc's uint64_t
        raise BadParameterType("Syntax error in some user-supplied data")
    return min(value, 2 ** 63 - 1)   # the databases' largest integer: no index or count goes beyond it


def since_and_limit(request: HttpRequest) -> tuple[int, int]:
    """The ``since`` and ``limit`` arguments of the resource lists: Orthanc wants both or neither."""
    for name, other in (("limit", "since"), ("since", "limit")):
        if other in request.GET and name not in request.GET:
            # Orthanc's message ends its flattened URI with a slash ("/patients/").
            raise BadRequest(f"Missing \"{name}\" argument for GET request against: {request.path}/")
    return non_negative_int(request, "since"), non_negative_int(request, "limit")


def requested_tags(request: HttpRequest) -> list | None:
    """The ``requested-tags`` argument (or ``requestedTags`` of Orthanc <= 1.12.3), as tags."""
    raw = request.GET.get("requested-tags", request.GET.get("requestedTags"))
    if raw is None:
        return None
    tags = []
    for item in raw.split(";"):
        item = item.strip()
        if not item:
            continue
        try:
            tags.append(parse_tag(item))
        except ValueError:   # 1.12's ParseListOfTags: UnknownDicomTag (500), as RequestedTags of /tools/find
            raise UnknownDicomTag(f"Unknown DICOM tag: {item}") from None
    return tags




def response_content(request: HttpRequest) -> frozenset[str] | None:
    """The ``response-content`` argument of the resource lists (1.12.5): ``;``-separated parts, as the
    ResponseContent of /tools/find; None when absent."""
    raw = request.GET.get("response-content")
    if raw is None:
        return None
    return response_content_parse(item.strip() for item in raw.split(";") if item.strip())
