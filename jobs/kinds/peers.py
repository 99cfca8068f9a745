"""The OrthancPeerStore job (POST /peers/{id}/store): the instances of the given resources sent one by one to
the peer's /instances over one kept-alive HTTP connection, as Orthanc's OrthancPeerStoreJob.

The instance list is fixed when the job is submitted (``peer_store_plan``): Orthanc's InstancesCount is known
before the job runs, and an instance deleted meanwhile counts as a failed instance. Orthanc 1.12.11 sends each
resource's instances grouped by series, ordered by InstanceNumber.

One step per instance: the file is read, transcoded if asked ("Transcode"; a file no codec can write is sent
as stored, as Orthanc does), gzipped if asked ("Compress"), then posted. Loader threads ("LoaderThreads")
prepare the next few instances while one is on the wire; never more than a few are in memory, whatever the
size of the study. A failure ends the job (NetworkProtocol, or InternalError for a deleted instance)
unless the request was "Permissive", which skips it as Orthanc does (only deleted instances count in
FailedInstancesCount).

Parameters: ``peer`` (the peer's configuration at submission, passwords included, as Orthanc serializes the
job), ``instances`` (public IDs, in sending order), ``resources`` (the requested IDs), ``compress``,
``transcode``, ``quality``, ``permissive``, ``levels`` (the level of each requested ID).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings

from archive import selectors
from archive.errors import ArchiveError, OrthancError
from archive.levels import Level
from archive.models import Attachment, ContentType, Resource
from archive.network.peers import PeerClient, PeerUnreachable, dicom_gzip
from archive.network.registry import Peer, peer_config, peer_job_json, peer_parse
from archive.storage import dicom_storage, uncompress
from jobs.models import Job

logger = logging.getLogger(__name__)

KIND = "OrthancPeerStore"
MEGA_BYTES = 1024 * 1024
CONTENT_SAVE_INTERVAL = 1.0  # seconds between two saves of the live Content (Size) of a running job
CHUNK = 200                  # instances whose files are looked up in one query


def _number(value) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return float("inf")  # without an InstanceNumber: after the numbered ones


def resource_instances(*, public_id: str) -> list[str]:
    """The instances below a resource of any level (UnknownResource if it does not exist), grouped by series
    and ordered by InstanceNumber within each series (Orthanc 1.12.11)."""
    root = selectors.resource_get_any_level(public_id=public_id)
    by_series: dict[int, list[Resource]] = {}
    for instance in selectors.resource_descendants(resource=root, level=Level.INSTANCE):
        by_series.setdefault(instance.parent_id, []).append(instance)
    ordered: list[str] = []
    for members in by_series.values():
        members.sort(key=lambda i: _number(i.main_tags.get("InstanceNumber")))  # stable: ties keep their order
        ordered += [i.public_id for i in members]
    return ordered


def peer_store_instances(*, resources: list[str]) -> list[str]:
    """The instances to send for ``resources`` (public IDs of any level, UnknownResource if one is missing),
    in sending order. An instance named twice is sent twice, as Orthanc."""
    instances: list[str] = []
    for public_id in resources:
        instances += resource_instances(public_id=public_id)
    return instances


def peer_store_plan(*, peer: Peer, resources: list[str], instances: list[str], compress: bool,
                    transcode: str | None, quality: int, permissive: bool) -> tuple[dict, dict]:
    """The (parameters, content) of a new job sending ``instances`` (peer_store_instances of ``resources``)."""
    levels = {r.public_id: selectors.level_of(r).value for r in Resource.objects.filter(public_id__in=resources)}
    parameters = {"peer": peer_config(peer), "instances": instances, "resources": resources, "levels": levels,
                  "compress": compress, "transcode": transcode, "quality": quality, "permissive": permissive}
    return parameters, _content(peer=peer, parameters=parameters, size=0, failed=0)


def _content(*, peer: Peer, parameters: dict, size: int, failed: int) -> dict:
    """Orthanc's public content of the job (SetOfInstancesJob + OrthancPeerStoreJob::GetPublicContent)."""
    parents = sorted(set(parameters["resources"]))
    content: dict = {"Compress": parameters["compress"], "Description": "REST API",
                     "FailedInstancesCount": failed, "InstancesCount": len(parameters["instances"]),
                     "Peer": peer_job_json(peer), "Size": str(size), "SizeMB": size // MEGA_BYTES}
    if parents:
        content["ParentResources"] = parents
        # New in Orthanc 1.12.11: the requested resources with their level.
        levels = parameters["levels"]
        content["Resources"] = [{"ID": i, "Type": levels[i]} for i in parents if i in levels]
    if parameters.get("transcode"):
        content["Transcode"] = parameters["transcode"]
    return dict(sorted(content.items()))


def _files(public_ids: list[str]) -> Iterator[tuple[str, tuple[str, bool] | None]]:
    """(public ID, (file UUID, stored compressed) or None when the instance is gone), a query per CHUNK."""
    for start in range(0, len(public_ids), CHUNK):
        chunk = public_ids[start:start + CHUNK]
        found = {pid: (uuid, compression == 2) for pid, uuid, compression in Attachment.objects.filter(
            resource__public_id__in=set(chunk), content_type=ContentType.Dicom).values_list(
            "resource__public_id", "uuid", "compression")}
        for public_id in chunk:
            yield public_id, found.get(public_id)


def _body(file: tuple[str, bool], *, transcode: str | None, quality: int, compress: bool) -> bytes:
    """The bytes to post for one instance (runs in a loader thread: storage and codecs only, no database)."""
    uuid, compressed = file
    data = dicom_storage().read(uuid)
    if compressed:
        data = uncompress(data)
    if transcode:
        from archive.dicom.transcode import TRANSCODERS, TranscodingFailed, file_transcode

        if transcode in TRANSCODERS:
            try:
                # As Orthanc's peer job (allowNewSopInstanceUid): a lossy copy is a new instance, so that it
                # neither overwrites the original at the peer nor is skipped as already stored there
                data = file_transcode(data, syntax=transcode, quality=quality, new_uid_if_lossy=True)
            except TranscodingFailed:
                pass  # Orthanc sends the instance as stored when it cannot transcode it
    return dicom_gzip(data) if compress else data


def _loader_threads() -> int:
    """"LoaderThreads" (1.12.11; "ZipLoaderThreads" before): threads reading, transcoding and compressing the
    next instances while the current one is on the wire."""
    options = settings.ORTHANC
    value = options.get("LoaderThreads", options.get("ZipLoaderThreads", 1))
    try:
        return min(max(1, int(value)), 16)
    except (TypeError, ValueError):
        return 1


def _prepared(instances: list[str], pool: ThreadPoolExecutor, *, ahead: int, **options
              ) -> Iterator[tuple[str, Future | None]]:
    """(public ID, future of its body, or None when the instance is gone), in order, at most ``ahead`` bodies
    being prepared or waiting: memory stays a few instances whatever the size of the study."""
    pending: deque[tuple[str, Future | None]] = deque()
    for public_id, file in _files(instances):
        pending.append((public_id, pool.submit(_body, file, **options) if file else None))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def _result(future: Future | None) -> bytes | None:
    """The body, or None when the instance or its file is gone (Orthanc: "An instance was removed after the
    job was issued"). A failing codec is not a missing file: that error propagates."""
    if future is None:
        return None
    try:
        return future.result()
    except FileNotFoundError:
        return None


def peer_store_job(job: Job) -> Iterator[float]:
    p = job.parameters
    peer = peer_parse(p["peer"])
    resumed = p.get("checkpoint") or {}        # paused, then resumed: on from the next instance, as Orthanc
    start = resumed.get("position", 0)
    instances: list[str] = p["instances"][start:]
    total = len(p["instances"])
    compress = bool(p.get("compress"))
    size, failed = resumed.get("size", 0), resumed.get("failed", 0)
    saved = time.monotonic()

    def content() -> dict:
        return _content(peer=peer, parameters=p, size=size, failed=failed)

    def fail(error: ArchiveError) -> ArchiveError:
        Job.objects.filter(id=job.id).update(content=content())  # the runner reloads the job: keep Size
        return error

    loaders = _loader_threads()
    pool = ThreadPoolExecutor(max_workers=loaders, thread_name_prefix="peer-loader")
    try:
        with PeerClient(peer) as client:
            bodies = _prepared(instances, pool, ahead=loaders + 1, transcode=p.get("transcode"),
                               quality=int(p.get("quality") or 90), compress=compress)
            for position, (public_id, future) in enumerate(bodies, start=start + 1):
                try:
                    body = _result(future)
                    if body is None:
                        failed += 1  # deleted since the job was submitted (Orthanc's HandleInstance false)
                        raise ArchiveError(orthanc_error=OrthancError.INTERNAL_ERROR)
                    size += len(body)
                    answer = client.post("instances", body, compress=compress)
                    if not answer.ok:
                        raise PeerUnreachable()  # Orthanc: NetworkProtocol, without details
                except ArchiveError as error:
                    if not p.get("permissive"):
                        raise fail(error) from None
                    logger.warning("Ignoring an error in a permissive job (instance %s): %s", public_id, error)
                if time.monotonic() - saved > CONTENT_SAVE_INTERVAL:
                    Job.objects.filter(id=job.id).update(content=content())
                    saved = time.monotonic()
                job.checkpoint = {"position": position, "size": size, "failed": failed}
                yield 100.0 * position / total
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # paused, canceled or failed: no loader left behind
    job.content = content()


__all__ = ["KIND", "peer_store_instances", "peer_store_job", "peer_store_plan", "resource_instances"]
