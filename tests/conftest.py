"""Shared fixtures: every test gets its own storage area; the DICOM factory is in dicom_factory.py."""

from __future__ import annotations

import pytest
from django.core.files.storage import storages

from archive.settings import reset_archive_settings
from tests.dicom_factory import make_dicom


@pytest.fixture(autouse=True)
def storage_dir(tmp_path, settings):
    """A fresh storage area per test, so tests can assert on what is (not) on disk."""
    location = tmp_path / "storage"
    settings.STORAGES = {**settings.STORAGES,
                         "dicom": {**settings.STORAGES["dicom"], "OPTIONS": {"location": str(location)}}}
    _reset_storages()
    yield location
    _reset_storages()


def _reset_storages() -> None:
    storages.__dict__.pop("backends", None)  # a cached_property
    storages._backends = None
    storages._storages = {}
    reset_archive_settings()


@pytest.fixture
def orthanc_config(settings):
    """Change Orthanc options for one test: ``orthanc_config(OverwriteInstances=True)``."""
    original = settings.ORTHANC

    def apply(**options):
        settings.ORTHANC = {**original, **options}
        reset_archive_settings()

    yield apply
    settings.ORTHANC = original
    reset_archive_settings()


@pytest.fixture
def dicom():
    return make_dicom


@pytest.fixture(scope="session", autouse=True)
def _stage_threads_stopped(django_db_setup):
    """The stage threads (archive.ingest) keep a database connection, as they should in a server: stop them before
    the test database is dropped (PostgreSQL refuses to drop a database someone is connected to)."""
    yield
    from archive.ingest import stager_stop

    stager_stop()
