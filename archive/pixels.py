"""Pixels of stored instances: parsed files and decoded frames kept in bounded per-process caches.

Instances never change once stored (a new file is a new attachment UUID), so both caches are keyed by the
attachment's UUID and need no invalidation; deleting an instance only leaves an entry to age out.
Orthanc keeps parsed files the same way (its DicomCache); the decoded-frame cache is what makes a viewer that
asks for the same frame at several sizes (preview, then rendered) answer the second time without decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import connection
from pydicom.dataset import Dataset

from archive.dicom import decode, render
from archive.dicom.decode import CannotDecode, DecodedFrame
from archive.dicom.render import Mode
from archive.errors import ArchiveError, OrthancError, ParameterOutOfRange, UnknownResource
from archive.levels import Level
from archive.models import Attachment, ContentType, Resource
from archive.storage import dicom_storage, uncompress

K = TypeVar("K")
V = TypeVar("V")

# Per process (each HTTP worker has its own): sized so four workers stay under a gigabyte together.
DATASET_CACHE_BYTES = 64 << 20
FRAME_CACHE_BYTES = 128 << 20
ANSWER_CACHE_BYTES = 32 << 20
PNG, JPEG, PAM = "image/png", "image/jpeg", "image/x-portable-arbitrarymap"


class BoundedCache(Generic[K, V]):
    """Least recently used entries, bounded by the sum of their sizes; thread safe (gthread workers).
    An entry larger than the whole budget is computed and returned, never kept."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], tuple[V, int]]) -> V:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit[0]
        value, size = compute()  # outside the lock: decoding takes milliseconds, other threads go on
        if size > self.budget:
            return value
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (value, size)
                self._used += size
                while self._used > self.budget:
                    _, (_, old) = self._entries.popitem(last=False)
                    self._used -= old
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._used = 0


_datasets: BoundedCache[str, Dataset] = BoundedCache(DATASET_CACHE_BYTES)
_frames: BoundedCache[tuple[str, int], DecodedFrame] = BoundedCache(FRAME_CACHE_BYTES)


@dataclass(frozen=True)
class StoredFile:
    """The DICOM file of an instance: the attachment's UUID names it for ever (the caches' key)."""

    uuid: str
    compressed: bool


_STORED_FILE_SQL = (f"SELECT a.uuid, a.compression FROM {Attachment._meta.db_table} a"
                    f" JOIN {Resource._meta.db_table} r ON a.resource_id = r.id"
                    f" WHERE r.public_id = %s AND r.level = %s AND a.content_type = %s")


def stored_file(*, public_id: str) -> StoredFile:
    """The file of instance ``public_id``, in one query (the hot path of every image request)."""
    # Plain SQL: compiling the ORM query cost more than running it (as for the lists, selectors.py).
    with connection.cursor() as cursor:
        cursor.execute(_STORED_FILE_SQL, [public_id, Level.INSTANCE.depth, int(ContentType.Dicom)])
        row = cursor.fetchone()
    if row is None:
        raise UnknownResource()
    return StoredFile(uuid=row[0], compressed=row[1] == 2)


def stored_files(*, instances: list[Resource]) -> dict[int, StoredFile]:
    """The files of many instances, by resource id, in one query."""
    rows = (Attachment.objects.filter(resource_id__in=[i.id for i in instances], content_type=ContentType.Dicom)
            .values_list("resource_id", "uuid", "compression"))
    return {rid: StoredFile(uuid=uuid, compressed=compression == 2) for rid, uuid, compression in rows}


def _read_dataset(stored: StoredFile) -> tuple[Dataset, int]:
    data = dicom_storage().read(stored.uuid)
    if stored.compressed:
        data = uncompress(data)
    return decode.dataset_read(data), len(data)


def pixel_dataset(*, stored: StoredFile) -> Dataset:
    """The whole parsed file, pixel data included (cached)."""
    return _datasets.get(stored.uuid, lambda: _read_dataset(stored))


