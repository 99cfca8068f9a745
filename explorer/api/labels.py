"""Labels at every level (new in Orthanc 1.12.0), /tools/labels, and patient protection."""

from __future__ import annotations

from django.urls import path

from archive import labels, runtime, selectors, services
from archive.errors import ParameterOutOfRange, UnknownResource
from archive.levels import Level
from explorer.api.base import OrthancView
from explorer.api.rendering import bare_response, json_response, text_response


def parse_orthanc_bool(body: bytes) -> bool:
    """Orthanc's ParseBooleanBody (runtime.bool_parse): ``0``/``false`` or ``1``/``true``, spaces around
    allowed, case sensitive; anything else is BadFileFormat (400) "Boolean value expected"."""
    return runtime.bool_parse(body.decode("latin-1"))


class LabelsApi(OrthancView):
    def get(self, request, public_id: str):
        return json_response(labels.labels_get(level=self.level, public_id=public_id))


class LabelApi(OrthancView):
    read_only_absent = frozenset({"put", "delete"})

    def get(self, request, public_id: str, label: str):
        # Orthanc answers an empty body when the label is there and a bare 404 when it is not.
        if not labels.label_test(level=self.level, public_id=public_id, name=label):
            return bare_response(404)
        return text_response("")

    def put(self, request, public_id: str, label: str):
        labels.label_add(level=self.level, public_id=public_id, name=label)
        return text_response("")

    def delete(self, request, public_id: str, label: str):
        labels.label_remove(level=self.level, public_id=public_id, name=label)
        return text_response("")


class AllLabelsApi(OrthancView):
    def get(self, request):
        return json_response(labels.labels_all())


class ProtectedApi(OrthancView):
    """GET/PUT /patients/{id}/protected. Orthanc answers 400 Parameter out of range (not 404) for an ID that
    is not a patient's, so UnknownResource is translated here, the one place where that is the contract."""

    read_only_absent = frozenset({"put"})

    def get(self, request, public_id: str):
        patient = selectors.resource_get(level=Level.PATIENT, public_id=public_id)
        return text_response("1" if patient.is_protected else "0")

    def put(self, request, public_id: str):
        services.patient_protection_set(public_id=public_id, protected=parse_orthanc_bool(request._request.body))
        return text_response("")

    def handle_exception(self, exc):
        if isinstance(exc, UnknownResource):
            exc = ParameterOutOfRange()
        return super().handle_exception(exc)


urlpatterns = [
    path("tools/labels", AllLabelsApi.as_view()),                # New in Orthanc 1.12.0
    path("patients/<str:public_id>/protected", ProtectedApi.as_view(level=Level.PATIENT)),
]
for _level in Level:
    urlpatterns += [   # New in Orthanc 1.12.0
        path(f"{_level.plural}/<str:public_id>/labels", LabelsApi.as_view(level=_level)),
        path(f"{_level.plural}/<str:public_id>/labels/<str:label>", LabelApi.as_view(level=_level)),
    ]
