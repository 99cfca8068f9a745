"""/peers: Orthanc peers over HTTP (system, store job, store-straight)."""

from __future__ import annotations

urlpatterns: list = []