def frame_decoded(*, stored: StoredFile, frame: int) -> tuple[DecodedFrame, Dataset]:
    """Frame ``frame`` decoded as Orthanc decodes it (cached), with its dataset."""
    ds = pixel_dataset(stored=stored)

    def compute() -> tuple[DecodedFrame, int]:
        decoded = decode.frame_decode(ds, frame)
        return decoded, decoded.pixels.nbytes

    return _frames.get((stored.uuid, frame), compute), ds


def caches_clear() -> None:
    _datasets.clear()
    _frames.clear()
    _answers.clear()


@dataclass(frozen=True)
class ImageRequest:
    """One image route's answer: which frame, how it is rendered, how it is encoded."""

    frame: int
    mode: Mode
    content_type: str                   # image/png, image/jpeg or image/x-portable-arbitrarymap
    quality: int = 90                   # JPEG only
    window_center: float | None = None  # rendered only: the caller's window, else the file's
    window_width: float | None = None
    width: int = 0                      # rendered only: 0 = not given
    height: int = 0
    smooth: bool = False


class NoSuchFrame(ArchiveError):
    """The frame index is beyond an uncompressed instance's frames (Orthanc: a bare 404)."""

    orthanc_error = OrthancError.PARAMETER_OUT_OF_RANGE


class ImageRefused(ArchiveError):
    """The frame cannot be decoded, rendered or encoded that way (Orthanc: a bare 415)."""

    orthanc_error = OrthancError.UNSUPPORTED_MEDIA_TYPE


class NotAcceptable(ArchiveError):
    """16-bit images asked for as JPEG (Orthanc: a bare 404)."""

    orthanc_error = OrthancError.PARAMETER_OUT_OF_RANGE


_answers: BoundedCache[tuple[str, ImageRequest], bytes] = BoundedCache(ANSWER_CACHE_BYTES)


def frame_image(*, stored: StoredFile, request: ImageRequest) -> bytes:
    """The encoded image an image route answers (cached: a viewer asks for the same images again)."""
    return _answers.get((stored.uuid, request), lambda: _encoded(stored, request))


def frame_check(*, stored: StoredFile, frame: int) -> None:
    """Decode the frame (or find it cached), raising what frame_image would for it."""
    _frame_or_refuse(stored, frame)


def _frame_or_refuse(stored: StoredFile, frame: int) -> tuple[DecodedFrame, Dataset]:
    try:
        return frame_decoded(stored=stored, frame=frame)
    except ParameterOutOfRange:
        raise NoSuchFrame() from None
    except ArchiveError as exc:
        raise ImageRefused(exc.details) from None


def _encoded(stored: StoredFile, request: ImageRequest) -> tuple[bytes, int]:
    decoded, ds = _frame_or_refuse(stored, request.frame)
    monochrome1 = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    signed = False
    try:
        if request.mode is Mode.PREVIEW:
            image = render.preview(decoded, monochrome1=monochrome1)
        elif request.mode is Mode.RENDERED:
            window = render.default_windowing(ds, request.frame)
            window = render.Windowing(
                center=window.center if request.window_center is None else request.window_center,
                width=window.width if request.window_width is None else request.window_width,
                slope=window.slope, intercept=window.intercept)
            image = render.rendered(decoded, windowing=window, monochrome1=monochrome1, width=request.width,
                                    height=request.height, smooth=request.smooth)
        else:
            truncated = render.truncated(decoded, request.mode)
            image, signed = truncated.pixels, truncated.signed
    except CannotDecode as exc:
        raise ImageRefused(exc.details) from None
    if request.content_type == JPEG:
        if request.mode in (Mode.UINT16, Mode.INT16):
            raise NotAcceptable("JPEG holds 8-bit images only")
        body = render.jpeg_encode(image, quality=request.quality)
    elif request.content_type == PAM:
        body = render.pam_encode(image, signed=signed)
    else:
        body = render.png_encode(image, signed=signed)
    return body, len(body)
