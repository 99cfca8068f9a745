"""Options that can change while the server runs (``PUT /tools/...``), shared by every process.

Orthanc keeps these in memory; we run several worker processes (gunicorn, the DICOM server, the job
workers), so the value lives in the database (``GlobalProperty``, one row per option) and the
configuration file gives the starting value. A process reads the row when it needs the option; hot-path
readers (``default_encoding``) go through a per-process cache, which a change stamps out at once: the writer
sets the modification time of a stamp file beside the index (``runtime.stamp``) and readers compare it (one
stat) before trusting their copy, so the next C-FIND or upload on any process of this machine sees the new
value, as Orthanc's single process does. Processes on other machines (scale-out) see it within
``CACHE_SECONDS``. Log levels are applied to this process's loggers when set, and to the other processes by
``logging_sync``, which each of them calls now and then.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from archive.dicom.tags import ENCODING_TO_CHARSET
from archive.errors import BadFileFormat, ParameterOutOfRange
from archive.models import GlobalProperty

logger = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
_PREFIX = "Runtime."

# Orthanc's verbosities and the Python levels they stand for.
LOG_LEVELS = {"default": logging.WARNING, "verbose": logging.INFO, "trace": logging.DEBUG}
_VERBOSITY_ORDER = ("default", "verbose", "trace")

# Orthanc's log categories and the Python loggers that carry the same kind of messages here. "lua" and
# "plugins" have no counterpart (no Lua, no plugins): their level is kept and reported, nothing more.
LOG_CATEGORIES: dict[str, tuple[str, ...]] = {
    "dicom": ("archive.network", "pynetdicom"),
    "generic": ("archive", "explorer"),
    "http": ("explorer.api", "django.request", "django.server"),
    "jobs": ("jobs", "django-q"),
    "lua": (),
    "plugins": (),
    "sqlite": ("django.db.backends",),   # the index database, whatever its engine
}

# The transfer syntaxes Orthanc 1.12.11 knows, in the order it lists them, with the groups that the
# "XxxTransferSyntaxAccepted" options switch on or off.
_TS = "1.2.840.10008.1.2"
TRANSFER_SYNTAX_GROUPS: dict[str, tuple[str, ...]] = {
    "Deflated": (f"{_TS}.1.99",),
    "Jpeg": tuple(f"{_TS}.4.{n}" for n in (*range(50, 67), 70)),
    "JpegLossless": (f"{_TS}.4.80", f"{_TS}.4.81"),          # JPEG-LS, as Orthanc names the group
    "Jpeg2000": tuple(f"{_TS}.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203)),  # + HTJ2K (1.12.11)
    "Jpip": (f"{_TS}.4.94", f"{_TS}.4.95"),
    "Mpeg2": (f"{_TS}.4.100", f"{_TS}.4.101"),
    "Mpeg4": tuple(f"{_TS}.4.{n}" for n in range(102, 107)),
    "H265": (f"{_TS}.4.107", f"{_TS}.4.108"),
    "Rle": (f"{_TS}.5",),
}
TRANSFER_SYNTAXES: tuple[str, ...] = (
    _TS, f"{_TS}.1", f"{_TS}.1.99", f"{_TS}.2",
    *TRANSFER_SYNTAX_GROUPS["Jpeg"], *TRANSFER_SYNTAX_GROUPS["JpegLossless"],
    *TRANSFER_SYNTAX_GROUPS["Jpeg2000"][:4], *TRANSFER_SYNTAX_GROUPS["Jpip"],
    *TRANSFER_SYNTAX_GROUPS["Mpeg2"], *TRANSFER_SYNTAX_GROUPS["Mpeg4"], *TRANSFER_SYNTAX_GROUPS["H265"],
    *TRANSFER_SYNTAX_GROUPS["Jpeg2000"][4:],
    f"{_TS}.5", f"{_TS}.6.1", f"{_TS}.6.2",
)

_cache: dict[str, tuple[float, int, str | None]] = {}   # name -> (read at, stamp then, value)
_cache_lock = threading.Lock()


# -- storage ------------------------------------------------------------------------------------------

_stamp_paths: dict[str, str] = {}     # IndexDirectory -> its stamp file (read on every cached read: kept)


def _stamp_path() -> str:
    folder = settings.ORTHANC.get("IndexDirectory", "OrthancStorage")
    path = _stamp_paths.get(folder)
    if path is None:
        path = _stamp_paths[folder] = os.path.join(folder, "runtime.stamp")
    return path


def _stamp() -> int:
    """The time of the last change made on this machine (0 without a stamp file)."""
    try:
        return os.stat(_stamp_path()).st_mtime_ns
    except OSError:
        return 0


def _stamp_touch() -> None:
    """Tell the processes of this machine that a value changed. An explicit time, not the file system's
    coarse clock, so that two changes in a row never leave the same stamp."""
    path, now = Path(_stamp_path()), time.time_ns()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        os.utime(path, ns=(now, now))
    except OSError:   # a read-only index folder: the other processes see the change after CACHE_SECONDS
        logger.warning("cannot stamp %s: other processes see the change within %s s", path, CACHE_SECONDS)

def _read(name: str) -> str | None:
    return GlobalProperty.objects.filter(key=_PREFIX + name).values_list("value", flat=True).first()


def _read_many(names: Iterable[str]) -> dict[str, str]:
    rows = GlobalProperty.objects.filter(key__in=[_PREFIX + n for n in names]).values_list("key", "value")
    return {key[len(_PREFIX):]: value for key, value in rows}


def _write(name: str, value: str) -> None:
    GlobalProperty.objects.update_or_create(key=_PREFIX + name, defaults={"value": value})
    _stamp_touch()   # after the row: a process that sees the new stamp reads the new value
    with _cache_lock:
        _cache.pop(name, None)


def _stored(name: str, *, cached: bool) -> str | None:
    """The stored value; with ``cached``, read again only when the stamp changed or after CACHE_SECONDS (for
    hot paths such as ingest; the REST routes read afresh, so a PUT is seen by the next GET on any worker)."""
    if not cached:
        return _read(name)
    now, stamp = time.monotonic(), _stamp()
    with _cache_lock:
        hit = _cache.get(name)
    if hit is not None and now - hit[0] < CACHE_SECONDS and hit[1] == stamp:
        return hit[2]
    value = _read(name)   # after the stamp was taken: a change in between is read again next time
    with _cache_lock:
        _cache[name] = (now, stamp, value)
    return value


def runtime_reset() -> None:
    """Forget every runtime value (back to the configuration file), this process's cache and its log
    levels; for tests, and for a server restart that should start from the configuration again."""
    global _synced_at
    GlobalProperty.objects.filter(key__startswith=_PREFIX).delete()
    _stamp_touch()
    with _cache_lock:
        _cache.clear()
    for category in LOG_CATEGORIES:
        _apply(category, "default")
    _applied.clear()
    _synced_at = 0.0


# -- DefaultEncoding ----------------------------------------------------------------------------------

def encoding_parse(text: str) -> str:
    """Orthanc's encoding name, matched case-insensitively ("utf8" -> "Utf8"); ParameterOutOfRange else."""
    for name in ENCODING_TO_CHARSET:
        if name.lower() == text.lower():
            return name
    raise ParameterOutOfRange()


