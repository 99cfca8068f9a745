"""DICOMDIR media (PS3.10 file-set in a ZIP), built with pydicom's FileSet.

The layout is pydicom's (``PT000000/ST000000/SE000000/IM000000`` beside ``DICOMDIR``), where Orthanc writes
``IMAGES/IM0``...: both are valid file-sets, and readers follow the DICOMDIR's ReferencedFileID, not names.
FileSet needs a staging folder, so media are built on disk, then zipped (streamed from the file when the
request is synchronous).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.fileset import FileSet

from archive.errors import ArchiveError, OrthancError
from jobs.kinds.archive import COMPRESS_LEVEL, Entry, _read, zip_job
from jobs.models import Job


def media_build(entries: list[Entry], target: Path) -> Iterator[float]:
    """Write the media ZIP of ``entries`` to ``target``, yielding progress (percent) per instance."""
    with tempfile.TemporaryDirectory(prefix="media-") as staging:
        fileset = FileSet()
        fileset.ID = "ORTHANC_MEDIA"
        for done, entry in enumerate(entries, start=1):
            ds = pydicom.dcmread(io.BytesIO(_read(entry)))
            try:
                fileset.add(ds)
            except ValueError as exc:  # a record without the keys PS3.3 F.5 requires (StudyID, ...)
                raise ArchiveError(f"Cannot add {entry.name} to a DICOMDIR: {exc}",
                                   orthanc_error=OrthancError.BAD_FILE_FORMAT) from None
            yield 90.0 * done / max(1, len(entries))
        fileset.write(staging)
        root = Path(staging)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as out:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                out.write(path, path.relative_to(root).as_posix())
    yield 99.0


def media_job(job: Job) -> Iterator[float]:
    """The Media job: the DICOMDIR ZIP."""
    return zip_job(job, media_build)
