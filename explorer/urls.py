from django.urls import include, path

urlpatterns = [
    # GET /health for load balancers (not an Orthanc route); explorer.api.health.HealthMiddleware answers it
    # before access control, this route only serves when that middleware is left out.
    path("", include("explorer.api.health")),
    # The web UI (issue 8); GET / redirects to it (explorer/api/system.py RootApi, as Orthanc to its explorer).
    path("ui", include("explorer.ui.urls")),
    path("", include("explorer.api.urls")),
]

# The UI's own pages get HTML error pages; every other path keeps Orthanc's JSON error bodies.
handler404 = "explorer.ui.errors.not_found"
handler500 = "explorer.ui.errors.server_error"