def default_encoding(*, cached: bool = True) -> str:
    """The DefaultEncoding in force (for parsing files without SpecificCharacterSet)."""
    return _stored("DefaultEncoding", cached=cached) or str(settings.ORTHANC.get("DefaultEncoding", "Latin1"))


def default_encoding_set(*, name: str) -> str:
    """Change the DefaultEncoding for every process; returns the canonical name. Validates ``name``."""
    canonical = encoding_parse(name)
    _write("DefaultEncoding", canonical)
    return canonical


# -- Boolean switches ---------------------------------------------------------------------------------

def bool_parse(text: str) -> bool:
    """Orthanc's Boolean bodies: "1"/"true" or "0"/"false", surrounding blanks ignored."""
    value = text.strip()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise BadFileFormat("Boolean value expected")


def _switch(name: str, *, cached: bool) -> bool:
    stored = _stored(name, cached=cached)
    if stored is None:
        defaults = {"MetricsEnabled": True, "UnknownSopClassAccepted": False}
        return bool(settings.ORTHANC.get(name, defaults[name]))
    return stored == "1"


def metrics_enabled() -> bool:
    return _switch("MetricsEnabled", cached=False)


def metrics_enabled_set(*, enabled: bool) -> None:
    """Switch the publication of /tools/metrics-prometheus on or off, for every process."""
    _write("MetricsEnabled", "1" if enabled else "0")


def unknown_sop_class_accepted(*, cached: bool = True) -> bool:
    """Whether the C-STORE SCP accepts SOP classes it does not know (Orthanc's promiscuous mode)."""
    return _switch("UnknownSopClassAccepted", cached=cached)


def unknown_sop_class_accepted_set(*, accepted: bool) -> None:
    _write("UnknownSopClassAccepted", "1" if accepted else "0")


