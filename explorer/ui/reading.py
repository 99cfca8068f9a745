"""DICOM values as the pages show them for reading: dates, times, person names. Plain text, escaped by the
templates."""

from __future__ import annotations


def dicom_date(value: str | None) -> str:
    """``20240131`` as ``2024-01-31``, and so the ACR-NEMA form ``2024.01.31`` (older files and modalities still
    write it); anything else as it is."""
    if value and len(value) == 10 and value[4] == value[7] == "." and (value[:4] + value[5:7] + value[8:]).isdigit():
        value = value.replace(".", "")
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or ""


def dicom_time(value: str | None) -> str:
    """A DICOM TM for reading: ``143012.123`` as ``14:30:12``, ``1430`` as ``14:30``; the ACR-NEMA form
    ``14:30:12.392`` as ``14:30:12``; anything else as it is."""
    value = (value or "").strip()
    digits = value.partition(".")[0]
    if digits.isdigit() and len(digits) in (2, 4, 6):
        return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2)) + ("" if len(digits) > 2 else ":00")
    if len(digits) in (5, 8) and digits.replace(":", "").isdigit() and digits[2] == ":":
        return digits
    return value


def person_name(value: str | None) -> str:
    """A DICOM PN for reading: ``DOE^JOHN`` -> ``DOE, JOHN`` (first component group only)."""
    if not value:
        return ""
    parts = [p for p in value.split("=")[0].split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""     # "^^^^": all components empty, no name
