"""Filters that show DICOM values for reading, as the lists and the viewer do (explorer.ui.browser)."""

from __future__ import annotations

from django import template

from explorer.ui.reading import dicom_date, dicom_time, person_name

register = template.Library()
register.filter("person", person_name)       # DOE^JOHN -> DOE, JOHN
register.filter("dicomdate", dicom_date)     # 20240131 -> 2024-01-31
register.filter("dicomtime", dicom_time)     # 143012.123 -> 14:30:12
