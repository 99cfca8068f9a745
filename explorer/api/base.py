"""What every REST view of the Orthanc contract shares."""

from __future__ import annotations

from rest_framework.exceptions import MethodNotAllowed
from rest_framework.views import APIView

from archive.levels import Level
from archive.read_only import read_only


class OrthancView(APIView):
    """An APIView that leaves the body to the view (Orthanc reads raw DICOM, ZIP, JSON and text)."""

    level: Level | None = None
    parser_classes: list = []
    # Methods Orthanc leaves unregistered when ReadOnly is on (1.12.5): the route then answers as if they did
    # not exist (405 with the other methods in Allow, or 404 when none is left).
    read_only_absent: frozenset[str] = frozenset()

    def initial(self, request, *args, **kwargs):
        # No DRF authentication, permissions, throttling or content negotiation: access control is the
        # Orthanc middleware's, and every answer is JSON or raw bytes chosen by the view.
        self.format_kwarg = None
        if request.method.lower() in self.read_only_absent and read_only():
            raise MethodNotAllowed(request.method)

    def allowed_methods_now(self) -> list[str]:
        """The methods this route has under the current configuration (Allow of a 405)."""
        absent = self.read_only_absent if read_only() else frozenset()
        return [m.upper() for m in self.http_method_names
                if hasattr(self, m) and m not in absent and m not in ("options", "head")]

    @property
    def default_response_headers(self) -> dict:
        # DRF would add "Allow: GET, HEAD, OPTIONS" to every answer; Orthanc sends Allow on 405 only,
        # listing its own methods (errors.method_not_allowed).
        return {}

    def perform_content_negotiation(self, request, force=False):
        return (self.get_renderers()[0], "application/json")


def remote_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")
