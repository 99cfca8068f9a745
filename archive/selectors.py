"""Reads of the index. Each function decides its query shape: one query per list, never one per row."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connection, connections

from archive.errors import UnknownResource
from archive.levels import Level
from archive.models import Attachment, ContentType, Label, MainDicomTag, Metadata, MetadataType, Resource
from archive.storage import dicom_storage, uncompress

LEVELS = list(Level)


def level_of(resource: Resource) -> Level:
    return LEVELS[resource.level]


@functools.cache
def _resource_sql(vendor: str) -> tuple[str, tuple[str, ...], tuple]:
    """The rows of resources and their parents in plain SQL (a WHERE clause on ``r`` follows), the fields it
    reads, and per field its column expression and converters (JSON text, SQLite's datetimes made aware):
    what the ORM's compiler applies."""
    fields = tuple(Resource._meta.concrete_fields)
    table = Resource._meta.db_table
    columns = ", ".join([f"r.{f.column}" for f in fields] + [f"p.{f.column}" for f in fields])
    sql = f"SELECT {columns} FROM {table} r LEFT JOIN {table} p ON p.id = r.parent_id"
    converters = []
    for f in fields:
        col = f.get_col(table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((fields.index(f), col, tuple(found)))
    return sql, tuple(f.attname for f in fields), tuple(converters)


def _resource_from_row(values: tuple, names: tuple[str, ...], converters: tuple, db) -> Resource:
    row = list(values)
    for i, col, found in converters:
        for converter in found:
            row[i] = converter(row[i], col, db)
    return Resource.from_db(db.alias, list(names), row)


def _resources_where(where: str, params: list) -> list[Resource]:
    """Resources with their parent (as select_related("parent")) read in plain SQL: ``where`` is the rest of
    the statement on ``r``. Every resource route and list starts here: the ORM's select_related query cost
    far more to build and to turn into objects than to run."""
    db = connections[DEFAULT_DB_ALIAS]   # the connection itself, not the per-thread proxy looked up per value
    sql, names, converters = _resource_sql(db.vendor)
    with db.cursor() as cursor:
        cursor.execute(f"{sql} {where}", params)
        rows = cursor.fetchall()
    n = len(names)
    found = []
    parents: dict[int, Resource] = {}  # the 1,000 instances of a series share one parent: read it once
    for row in rows:
        resource = _resource_from_row(row[:n], names, converters, db)
        parent_id = row[n]
        if parent_id is not None:
            parent = parents.get(parent_id)
            if parent is None:
                parent = parents[parent_id] = _resource_from_row(row[n:], names, converters, db)
            resource.parent = parent
        found.append(resource)
    return found


def resource_get(*, level: Level, public_id: str) -> Resource:
    """The resource of that level and ID, with its parent, or UnknownResource. One plain query."""
    found = _resources_where("WHERE r.public_id = %s AND r.level = %s", [public_id, level.depth])
    if not found:
        raise UnknownResource()
    return found[0]


def resource_get_any_level(*, public_id: str) -> Resource:
    """The resource with that ID whatever its level, or UnknownResource (Orthanc's metadata and attachment
    writes do not check the level named in the URI)."""
    resource = Resource.objects.filter(public_id=public_id).first()
    if resource is None:
        raise UnknownResource()
    return resource


def _page_sql(*, since: int, limit: int) -> str:
    """LIMIT/OFFSET of a page (``limit`` 0: all from ``since``), in each engine's spelling."""
    if limit:
        return f"LIMIT {int(limit)} OFFSET {int(since)}"
    return f"LIMIT {'-1' if connection.vendor == 'sqlite' else 'ALL'} OFFSET {int(since)}"


def resource_list(*, level: Level, since: int = 0, limit: int = 0) -> list[Resource]:
    """Resources of a level in insertion order; ``since`` skips, ``limit`` 0 means all (Orthanc 1.12.5).
    One query. The page comes from the (level, id) index alone: the rows (and their parents) are then read
    for the page only, not for the ``since`` rows skipped before it (PostgreSQL otherwise walks the primary
    key and joins every skipped row)."""
    if not since and not limit:
        return _resources_where("WHERE r.level = %s ORDER BY r.id", [level.depth])
    return _resources_where(f"WHERE r.id IN (SELECT id FROM {_RESOURCE} WHERE level = %s ORDER BY id "
                            f"{_page_sql(since=since, limit=limit)}) ORDER BY r.id", [level.depth])


def resource_public_ids(*, level: Level, since: int = 0, limit: int = 0) -> list[str]:
    """The IDs of resource_list, without loading the rows (the list without ``expand``). One query: the
    hottest list of all (clients page through /studies?since=&limit=)."""
    if not since and not limit:
        sql, params = f"SELECT public_id FROM {_RESOURCE} WHERE level = %s ORDER BY id", [level.depth]
    else:
        sql = (f"SELECT public_id FROM {_RESOURCE} WHERE id IN (SELECT id FROM {_RESOURCE} WHERE level = %s"
               f" ORDER BY id {_page_sql(since=since, limit=limit)}) ORDER BY id")
        params = [level.depth]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def resource_children(*, resource: Resource) -> list[Resource]:
    return _resources_where("WHERE r.parent_id = %s ORDER BY r.id", [resource.id])


def resource_descendants(*, resource: Resource, level: Level) -> list[Resource]:
    """Descendants of ``resource`` at ``level``, in Orthanc's order.

    Orthanc walks down level by level and, for each parent in turn, puts its children (in insertion
    order) in front of those gathered so far; clients see that order, so it is kept. One query per level
    (per 900 parents), then the rows."""
    order = [resource.id]
    with connection.cursor() as cursor:
        for _ in range(resource.level, level.depth):
            children: dict[int, list[int]] = defaultdict(list)
            for chunk in _chunks(order):
                cursor.execute(f"SELECT id, parent_id FROM {_RESOURCE} WHERE parent_id IN ({_marks(chunk)})"
                               " ORDER BY id", chunk)
                for rid, parent_id in cursor.fetchall():
                    children[parent_id].append(rid)
            gathered: list[int] = []
            for parent_id in order:
                gathered = children.get(parent_id, []) + gathered
            order = gathered
    rows: dict[int, Resource] = {}
    for chunk in _chunks(order):
        rows.update((r.id, r) for r in _resources_where(f"WHERE r.id IN ({_marks(chunk)})", chunk))
    return [rows[rid] for rid in order]


def resource_ancestor(*, resource: Resource, level: Level) -> Resource:
    """The ancestor of ``resource`` at ``level`` (the resource itself at its own level)."""
    current = resource
    while current.level > level.depth:
        current = Resource.objects.select_related("parent").get(id=current.parent_id)
    if current.level != level.depth:
        raise UnknownResource()
    return current


def instance_first(*, resource: Resource) -> Resource:
    """The instance below (or at) a resource whose file Orthanc reads for module and requested tags: at each
    level down, the child created last (checked against Orthanc 1.10.1 on every module answer of the
    samples, scripts/compare-with-orthanc). One indexed query per level."""
    return _instance_down(resource, "-id")


def instance_oldest(*, resource: Resource) -> Resource:
    """The instance below (or at) a resource whose file Orthanc's C-FIND reads for the tags it answers that
    are not main tags, and for sequences: at each level down, the child created first (Orthanc 1.10.1 seen:
    a study of two series answered the first instance of its first series, not instance_first's)."""
    return _instance_down(resource, "id")


def _instance_down(resource: Resource, order: str) -> Resource:
    current = resource
    while current.level < Level.INSTANCE.depth:
        child = Resource.objects.filter(parent_id=current.id).order_by(order).first()
        if child is None:
            raise UnknownResource()
        current = child
    return current


_FILES_SQL = ("SELECT content_type, uuid, compression FROM archive_attachment"
              " WHERE resource_id = %s AND content_type IN (%s, %s)")


def _instance_files(instance: Resource) -> dict[int, tuple[str, int]]:
    """content type -> (uuid, compression) of the DICOM file of an instance and of its part before the
    pixel data: one plain query (every tags, file and pixel route reads it)."""
    with connection.cursor() as cursor:
        cursor.execute(_FILES_SQL, [instance.id, int(ContentType.Dicom), int(ContentType.DicomUntilPixelData)])
        return {kind: (uuid, compression) for kind, uuid, compression in cursor.fetchall()}


def instance_dicom(*, instance: Resource) -> bytes:
    """The DICOM file of an instance, uncompressed."""
    return instance_dicom_file(instance=instance)[0]


def instance_dicom_file(*, instance: Resource) -> tuple[bytes, str]:
    """The DICOM file of an instance, uncompressed, and the UUID of its attachment (Orthanc's download name)."""
    file = _instance_files(instance).get(ContentType.Dicom)
    if file is None:
        raise UnknownResource()
    return dicom_file_read(file), file[0]


def instance_dicom_until_pixel_data(*, instance: Resource) -> tuple[bytes, bool]:
    """``(the file up to its pixel data, True)`` where the archive keeps that part apart (the
    "dicom-until-pixel-data" attachment of a compressed archive: a fraction of the file to inflate), else
    ``(the whole file, False)``: for readers that stop before the pixel data. One query, as instance_dicom."""
    files = _instance_files(instance)
    if ContentType.DicomUntilPixelData in files:
        return dicom_file_read(files[ContentType.DicomUntilPixelData]), True
    if ContentType.Dicom in files:
        return dicom_file_read(files[ContentType.Dicom]), False
    raise UnknownResource()


def instance_dicom_header(*, instance: Resource) -> bytes:
    """The DICOM file of an instance, perhaps only up to its pixel data (instance_dicom_until_pixel_data)."""
    return instance_dicom_until_pixel_data(instance=instance)[0]


def instance_dicom_files(instances: Iterable[Resource]) -> dict[int, tuple[str, int]]:
    """(uuid, compression) of the DICOM file of many instances, by resource id, in a few queries (the
    sub-operations of a C-MOVE or C-GET read them one after the other)."""
    ids = [r.id for r in instances]
    files: dict[int, tuple[str, int]] = {}
    for start in range(0, len(ids), 900):
        rows = Attachment.objects.filter(resource_id__in=ids[start:start + 900], content_type=ContentType.Dicom)
        files.update((rid, (uuid, compression))
                     for rid, uuid, compression in rows.values_list("resource_id", "uuid", "compression"))
    return files


def dicom_file_read(file: tuple[str, int]) -> bytes:
    """The bytes of a DICOM file named by ``instance_dicom_files``, uncompressed."""
    uuid, compression = file
    data = dicom_storage().read(uuid)
    return uncompress(data) if compression == 2 else data


@dataclass
class Details:
    """What a list of resources needs besides the rows, fetched in a handful of queries."""

    children: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    labels: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    files: dict[int, tuple[int, str]] = field(default_factory=dict)
    expected: dict[int, int] = field(default_factory=dict)
    indexes: dict[int, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    patient_tags: dict[int, dict] = field(default_factory=dict)
    sequences: dict[int, dict] = field(default_factory=dict)   # MainDicomSequences, Orthanc's full format
    sources: dict[int, dict] = field(default_factory=lambda: defaultdict(dict))  # ModifiedFrom, AnonymizedFrom


def resource_details(resources: Iterable[Resource]) -> Details:
    """Children, labels, files and series status data for many resources at once: one query of each kind
    per 900 resources, in plain SQL (every resource route and list reads them: the ORM took 5 to 10 times
    longer to build these queries than SQLite to run them)."""
    resources = list(resources)
    ids = [r.id for r in resources]
    details = Details()
    if not ids:
        return details
    series = {r.id for r in resources if r.level == 2}
    parents_ids = [r.id for r in resources if r.level < 3]
    instances_ids = [r.id for r in resources if r.level == 3]
    with connection.cursor() as cursor:
        for chunk in _chunks(parents_ids):
            for parent_id, public_id, index, has_index in _children_rows(cursor, chunk):
                details.children[parent_id].append(public_id)
                if has_index and parent_id in series:
                    details.indexes[parent_id].append(index)
        for chunk in _chunks(ids):
            cursor.execute(f"SELECT resource_id, name FROM {_LABEL} WHERE resource_id IN ({_marks(chunk)})"
                           " ORDER BY name", chunk)
            for rid, name in cursor.fetchall():
                details.labels[rid].append(name)
        for chunk in _chunks(instances_ids):
            cursor.execute(f"SELECT resource_id, uncompressed_size, uuid FROM {_ATTACHMENT} WHERE resource_id IN"
                           f" ({_marks(chunk)}) AND content_type = %s", [*chunk, int(ContentType.Dicom)])
            for rid, size, uuid in cursor.fetchall():
                details.files[rid] = (size, uuid)
        wanted = [int(MetadataType.MainDicomSequences), int(MetadataType.ModifiedFrom),
                  int(MetadataType.AnonymizedFrom)]
        for chunk in _chunks(ids):
            cursor.execute(f"SELECT resource_id, type, value FROM {_METADATA} WHERE resource_id IN ({_marks(chunk)})"
                           f" AND type IN ({_marks(wanted)})", [*chunk, *wanted])
            for rid, kind, text in cursor.fetchall():
                if kind == MetadataType.MainDicomSequences:
                    details.sequences[rid] = json.loads(text).get("Sequences", {})
                else:
                    details.sources[rid][MetadataType(kind).name] = text
    for r in resources:
        if r.level == 2 and r.expected_instances is not None:
            details.expected[r.id] = r.expected_instances
    return details


_RESOURCE = Resource._meta.db_table
_LABEL = Label._meta.db_table
_ATTACHMENT = Attachment._meta.db_table
_METADATA = Metadata._meta.db_table


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _children_rows(cursor, parents: list[int]) -> list[tuple[int, str, int | None, bool]]:
    """(parent id, public ID, IndexInSeries column, whether the IndexInSeries metadata exists) of the children
    of ``parents``, in insertion order."""
    cursor.execute(f"SELECT r.parent_id, r.public_id, r.index_in_series, EXISTS(SELECT 1 FROM {_METADATA} m"
                   f" WHERE m.resource_id = r.id AND m.type = %s) FROM {_RESOURCE} r"
                   f" WHERE r.parent_id IN ({_marks(parents)}) ORDER BY r.id",
                   [int(MetadataType.IndexInSeries), *parents])
    return cursor.fetchall()


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    # SQLite limits the number of bound parameters of one statement.
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def series_indexes(*, series_ids: list[int]) -> dict[int, list[int | None]]:
    """The IndexInSeries of the instances of each series, as Orthanc's series status reads them: only the
    instances that have that metadata count (none without InstanceNumber or ImageIndex), and None stands for
    a value that is not an integer. One query per 900 series."""
    indexes: dict[int, list[int | None]] = defaultdict(list)
    with connection.cursor() as cursor:
        for chunk in _chunks(series_ids):
            for parent_id, _public_id, index, has_index in _children_rows(cursor, chunk):
                if has_index:
                    indexes[parent_id].append(index)
    return indexes


def series_status_from(indexes: list[int | None], expected: int | None) -> str:
    """Orthanc's series Status from the IndexInSeries of the instances that have one (see series_indexes):
    Unknown without an expected count or when an index is not an integer, Inconsistent when one is out of
    1..expected or repeated, else Complete or Missing."""
    if expected is None:
        return "Unknown"
    seen: set[int] = set()
    for index in indexes:
        if index is None:
            return "Unknown"
        if not 1 <= index <= expected or index in seen:
            return "Inconsistent"
        seen.add(index)
    return "Complete" if len(seen) == expected else "Missing"


def metadata_of(*, resource: Resource) -> dict[int, tuple[str, int]]:
    """Metadata of a resource by type number: (value, revision); LastUpdate included as Orthanc shows it."""
    from archive.timeutil import iso

    rows = {t: (v, rev) for t, v, rev in Metadata.objects.filter(resource_id=resource.id)
            .values_list("type", "value", "revision")}
    if resource.level < 3:
        rows[MetadataType.LastUpdate] = (iso(resource.last_update), 0)
    return dict(sorted(rows.items()))


def lookup_by_dicom_id(*, value: str) -> list[Resource]:
    """Resources whose DICOM identifier (PatientID, Study/Series/SOP Instance UID) equals ``value``."""
    from archive.identifiers import hash_to_public_id

    found = []
    patient = Resource.objects.filter(level=0, public_id=hash_to_public_id(value)).first()
    # Orthanc indexes the PatientID its patient was created with: none when that first file had none (real
    # 1.10.1: "" finds the patient of an empty PatientID, not the one of an absent PatientID)
    if patient is not None and "PatientID" in patient.main_tags:
        found.append(patient)
    # Through the (level, tag, value) index of MainDicomTag: the JSON column has no index to search.
    keys = {1: 0x0020000D, 2: 0x0020000E, 3: 0x00080018}  # Study/Series/SOP Instance UID
    if "\x00" in value:    # no stored value holds one (cut there, as DCMTK reads it); PostgreSQL refuses it
        return found
    for level, tag in keys.items():
        rows = MainDicomTag.objects.filter(level=level, tag=tag, value=value).values("resource_id")
        found.extend(Resource.objects.filter(level=level, id__in=rows).select_related("parent").order_by("id"))
    return found


def instance_ids_by_sop_uid(uids: list[str]) -> dict[str, str]:
    """SOP Instance UID -> Orthanc ID of the instances the archive holds among ``uids`` (one query, through
    the (level, tag, value) index; the first 500 UIDs)."""
    uids = [uid for uid in uids[:500] if "\x00" not in uid]
    if not uids:
        return {}
    rows = MainDicomTag.objects.filter(level=3, tag=0x00080018, value__in=uids)
    return dict(rows.order_by("-resource_id").values_list("value", "resource__public_id"))


@dataclass
class Extras:
    """Metadata and attachments of many resources, for /tools/find's ResponseContent (1.12.5)."""

    metadata: dict[int, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    attachments: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))


def resources_extras(resources: Iterable[Resource], *, metadata: bool, attachments: bool) -> Extras:
    """The metadata (LastUpdate included above instances, as metadata_of shows it) and the attachments (in
    content type order, as Orthanc lists them) of many resources: one query per 900 resources and kind."""
    from archive.metadata import metadata_display  # metadata.py builds on this module
    from archive.timeutil import iso

    resources = list(resources)
    ids = [r.id for r in resources]
    extras = Extras()
    if metadata:
        for r in resources:
            if r.level < 3:
                extras.metadata[r.id][MetadataType.LastUpdate] = iso(r.last_update)
        for chunk in _chunks(ids):
            for rid, kind, value in Metadata.objects.filter(resource_id__in=chunk).values_list(
                    "resource_id", "type", "value"):
                extras.metadata[rid][kind] = metadata_display(value)
    if attachments:
        for chunk in _chunks(ids):
            rows = Attachment.objects.filter(resource_id__in=chunk).order_by("resource_id", "content_type")
            for a in rows:
                extras.attachments[a.resource_id].append({
                    "Uuid": a.uuid, "ContentType": a.content_type, "UncompressedSize": a.uncompressed_size,
                    "CompressedSize": a.compressed_size, "UncompressedMD5": a.uncompressed_md5,
                    "CompressedMD5": a.compressed_md5})
    return extras
