"""manage.py populate: fills the archive through ingest, reports the rate."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archive.models import Resource

pytestmark = pytest.mark.django_db


def test_populate_fills_the_archive_in_process():
    out = StringIO()
    call_command("populate", count=50, workers=1, seed=2, stdout=out)
    assert Resource.objects.count() == 1 + 5 + 12 + 50  # patients, studies, series, instances of 50
    assert "50 stored" in out.getvalue() and "instances/s" in out.getvalue()


def test_populate_rejects_a_zero_count():
    with pytest.raises(CommandError):
        call_command("populate", count=0, workers=1)
