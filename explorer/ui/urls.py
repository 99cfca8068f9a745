"""/ui/...: the web UI (issue 8). Paths have no trailing slash: Orthanc's path rule (OrthancPathMiddleware)
drops it, so /ui/ and /ui are the same page; hence the include at "ui" and the routes that start
with "/"."""

from __future__ import annotations

from django.urls import path

from archive.levels import Level
from explorer.ui import actions, jobs, labels, network, system, upload, viewer, views
from explorer.ui.errors import explorer_only

app_name = "ui"

urlpatterns = [
    path("", views.study_list, name="studies"),
    path("/patients/<str:public_id>", views.patient_detail, name="patient"),
    path("/patients/<str:public_id>/protection", views.patient_protection, name="patient-protection"),
    path("/studies/<str:public_id>", views.study_detail, name="study"),
    path("/series/<str:public_id>", views.series_detail, name="series"),
    path("/instances/<str:public_id>", views.instance_detail, name="instance"),
    path("/upload", upload.upload, name="upload"),
    # Query/retrieve and the modalities admin (explorer/ui/network.py)
    path("/query", network.query_page, name="query"),
    path("/query/echo", network.query_echo, name="query-echo"),
    path("/query/<str:query_id>/answers/<str:index>/series", network.query_series, name="query-series"),
    path("/query/<str:query_id>/answers/<str:index>/retrieve", network.query_retrieve, name="query-retrieve"),
    path("/query/<str:query_id>/answers/<str:index>/held", network.query_held, name="query-held"),
    path("/modalities", network.modalities_page, name="modalities"),
    path("/modalities/new", network.modality_edit, name="modality-new"),
    path("/modalities/<str:name>/edit", network.modality_edit, name="modality-edit"),
    path("/modalities/<str:name>/remove", network.modality_remove, name="modality-remove"),
    # Jobs (explorer/ui/jobs.py) and system (explorer/ui/system.py)
    path("/jobs", jobs.jobs_page, name="jobs"),
    path("/jobs/<str:job_id>/progress", jobs.job_progress, name="job-progress"),
    path("/jobs/<str:job_id>/<str:action>", jobs.job_action, name="job-action"),
    path("/system", system.system_page, name="system"),
    path("/viewer", viewer.viewer, name="viewer"),
    path("/viewer/series/<str:public_id>/slices", viewer.series_slices_json, name="viewer-slices"),
    path("/viewer/instances/<str:public_id>/frames/<int:frame>/pixels", viewer.frame_pixels,
         name="viewer-pixels"),
]
for _level in Level:
    urlpatterns.append(path(f"/{_level.plural}/<str:public_id>/delete", views.resource_delete, {"level": _level},
                            name=f"delete-{_level.value.lower()}"))

# Labels (part 3), download, modify and anonymize (part 5).
for _level in labels.LEVELS:
    urlpatterns.append(path(f"/{_level.plural}/<str:public_id>/labels", labels.resource_labels, {"level": _level},
                            name=f"labels-{_level.value.lower()}"))
for _level in actions.LEVELS:
    _name = _level.value.lower()
    urlpatterns += [
        path(f"/{_level.plural}/<str:public_id>/download", actions.resource_download, {"level": _level},
             name=f"download-{_name}"),
        path(f"/{_level.plural}/<str:public_id>/modify", actions.resource_modify, {"level": _level},
             name=f"modify-{_name}"),
        path(f"/{_level.plural}/<str:public_id>/anonymize", actions.resource_modify,
             {"level": _level, "anonymize": True}, name=f"anonymize-{_name}"),
    ]
urlpatterns.append(path("/actions/<str:job_id>", actions.action_progress, name="action-progress"))

# OrthancExplorerEnabled: false removes the UI (every route answers Orthanc's 404), checked per request.
for _pattern in urlpatterns:
    _pattern.callback = explorer_only(_pattern.callback)