# -- Accepted transfer syntaxes -------------------------------------------------------------------------

def _pattern(text: str) -> re.Pattern[str]:
    # Orthanc's wildcards: "?" one character, "*" any run; the whole UID must match.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text) + r"\Z")


def transfer_syntaxes_matching(patterns: Iterable[str]) -> set[str]:
    """The known transfer syntaxes that match any of the UID patterns."""
    compiled = [_pattern(p) for p in patterns]
    return {ts for ts in TRANSFER_SYNTAXES if any(p.match(ts) for p in compiled)}


def _configured_transfer_syntaxes() -> set[str]:
    cfg = settings.ORTHANC
    patterns = cfg.get("AcceptedTransferSyntaxes", ["1.2.840.10008.1.*"])
    accepted = transfer_syntaxes_matching([patterns] if isinstance(patterns, str) else patterns)
    for group, members in TRANSFER_SYNTAX_GROUPS.items():
        option = cfg.get(f"{group}TransferSyntaxAccepted")
        if option is True:
            accepted |= set(members)
        elif option is False:
            accepted -= set(members)
    return accepted


def _ordered(uids: Iterable[str]) -> list[str]:
    wanted = set(uids)
    return [ts for ts in TRANSFER_SYNTAXES if ts in wanted]


def accepted_transfer_syntaxes(*, cached: bool = True) -> list[str]:
    """The transfer syntaxes the C-STORE SCP accepts, in Orthanc's order."""
    stored = _stored("AcceptedTransferSyntaxes", cached=cached)
    if stored is None:
        return _ordered(_configured_transfer_syntaxes())
    return _ordered(json.loads(stored))


def accepted_transfer_syntaxes_set(*, patterns: list[str]) -> list[str]:
    """Replace the accepted transfer syntaxes by those matching ``patterns`` (wildcards allowed), for
    every process; returns the new list. Patterns that match nothing are ignored, as in Orthanc."""
    accepted = _ordered(transfer_syntaxes_matching(patterns))
    _write("AcceptedTransferSyntaxes", json.dumps(accepted))
    return accepted


# -- Log levels ---------------------------------------------------------------------------------------

def log_level_parse(text: str) -> str:
    """Orthanc's verbosity names, exactly (no trimming, case-sensitive)."""
    if text not in LOG_LEVELS:
        raise ParameterOutOfRange(f'Verbosity can be "default", "verbose" or "trace": {text}')
    return text


def _category_levels() -> dict[str, str]:
    stored = _read_many(f"LogLevel.{c}" for c in LOG_CATEGORIES)
    return {c: stored.get(f"LogLevel.{c}", "default") for c in LOG_CATEGORIES}


def log_level(*, category: str | None = None) -> str:
    """The verbosity of one category; without a category, the most verbose of all (as Orthanc reports
    its main log level)."""
    levels = _category_levels()
    if category is not None:
        return levels[category]
    return max(levels.values(), key=_VERBOSITY_ORDER.index)


def log_level_set(*, level: str, category: str | None = None) -> None:
    """Set the verbosity of one category, or of all of them; applied here now, elsewhere by logging_sync."""
    level = log_level_parse(level)
    for name in ([category] if category else list(LOG_CATEGORIES)):
        _write(f"LogLevel.{name}", level)
        _apply(name, level)


def _apply(category: str, level: str) -> None:
    # "default" leaves the loggers to the root level (WARNING, or the LOG_LEVEL of the deployment), so that
    # synchronising a process that nobody changed does not override its configuration. SQL statements are
    # logged by Django at DEBUG only when DEBUG is on: "trace" on "sqlite" shows them in that case only.
    python_level = logging.NOTSET if level == "default" else LOG_LEVELS[level]
    for name in LOG_CATEGORIES[category]:
        logging.getLogger(name).setLevel(python_level)


_synced_at = 0.0
_synced_stamp = 0
_applied: dict[str, str] = {}


def logging_sync(*, force: bool = False) -> None:
    """Apply the stored log levels to this process's loggers; cheap to call often (a stat, and one query when
    the stamp changed or every CACHE_SECONDS). Never raises: logging must not break the caller."""
    global _synced_at, _synced_stamp
    now, stamp = time.monotonic(), _stamp()
    if not force and now - _synced_at < CACHE_SECONDS and stamp == _synced_stamp:
        return
    _synced_at, _synced_stamp = now, stamp
    try:
        levels = _category_levels()
    except Exception:  # a busy or not yet migrated database: keep the current levels
        logger.debug("log levels not synchronised", exc_info=True)
        return
    for category, level in levels.items():
        if _applied.get(category) != level:
            _apply(category, level)
            _applied[category] = level


