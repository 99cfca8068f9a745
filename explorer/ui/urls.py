"""/ui/...: the web UI (issue 8). Paths have no trailing slash: Orthanc's path rule (OrthancPathMiddleware)
drops it, so /ui/ and /ui are the same page; hence the include at "ui" and the routes that start
with "/"."""

from __future__ import annotations

from django.urls import path

from archive.levels import Level
from explorer.ui import viewer, views

app_name = "ui"

urlpatterns = [
    path("", views.study_list, name="studies"),
    path("/patients/<str:public_id>", views.patient_detail, name="patient"),
    path("/patients/<str:public_id>/protection", views.patient_protection, name="patient-protection"),
    path("/studies/<str:public_id>", views.study_detail, name="study"),
    path("/series/<str:public_id>", views.series_detail, name="series"),
    path("/instances/<str:public_id>", views.instance_detail, name="instance"),
    path("/upload", views.placeholder, {"title": "Upload", "section": "upload", "issue_part": "4"}, name="upload"),
    path("/query", views.placeholder, {"title": "Query/Retrieve", "section": "query", "issue_part": "6"},
         name="query"),
    path("/jobs", views.placeholder, {"title": "Jobs", "section": "jobs", "issue_part": "7"}, name="jobs"),
    path("/system", views.system, name="system"),
    path("/viewer", viewer.viewer, name="viewer"),
    path("/viewer/series/<str:public_id>/slices", viewer.series_slices_json, name="viewer-slices"),
    path("/viewer/instances/<str:public_id>/frames/<int:frame>/pixels", viewer.frame_pixels,
         name="viewer-pixels"),
]
for _level in Level:
    urlpatterns.append(path(f"/{_level.plural}/<str:public_id>/delete", views.resource_delete, {"level": _level},
                            name=f"delete-{_level.value.lower()}"))
