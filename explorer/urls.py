from django.urls import include, path

urlpatterns = [
    path("", include("explorer.api.urls")),
]

handler404 = "explorer.api.errors.not_found"
handler500 = "explorer.api.errors.server_error"