# -- Accepted SOP classes (configuration only, Orthanc 1.12.6) ----------------------------------------------

# Storage classes that DCMTK knows (so real Orthanc's SCP accepts them, checked against Orthanc 1.10.1) and
# pynetdicom does not: retired ones (a 1993 ultrasound file of the sample corpus could not be sent to us),
# trial (draft) ones, and the DICOS and DICONDE classes.
DCMTK_ONLY_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.1.27", "1.2.840.10008.5.1.1.29", "1.2.840.10008.5.1.1.30",        # stored print, hardcopy
    "1.2.840.10008.5.1.4.1.1.3", "1.2.840.10008.5.1.4.1.1.5", "1.2.840.10008.5.1.4.1.1.6",  # US MF, NM, US (retired)
    "1.2.840.10008.5.1.4.1.1.8", "1.2.840.10008.5.1.4.1.1.9", "1.2.840.10008.5.1.4.1.1.10",  # standalone overlay,
    "1.2.840.10008.5.1.4.1.1.11", "1.2.840.10008.5.1.4.1.1.129",                             # curve, LUTs, PET curve
    "1.2.840.10008.5.1.4.1.1.12.3", "1.2.840.10008.5.1.4.1.1.77.1", "1.2.840.10008.5.1.4.1.1.77.2",  # XA biplane, VL
    "1.2.840.10008.5.1.4.1.1.88.1", "1.2.840.10008.5.1.4.1.1.88.2", "1.2.840.10008.5.1.4.1.1.88.3",  # SR (trial)
    "1.2.840.10008.5.1.4.1.1.88.4", "1.2.840.10008.5.1.4.1.1.9.1", "1.2.840.10008.5.1.4.34.1",       # waveform, RT
    "1.2.840.10008.5.1.4.1.1.501.1", "1.2.840.10008.5.1.4.1.1.501.2.1", "1.2.840.10008.5.1.4.1.1.501.2.2",  # DICOS
    "1.2.840.10008.5.1.4.1.1.501.3", "1.2.840.10008.5.1.4.1.1.501.4", "1.2.840.10008.5.1.4.1.1.501.5",
    "1.2.840.10008.5.1.4.1.1.501.6",
    "1.2.840.10008.5.1.4.1.1.601.1", "1.2.840.10008.5.1.4.1.1.601.2",                        # DICONDE eddy current
)


def accepted_sop_classes() -> list[str]:
    """The storage SOP classes the C-STORE SCP accepts: ``AcceptedSopClasses`` (wildcards select among the
    known storage classes, plain UIDs are added as they are; all known classes when absent or empty)
    minus ``RejectedSopClasses`` (or ``RejectSopClasses``; wildcards allowed), sorted. The known classes are pynetdicom's, the
    storage service this server's SCP is built on, and those of DCMTK's list (Orthanc's) it lacks."""
    from pynetdicom.sop_class import _STORAGE_CLASSES

    known = set(_STORAGE_CLASSES.values()) | set(DCMTK_ONLY_STORAGE_CLASSES)
    cfg = settings.ORTHANC
    wanted = cfg.get("AcceptedSopClasses") or []
    if wanted:
        accepted: set[str] = set()
        for entry in wanted:
            if "*" in entry or "?" in entry:
                accepted |= {uid for uid in known if _pattern(entry).match(uid)}
            else:
                accepted.add(entry)
    else:
        accepted = known
    # Orthanc 1.12.8: "RejectSopClasses" (1.12.6-1.12.7's spelling) is read when "RejectedSopClasses" is absent
    rejected = cfg["RejectedSopClasses"] if "RejectedSopClasses" in cfg else cfg.get("RejectSopClasses")
    for entry in rejected or []:
        accepted = {uid for uid in accepted if not _pattern(entry).match(uid)}
    return sorted(accepted)


# -- sequences ----------------------------------------------------------------------------------------

def anonymization_sequence_next() -> int:
    """The next number of Orthanc's "Anonymized{N}" patient names: a server-wide counter kept in the database
    (not reset by /tools/reset), taken under the row lock (PostgreSQL) or the write lock (SQLite)."""
    from django.db import transaction

    with transaction.atomic():
        row, _ = GlobalProperty.objects.select_for_update().get_or_create(key="AnonymizationSequence",
                                                                           defaults={"value": "0"})
        number = int(row.value or 0) + 1
        row.value = str(number)
        row.save(update_fields=["value"])
    return number
