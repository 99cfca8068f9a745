"""How DICOM values read on the pages (explorer.ui.browser), without a browser."""

from __future__ import annotations

import pytest

from explorer.ui.reading import dicom_date, dicom_time, person_name


@pytest.mark.parametrize(("value", "shown"), [
    ("20240131", "2024-01-31"),
    ("1994.06.13", "1994-06-13"),      # ACR-NEMA dates, still in older files (seen in the sample corpus)
    ("", ""), (None, ""),
    ("2024", "2024"), ("1994.6.13", "1994.6.13"), ("2024-01-31", "2024-01-31"),
])
def test_dicom_date(value, shown) -> None:
    assert dicom_date(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("143012.123456", "14:30:12"), ("143012", "14:30:12"), ("1430", "14:30"), ("14", "14:00"),
    ("14:30:12", "14:30:12"), ("15:32:26.392000", "15:32:26"), ("14:30", "14:30"),   # ACR-NEMA times
    ("", ""), (None, ""), (" 0930 ", "09:30"), ("12345", "12345"),
])
def test_dicom_time(value, shown) -> None:
    assert dicom_time(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("DOE^JOHN", "DOE, JOHN"), ("DOE^JOHN^^DR", "DOE, JOHN DR"), ("Anonymized", "Anonymized"),
    ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"), ("", ""), ("^^^^", ""), ("CRUMB^BERT^^^", "CRUMB, BERT"),
])
def test_person_name(value, shown) -> None:
    assert person_name(value) == shown


def test_viewer_series_label_skips_what_is_missing() -> None:
    from archive.models import Resource
    from explorer.ui.browser import SeriesRow

    def _series_label(row: SeriesRow) -> str:
        return row.label

    row = SeriesRow(series=Resource(main_tags={"SeriesNumber": "3", "SeriesDescription": "AX T1", "Modality": "MR"}),
                    instance_count=20, preview_instance=None)
    assert _series_label(row) == "3 · AX T1 · MR · 20"
    assert _series_label(SeriesRow(series=Resource(main_tags={}), instance_count=1, preview_instance=None)) == (
        "? · (no description) · 1")
