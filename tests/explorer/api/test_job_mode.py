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


@pytest.mark.parametrize(("priority", "status", "message"), [
    (-2**63 - 1, 400, "Integer value expected in field: Priority"),   # a real for JsonCpp, as in Orthanc
    (2**64, 400, "Integer value expected in field: Priority"),
    (2**64 - 1, 400, "Priority must be a 32-bit integer"),      # a UInt64 for JsonCpp: an integer
    (2**31, 400, "Priority must be a 32-bit integer"),   # Orthanc: 500; PostgreSQL's integer refused it
    (-2**31 - 1, 400, "Priority must be a 32-bit integer"),
])
def test_priority_beyond_32_bits_is_refused_on_every_engine(priority, status, message) -> None:
    with pytest.raises(ArchiveError) as raised:
        job_mode({"Asynchronous": True, "Priority": priority})
    assert raised.value.http_status == status and message in str(raised.value.details)


def test_priority_within_32_bits_is_kept() -> None:
    assert job_mode({"Priority": -2**31}).priority == -2**31 and job_mode({"Priority": 2**31 - 1}).priority == 2**31 - 1
