"""The Orthanc REST API, family by family (as Orthanc's OrthancRestApi registers them)."""

from __future__ import annotations

from explorer.api import (
    attachments,
    changes,
    find,
    labels,
    metadata,
    pixels,
    resources,
    system,
    tools,
    upload,
)

urlpatterns = []
urlpatterns += upload.urlpatterns        # before resources: "instances" takes POST too
urlpatterns += resources.urlpatterns
urlpatterns += system.urlpatterns
urlpatterns += changes.urlpatterns
urlpatterns += tools.urlpatterns
urlpatterns += find.urlpatterns          # /tools/find, /tools/count-resources (1.12.5)
urlpatterns += metadata.urlpatterns
urlpatterns += attachments.urlpatterns
urlpatterns += labels.urlpatterns
urlpatterns += pixels.urlpatterns        # preview, rendered, image-*, matlab, numpy, raw, pdf
