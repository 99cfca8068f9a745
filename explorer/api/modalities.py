"""/modalities and the DICOM SCU routes (echo, store, find, query/retrieve, move, get, storage commitment)."""

from __future__ import annotations

urlpatterns: list = []
