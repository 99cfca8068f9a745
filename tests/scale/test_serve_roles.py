"""``serve`` roles: ROLES and the --no-* flags choose the parts a process starts."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from explorer.management.commands.serve import ALL_ROLES, _roles

NONE = {"no_http": False, "no_dicom": False, "no_jobs": False}


def test_everything_by_default(monkeypatch):
    monkeypatch.delenv("ROLES", raising=False)
    assert _roles(NONE) == ALL_ROLES


def test_flags_leave_parts_out(monkeypatch):
    monkeypatch.delenv("ROLES", raising=False)
    assert _roles({**NONE, "no_dicom": True, "no_jobs": True}) == {"http"}
    assert _roles({"no_http": True, "no_dicom": True, "no_jobs": True}) == frozenset()   # the housekeeper only


def test_roles_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROLES", "dicom, JOBS")
    assert _roles(NONE) == {"dicom", "jobs"}
    assert _roles({**NONE, "no_jobs": True}) == {"dicom"}


def test_an_unknown_role_is_refused(monkeypatch):
    monkeypatch.setenv("ROLES", "http,web")
    with pytest.raises(CommandError, match="web"):
        _roles(NONE)
