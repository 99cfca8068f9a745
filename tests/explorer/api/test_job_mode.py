"""Synchronous/Asynchronous of job-creating requests, as Orthanc's OrthancRestApi::IsSynchronousJobRequest."""

from __future__ import annotations

import pytest

from archive.errors import ArchiveError
from explorer.api.jobs import job_mode


@pytest.mark.parametrize(("body", "asynchronous"), [
    ({}, False),
    ({"Asynchronous": True}, True),
    ({"Asynchronous": False}, False),
    ({"Synchronous": False}, True),
    ({"Synchronous": True}, False),
    ({"Synchronous": True, "Asynchronous": True}, False),     # Synchronous decides
    ({"Synchronous": False, "Asynchronous": False}, True),
    ({"Synchronous": True, "Asynchronous": "x"}, False),      # Asynchronous then not read
])
def test_synchronous_decides_then_asynchronous(body, asynchronous) -> None:
    assert job_mode(body).asynchronous is asynchronous


@pytest.mark.parametrize(("body", "field"), [
    ({"Asynchronous": "x"}, "Asynchronous"),
    ({"Synchronous": 1, "Asynchronous": True}, "Synchronous"),
])
def test_the_field_read_must_be_boolean(body, field) -> None:
    with pytest.raises(ArchiveError) as raised:
        job_mode(body)
    assert raised.value.details == f"Boolean value expected in field: {field}"
