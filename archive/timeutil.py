"""Orthanc's timestamps: ``YYYYMMDDTHHMMSS`` in UTC (LastUpdate, ReceptionDate, change dates)."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
