"""The Orthanc options the archive honours, read once from ``settings.ORTHANC``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.conf import settings
from pydicom.tag import BaseTag

from archive.levels import Level


@dataclass(frozen=True)
class ArchiveSettings:
    overwrite_instances: bool
    storage_compression: bool
    store_md5: bool
    maximum_storage_size: int      # MB, 0 = no limit
    maximum_patient_count: int     # 0 = no limit
    maximum_storage_mode: str      # Recycle | Reject
    default_encoding: str
    stable_age: int
    check_revisions: bool
    extra_tags: dict[str, tuple[BaseTag, ...]]
    # the Dictionary option: (tag, private creator or None) -> (VR, name); see archive.dicom.json.dictionary_entry
    dictionary: dict[tuple[int, str | None], tuple[str, str]]
    lossy_quality: int = 90        # DicomLossyTranscodingQuality (1-100)
    read_only: bool = False        # ReadOnly (1.12.5): see archive.read_only
    patient_level_enabled: bool = True   # PatientLevelEnabled (1.12.11, experimental): the /patients routes

    def extra_main_tags(self, level: Level) -> tuple[BaseTag, ...]:
        return self.extra_tags.get(level.value, ())


def _parse_extra(cfg: dict) -> dict[str, tuple[BaseTag, ...]]:
    from archive.dicom.tags import parse_tag

    out = {}
    for level, names in (cfg.get("ExtraMainDicomTags") or {}).items():
        out[level] = tuple(parse_tag(str(name)) for name in names)
    return out


_SHORT_TAG = re.compile(r"([0-9A-Fa-f]{1,4}),([0-9A-Fa-f]{1,4})")


def dictionary_tag(key: str) -> int:
    """The tag of a "Dictionary" key: what parse_tag reads, or DCMTK's "%x,%x" (``"00e1,c2"``: the low 8 bits
    of a private element, as Orthanc's documentation advises). Raises ValueError."""
    from archive.dicom.tags import parse_tag

    match = _SHORT_TAG.fullmatch(key.strip())
    if match:
        return int(match[1], 16) << 16 | int(match[2], 16)
    return int(parse_tag(key))


def _dictionary(cfg: dict) -> dict[tuple[int, str | None], tuple[str, str]]:
    """Orthanc's "Dictionary": {"0009,1001": ["DS", "Name", min, max, "PrivateCreator"]}; the creator is
    optional, an empty one is none."""
    out = {}
    for key, entry in (cfg.get("Dictionary") or {}).items():
        if isinstance(entry, list) and len(entry) >= 2:
            creator = str(entry[4]) if len(entry) >= 5 and entry[4] else None
            out[(dictionary_tag(key), creator)] = (str(entry[0]).upper(), str(entry[1]))
    return out


@functools.cache
def archive_settings() -> ArchiveSettings:
    cfg = settings.ORTHANC
    return ArchiveSettings(
        overwrite_instances=bool(cfg.get("OverwriteInstances", False)),
        lossy_quality=int(cfg.get("DicomLossyTranscodingQuality", 90) or 90),
        storage_compression=bool(cfg.get("StorageCompression", False)),
        store_md5=bool(cfg.get("StoreMD5ForAttachments", True)),
        maximum_storage_size=int(cfg.get("MaximumStorageSize", 0) or 0),
        maximum_patient_count=int(cfg.get("MaximumPatientCount", 0) or 0),
        maximum_storage_mode=str(cfg.get("MaximumStorageMode", "Recycle")),
        default_encoding=str(cfg.get("DefaultEncoding", "Latin1")),
        stable_age=int(cfg.get("StableAge", 60)),
        check_revisions=bool(cfg.get("CheckRevisions", False)),
        read_only=bool(cfg.get("ReadOnly", False)),
        patient_level_enabled=bool(cfg.get("PatientLevelEnabled", True)),
        extra_tags=_parse_extra(cfg),
        dictionary=_dictionary(cfg),
    )


def reset_archive_settings() -> None:
    """Forget the cached options (tests change settings.ORTHANC)."""
    archive_settings.cache_clear()
