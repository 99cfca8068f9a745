"""What every REST view of the Orthanc contract shares."""

from __future__ import annotations

from rest_framework.views import APIView

from archive.levels import Level


class OrthancView(APIView):
    """An APIView that leaves the body to the view (Orthanc reads raw DICOM, ZIP, JSON and text)."""

    level: Level | None = None
    parser_classes: list = []

    def initial(self, request, *args, **kwargs):
        # No DRF authentication, permissions, throttling or content negotiation: access control is the
        # Orthanc middleware's, and every answer is JSON or raw bytes chosen by the view.
        self.format_kwarg = None

    @property
    def default_response_headers(self) -> dict:
        # DRF would add "Allow: GET, HEAD, OPTIONS" to every answer; Orthanc sends Allow on 405 only,
        # listing its own methods (errors.method_not_allowed).
        return {}

    def perform_content_negotiation(self, request, force=False):
        return (self.get_renderers()[0], "application/json")


def remote_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")
