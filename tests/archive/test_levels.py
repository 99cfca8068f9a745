"""Level names as Orthanc's StringToResourceType reads them (clients send "Studies", "study", "Images")."""

from __future__ import annotations

import pytest

from archive.levels import Level


@pytest.mark.parametrize(("text", "level"), [
    ("Patient", Level.PATIENT), ("PATIENTS", Level.PATIENT), ("study", Level.STUDY), ("Studies", Level.STUDY),
    ("SERIES", Level.SERIES), ("Instance", Level.INSTANCE), ("instances", Level.INSTANCE),
    ("Image", Level.INSTANCE), ("IMAGES", Level.INSTANCE),
])
def test_any_case_singular_or_plural(text, level):
    assert Level.parse(text) is level


@pytest.mark.parametrize("text", ["", " Study", "Study ", "Serie", "Studys", "Frames"])
def test_other_words_are_refused(text):
    with pytest.raises(ValueError):
        Level.parse(text)
