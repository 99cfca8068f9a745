"""Labels (Orthanc 1.12.0) and patient protection."""

from __future__ import annotations

from django.urls import path

from archive import labels, selectors, services
from archive.errors import ParameterOutOfRange
from archive.levels import Level
from explorer.api.base import OrthancView
from explorer.api.rendering import json_response, text_response


class LabelsApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        return json_response(labels.labels_get(resource=resource))


class LabelApi(OrthancView):
    def get(self, request, public_id: str, label: str):
        labels.label_test(resource=selectors.resource_get(level=self.level, public_id=public_id), name=label)
        return text_response("")

    def put(self, request, public_id: str, label: str):
        labels.label_add(resource=selectors.resource_get(level=self.level, public_id=public_id), name=label)
        return text_response("")

    def delete(self, request, public_id: str, label: str):
        labels.label_remove(resource=selectors.resource_get(level=self.level, public_id=public_id), name=label)
        return text_response("")


class AllLabelsApi(OrthancView):
    def get(self, request):
        return json_response(labels.labels_all())


class ProtectedApi(OrthancView):
    def get(self, request, public_id: str):
        patient = selectors.resource_get(level=Level.PATIENT, public_id=public_id)
        return text_response("1" if patient.is_protected else "0")

    def put(self, request, public_id: str):
        body = request._request.body.decode("utf-8", "replace").strip().lower()
        if body not in ("0", "1", "true", "false"):
            raise ParameterOutOfRange(f"Expected 0 or 1: {body!r}")
        services.patient_protection_set(public_id=public_id, protected=body in ("1", "true"))
        return text_response("")


urlpatterns = [path("tools/labels", AllLabelsApi.as_view()),
               path("patients/<str:public_id>/protected", ProtectedApi.as_view(level=Level.PATIENT))]
for _level in Level:
    urlpatterns += [
        path(f"{_level.plural}/<str:public_id>/labels", LabelsApi.as_view(level=_level)),
        path(f"{_level.plural}/<str:public_id>/labels/<str:label>", LabelApi.as_view(level=_level)),
    ]
