"""GET /health in process: the database and storage checks, and that it answers without credentials."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_health_is_ok_when_database_and_storage_answer(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["Status"] == "OK"
    assert body["Checks"] == {"Database": "OK", "Storage": "OK"}
    assert response["Cache-Control"] == "no-store"


def test_health_is_503_naming_the_storage_when_the_storage_area_is_gone(client, storage_dir):
    import shutil

    assert client.get("/health").status_code == 200     # the storage area exists (made by the storage)
    shutil.rmtree(storage_dir)
    storage_dir.write_text("not a folder")      # e.g. a mount point that went away
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["Status"] == "Unavailable"
    assert response.json()["Checks"] == {"Database": "OK", "Storage": "Failed"}


def test_health_needs_no_credentials_and_ignores_remote_access(client, settings):
    from django.test import override_settings

    orthanc = {**settings.ORTHANC, "AuthenticationEnabled": True, "RemoteAccessAllowed": False,
               "RegisteredUsers": {"alice": "secret"}}
    with override_settings(ORTHANC=orthanc):
        from django.test import Client

        remote = Client(REMOTE_ADDR="10.1.2.3")
        assert remote.get("/patients").status_code == 401      # the Orthanc API stays protected
        assert remote.get("/health").status_code == 200


def test_health_answers_head_without_body(client):
    response = client.head("/health")
    assert response.status_code == 200 and response.content == b""
