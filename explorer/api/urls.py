"""The Orthanc REST API, family by family (as Orthanc's OrthancRestApi registers them)."""

from __future__ import annotations

from explorer.api import resources, upload

urlpatterns = []
urlpatterns += upload.urlpatterns        # before resources: "instances" takes POST too
urlpatterns += resources.urlpatterns
