"""The Orthanc configuration file: load it as Orthanc does, fill in Orthanc's defaults, validate.

Orthanc reads one JSON file, or every ``*.json`` file of a folder merged at the top level, with ``//`` and
``/* */`` comments. Every option of Orthanc 1.12.11 is accepted with its default (``orthanc_defaults.json``
is the default configuration file of 1.12.11 with the comments removed); the options this server honours
are validated here so that a bad file is a clear error at start, not a surprise later.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pyjson5

DEFAULTS_FILE = Path(__file__).with_name("orthanc_defaults.json")

# Options that Orthanc documents but leaves commented out in its default file.
_COMMENTED_DEFAULTS: dict[str, Any] = {
    "RegisteredUsers": {},
    "ExtraMainDicomTags": {"Patient": [], "Study": [], "Series": [], "Instance": []},
}

_ENCODINGS = {
    "Ascii", "Utf8", "Latin1", "Latin2", "Latin3", "Latin4", "Latin5", "Cyrillic", "Windows1251", "Arabic",
    "Greek", "Hebrew", "Thai", "Japanese", "Chinese", "JapaneseKanji", "Korean", "SimplifiedChinese",
}


class ConfigurationError(Exception):
    """The configuration file cannot be used; the message says which option and why."""


def _read_json_with_comments(path: Path) -> dict[str, Any]:
    try:
        data = pyjson5.decode(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read the configuration file {path}: {exc}") from exc
    except Exception as exc:  # pyjson5 raises its own Json5DecoderException family
        raise ConfigurationError(f"The configuration file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"The configuration file {path} must hold a JSON object")
    return data


def load_user_configuration(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Read a configuration file or folder as Orthanc does; None gives an empty configuration."""
    if path is None:
        return {}
    p = Path(path)
    if p.is_dir():
        merged: dict[str, Any] = {}
        for file in sorted(p.glob("*.json")):
            for key, value in _read_json_with_comments(file).items():
                if key in merged:
                    raise ConfigurationError(f"The option {key} is defined in several configuration files")
                merged[key] = value
        return merged
    if not p.exists():
        raise ConfigurationError(f"The configuration file {p} does not exist")
    return _read_json_with_comments(p)


@functools.cache
def _defaults() -> dict[str, Any]:
    data = json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    data.update(_COMMENTED_DEFAULTS)
    return data


def _expect(cfg: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> None:
    value = cfg[key]
    # bool is an int in Python: do not let true pass as a port number
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigurationError(f"The configuration option {key} must be {what}, not {value!r}")
    if not isinstance(value, types):
        raise ConfigurationError(f"The configuration option {key} must be {what}, not {value!r}")


def _check_dictionary_entry(key: str, entry: Any) -> None:
    """An entry of "Dictionary": a tag, then [VR, name, min?, max?, private creator?] (Orthanc refuses the
    file otherwise)."""
    from archive.settings import dictionary_tag

    try:
        dictionary_tag(key)
    except ValueError:
        raise ConfigurationError(f"Dictionary: {key!r} is not a DICOM tag") from None
    if not (isinstance(entry, list) and 2 <= len(entry) <= 5 and isinstance(entry[0], str)
            and len(entry[0]) == 2 and isinstance(entry[1], str) and entry[1]):
        raise ConfigurationError(f"Dictionary: the entry of {key} must be [VR, name, min, max, private creator]")


def build_configuration(user: dict[str, Any], *, base_dir: Path | None = None) -> dict[str, Any]:
    """Merge a user configuration over Orthanc's defaults and validate the options we honour."""
    cfg = dict(_defaults())
    cfg.update(user)
    # Orthanc: when AuthenticationEnabled is not set, it follows RemoteAccessAllowed.
    if "AuthenticationEnabled" not in user:
        cfg["AuthenticationEnabled"] = bool(cfg.get("RemoteAccessAllowed", False))

    for key in ("Name", "DicomAet", "StorageDirectory", "IndexDirectory", "DefaultEncoding"):
        _expect(cfg, key, str, "a string")
    for key in ("HttpPort", "DicomPort"):
        _expect(cfg, key, int, "an integer")
        if not 0 <= cfg[key] <= 65535:
            raise ConfigurationError(f"The configuration option {key} must be a TCP port, not {cfg[key]}")
    for key in ("MaximumStorageSize", "MaximumPatientCount", "StableAge"):
        _expect(cfg, key, int, "an integer")
        if cfg[key] < 0:
            raise ConfigurationError(f"The configuration option {key} must not be negative")
    for key in ("RemoteAccessAllowed", "AuthenticationEnabled", "OverwriteInstances", "StorageCompression",
                "CheckRevisions", "DicomServerEnabled", "HttpServerEnabled", "UnknownSopClassAccepted",
                "MetricsEnabled", "ReadOnly", "PatientLevelEnabled"):
        _expect(cfg, key, bool, "true or false")
    if cfg["MaximumStorageMode"] not in ("Recycle", "Reject"):
        raise ConfigurationError("The configuration option MaximumStorageMode must be Recycle or Reject, "
                                 f"not {cfg['MaximumStorageMode']!r}")
    if cfg["DefaultEncoding"] not in _ENCODINGS:
        raise ConfigurationError(f"Unknown DefaultEncoding {cfg['DefaultEncoding']!r}")
    _expect(cfg, "RegisteredUsers", dict, "an object of user: password")
    for user_name, password in cfg["RegisteredUsers"].items():
        if not isinstance(password, str):
            raise ConfigurationError(f"The password of the registered user {user_name!r} must be a string")
        if ":" in user_name:   # Orthanc 1.12.10 (issue 252): Basic credentials are "user:password"
            raise ConfigurationError(f"The registered user {user_name!r}: a user name cannot contain a colon")
    _expect(cfg, "Dictionary", dict, "an object")
    for key, entry in cfg["Dictionary"].items():
        _check_dictionary_entry(key, entry)
    _expect(cfg, "ExtraMainDicomTags", dict, "an object")
    for level, tags in cfg["ExtraMainDicomTags"].items():
        if level not in ("Patient", "Study", "Series", "Instance") or not isinstance(tags, list):
            raise ConfigurationError(f"ExtraMainDicomTags: bad entry {level!r}")

    # Relative folders are relative to the configuration file, as in Orthanc.
    if base_dir is not None:
        for key in ("StorageDirectory", "IndexDirectory"):
            if not os.path.isabs(cfg[key]):
                cfg[key] = str((base_dir / cfg[key]).resolve())
    return cfg


def load_configuration(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Load, merge with defaults and validate; raises ConfigurationError with a clear message."""
    user = load_user_configuration(path)
    base_dir = None
    if path is not None:
        p = Path(path).resolve()
        base_dir = p if p.is_dir() else p.parent
    else:
        base_dir = Path.cwd()
    return build_configuration(user, base_dir=base_dir)
