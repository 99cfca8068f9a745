"""The ReadOnly option (Orthanc 1.12.5): no change to the index or to the storage area.

Orthanc leaves the REST routes that write unregistered (explorer.api.base.OrthancView.read_only_absent) and
refuses any other write at the database. Here the same two layers: ``instance_store`` refuses before it
writes a file (C-STORE, uploads, modification jobs, peers), and every connection gets a guard that refuses
INSERT, UPDATE and DELETE on the tables of the index (resources, tags, metadata, attachments, labels,
changes, exports, statistics, staged files), whoever issues them. The rest stays writable: jobs, queries
to modalities and their answers, storage commitment reports, metrics, sessions. What the guard refuses
rolls back with its transaction, so nothing is half-written.
"""

from __future__ import annotations

import re

from archive.errors import ReadOnlyArchive
from archive.settings import archive_settings

MESSAGE = "Orthanc is in ReadOnly mode: the index and the storage area cannot be modified"


def read_only() -> bool:
    return archive_settings().read_only


def refuse_writes() -> None:
    """Raise ReadOnlyArchive (403, Orthanc error 22) when ReadOnly is on."""
    if archive_settings().read_only:
        raise ReadOnlyArchive(MESSAGE)


# The statement's verb and first table: INSERT [OR ...] INTO t, UPDATE t, DELETE FROM t, quoted or not.
_WRITE = re.compile(r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+"?(\w+)"?',
                    re.IGNORECASE)


def index_tables() -> frozenset[str]:
    from archive import models

    return frozenset(model._meta.db_table for model in (
        models.Resource, models.MainDicomTag, models.Metadata, models.Attachment, models.Label, models.Change,
        models.ExportedResource, models.StatisticsCounter, models.StagedFile))


def writes_index(sql: str, tables: frozenset[str]) -> bool:
    """Whether one SQL statement changes a table of the index."""
    match = _WRITE.match(sql)
    return bool(match) and match.group(1).lower() in tables


def guard_execute(execute, sql, params, many, context):
    """A Django execute wrapper (installed on every connection by archive.apps)."""
    if archive_settings().read_only and writes_index(sql, _tables()):
        raise ReadOnlyArchive(MESSAGE)
    return execute(sql, params, many, context)


_index_tables: frozenset[str] | None = None


def _tables() -> frozenset[str]:
    global _index_tables
    if _index_tables is None:
        _index_tables = index_tables()
    return _index_tables


def install_guard(sender, connection, **kwargs) -> None:
    """connection_created receiver: every new database connection refuses index writes under ReadOnly."""
    if guard_execute not in connection.execute_wrappers:
        connection.execute_wrappers.append(guard_execute)
