"""The statements of the ingest hot path, in SQL that SQLite (3.35+) and PostgreSQL both run.

Django's ORM spends ~250 us compiling each statement on these machines, against ~12 us for the statement
itself; an upload runs about eight of them, so they are written once here, with Django's cursor (same
connection, same transaction) and Django's own value adapters.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence

from django.db import connection

from archive.dicom.matching import fold
from archive.dicom.tags import tag_number
from archive.levels import Level

_FORMAT_MARK = re.compile(r"(?<!%)%s")


@functools.lru_cache(maxsize=256)
def _qmark(sql: str) -> str:
    """A statement with %s placeholders in sqlite3's style, as Django's SQLite backend converts it."""
    return _FORMAT_MARK.sub("?", sql).replace("%%", "%")


class IndexWriter:
    def __init__(self):
        self.cursor = connection.cursor()
        self._dt = connection.ops.adapt_datetimefield_value
        self._key_share = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
        # The statements go to the driver's cursor, in the driver's errors wrapped as Django's (the ingest
        # retries on IntegrityError and PostgreSQL's deadlocks), past Django's per-statement wrappers: ~20 us
        # each (the SQLite backend converts every statement's placeholders with a regular expression), ten
        # statements per stored instance. The ReadOnly guard among those wrappers is not needed here: the
        # ingest refuses writes before it starts. Where queries are recorded (DEBUG, tests that count them)
        # Django's path is kept, so that they are seen.
        raw = self.cursor.cursor
        if connection.queries_logged:
            self._run = self.cursor.execute
        elif connection.vendor == "sqlite":
            self._run = functools.partial(_sqlite_execute, raw, connection.wrap_database_errors)
        else:
            self._run = functools.partial(_driver_execute, raw, connection.wrap_database_errors)

    def exists(self, public_id: str) -> bool:
        self._run("SELECT 1 FROM archive_resource WHERE public_id = %s", [public_id])
        return self.cursor.fetchone() is not None

    def find(self, public_ids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
        """public_id -> (id, expected_instances) for those that exist. On PostgreSQL the rows found are
        locked (KEY SHARE) until the commit: the foreign keys are checked at the commit only (deferred), so
        an ancestor deleted meanwhile (forward-then-delete routing) failed the store then, again on each
        retry. Locked, a delete waits for the store; a store waits for a delete under way, then finds the
        ancestor gone and creates it anew. Rows are locked top down (patient first), in the order a delete
        locks a subtree, so that the two do not take them in opposite orders."""
        self._run(
            "SELECT public_id, id, expected_instances FROM archive_resource WHERE public_id IN (%s, %s, %s, %s)"
            + (" ORDER BY level" + self._key_share if self._key_share else ""), list(public_ids))
        return {row[0]: (row[1], row[2]) for row in self.cursor.fetchall()}

    def insert_resource(self, *, level: Level, public_id: str, parent_id: int | None, tags: dict,
                        now: dt.datetime, index: int | None = None, stable: bool = False,
                        expected: int | None = None) -> int:
        self._run(
            "INSERT INTO archive_resource (level, public_id, parent_id, main_tags, is_protected, is_stable,"
            " last_update, index_in_series, expected_instances) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            [level.depth, public_id, parent_id, json.dumps(tags, ensure_ascii=False), False, stable,
             self._dt(now), index, expected])
        return self.cursor.fetchone()[0]

    def insert_attachment(self, *, resource_id: int, content_type: int, uuid: str, compressed_size: int,
                          uncompressed_size: int, compressed: bool, compressed_md5: str,
                          uncompressed_md5: str) -> None:
        self._run(
            "INSERT INTO archive_attachment (resource_id, content_type, uuid, compressed_size, uncompressed_size,"
            " compression, compressed_md5, uncompressed_md5, revision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
            [resource_id, int(content_type), uuid, compressed_size, uncompressed_size, 2 if compressed else 1,
             compressed_md5, uncompressed_md5])

    def insert_metadata(self, rows: Iterable[tuple[int, int, str]]) -> None:
        rows = list(rows)
        if rows:
            values = ", ".join(["(%s, %s, %s, 0)"] * len(rows))
            self._run(f"INSERT INTO archive_metadata (resource_id, type, value, revision) VALUES {values}",
                                [x for row in rows for x in (row[0], int(row[1]), row[2])])

    def upsert_metadata(self, rows: Iterable[tuple[int, int, str]]) -> None:
        """Set metadata that may already exist (two stores of one series may set the same row at once: an
        upsert, not a delete then an insert, which would race)."""
        for rid, kind, value in rows:
            self._run(
                "INSERT INTO archive_metadata (resource_id, type, value, revision) VALUES (%s, %s, %s, 0)"
                " ON CONFLICT (resource_id, type) DO UPDATE SET value = excluded.value",
                [rid, int(kind), value])

    def insert_main_tags(self, resources: Iterable[tuple[int, int, dict]]) -> None:
        """The MainDicomTag rows of new resources, (id, level depth, main_tags), in one statement."""
        params: list = []
        for rid, level, tags in resources:
            for name, value in tags.items():
                number = tag_number(name)
                if number is not None:
                    params += (rid, level, number, value, fold(value))
        if params:
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * (len(params) // 5))
            self._run("INSERT INTO archive_maindicomtag (resource_id, level, tag, value, value_folded)"
                                f" VALUES {values}", params)

    def insert_changes(self, rows: Iterable[tuple[int, int, str]], *, date: str) -> None:
        rows = list(rows)
        if rows:
            values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
            self._run(f"INSERT INTO archive_change (change_type, level, public_id, date) VALUES {values}",
                                [x for row in rows for x in (int(row[0]), row[1], row[2], date)])

    def delete_instance_with_siblings(self, *, instance_id: int, public_id: str, series_id: int,
                                      dependents: Sequence[str]) -> list[tuple[str, int, int]] | None:
        """Delete an instance that is not the last of its series, as services._delete does (its changes, its
        rows in the ``dependents`` tables, its resource row), for an overwrite; returns the (uuid, compressed
        size, uncompressed size) of its attachments. None, deleting nothing, when it is the series' last: its
        ancestors then go too, which services._delete does."""
        if self._key_share:   # as services._delete: the resource locked before its dependents are deleted
            self._run("SELECT id FROM archive_resource WHERE id = %s FOR UPDATE", [instance_id])
        self._run("SELECT 1 FROM archive_resource WHERE parent_id = %s AND id <> %s LIMIT 1", [series_id, instance_id])
        if self.cursor.fetchone() is None:
            return None
        self._run("DELETE FROM archive_change WHERE public_id = %s", [public_id])
        self._run("SELECT uuid, compressed_size, uncompressed_size FROM archive_attachment WHERE resource_id = %s",
                  [instance_id])
        files = list(self.cursor.fetchall())
        for table in dependents:
            self._run(f"DELETE FROM {table} WHERE resource_id = %s", [instance_id])
        self._run("DELETE FROM archive_resource WHERE id = %s", [instance_id])
        return files

    def touch(self, ids: Sequence[int], *, now: dt.datetime) -> None:
        """A new child arrived: the ancestors' LastUpdate moves and they are no longer stable."""
        marks = ", ".join(["%s"] * len(ids))
        self._run(f"UPDATE archive_resource SET last_update = %s, is_stable = %s WHERE id IN ({marks})",
                            [self._dt(now), False, *ids])


def _sqlite_execute(cursor, errors, sql: str, params) -> None:
    with errors:
        sqlite3.Cursor.execute(cursor, _qmark(sql), params)


def _driver_execute(cursor, errors, sql: str, params) -> None:
    with errors:
        cursor.execute(sql, params)
