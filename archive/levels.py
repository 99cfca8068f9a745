"""The four levels of Orthanc's resource tree, with the names each part of the contract uses."""

from __future__ import annotations

import enum


class Level(enum.Enum):
    PATIENT = "Patient"
    STUDY = "Study"
    SERIES = "Series"
    INSTANCE = "Instance"

    @property
    def plural(self) -> str:
        """The URI segment: patients, studies, series, instances."""
        return _PLURAL[self]

    @property
    def depth(self) -> int:
        return _ORDER.index(self)

    @property
    def parent(self) -> Level | None:
        return _ORDER[self.depth - 1] if self.depth > 0 else None

    @property
    def child(self) -> Level | None:
        return _ORDER[self.depth + 1] if self.depth < 3 else None

    @classmethod
    def from_plural(cls, plural: str) -> Level:
        return _FROM_PLURAL[plural]

    @classmethod
    def parse(cls, text: str) -> Level:
        """Orthanc's StringToResourceType: any case, singular or plural, "Image(s)" for instances, no blanks
        ("Study", "studies", "IMAGES"); ValueError otherwise."""
        upper = text.upper()
        for level in cls:
            if upper in (level.value.upper(), level.plural.upper()):
                return level
        if upper in ("IMAGE", "IMAGES"):
            return cls.INSTANCE
        raise ValueError(text)


_ORDER = [Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE]
_PLURAL = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.INSTANCE: "instances",
}
_FROM_PLURAL = {v: k for k, v in _PLURAL.items()}
