"""The resource tree: lists, resources, children and parents, tags, files, statistics, delete."""

from __future__ import annotations

import io
import json
import logging

import pydicom
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from archive import runtime, selectors, services
from archive.dicom import json as dicom_json
from archive.errors import ArchiveError, OrthancError, ParameterOutOfRange, UnknownResource
from archive.levels import Level
from archive.requested_tags import requested_values_many
from archive.settings import archive_settings
from archive.statistics import resource_statistics
from explorer.api.base import OrthancView
from explorer.api.find import resources_described
from explorer.api.params import flag, requested_tags, response_content, since_and_limit, tag_format
from explorer.api.rendering import bare_response, json_response, with_filename
from explorer.api.representations import resource_json

logger = logging.getLogger(__name__)


def _describe(resources, request, *, expand: bool):
    if not expand:
        return [r.public_id for r in resources]
    fmt = tag_format(request, default="simplify")
    tags = requested_tags(request)
    details = selectors.resource_details(resources)
    requested = requested_values_many(resources, tags) if tags is not None else {}
    return [resource_json(r, details, fmt=fmt, requested=requested.get(r.id)) for r in resources]


def _one(resource, request):
    return _describe([resource], request, expand=True)[0]


class ResourceListApi(OrthancView):
    def get(self, request):
        since, limit = since_and_limit(request)
        content = response_content(request)
        if content is not None:     # 1.12.5: the parts asked for, whether or not ``expand`` is there
            resources = selectors.resource_list(level=self.level, since=since, limit=limit)
            return json_response(resources_described(resources, content, fmt=tag_format(request, default="simplify"),
                                                     tags=requested_tags(request) or []))
        if not flag(request, "expand"):
            return json_response(selectors.resource_public_ids(level=self.level, since=since, limit=limit))
        resources = selectors.resource_list(level=self.level, since=since, limit=limit)
        return json_response(_describe(resources, request, expand=True))


class ResourceApi(OrthancView):
    """GET and DELETE /{level}/{id}. For an ID unknown at this level Orthanc's handler answers nothing,
    which its HTTP server turns into a 404 with an empty body (not the JSON error body of the sub-routes),
    so UnknownResource is translated here, the one place where that is the contract."""

    read_only_absent = frozenset({"delete"})

    def get(self, request, public_id: str):
        return json_response(_one(selectors.resource_get(level=self.level, public_id=public_id), request))

    def delete(self, request, public_id: str):
        remaining = services.resource_delete(level=self.level, public_id=public_id)
        return json_response({"RemainingAncestor": remaining})

    def handle_exception(self, exc):
        if isinstance(exc, UnknownResource):
            return bare_response(404)
        return super().handle_exception(exc)


class ChildrenApi(OrthancView):
    """/patients/{id}/studies, /studies/{id}/instances ...: expanded unless expand=false (1.12.2)."""

    child: Level = Level.INSTANCE

    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        children = selectors.resource_descendants(resource=resource, level=self.child)
        expand = request.GET.get("expand", "true").lower() not in ("false", "0")
        return json_response(_describe(children, request, expand=expand))


class ParentApi(OrthancView):
    """/instances/{id}/patient, /series/{id}/study ..."""

    ancestor: Level = Level.PATIENT

    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        return json_response(_one(selectors.resource_ancestor(resource=resource, level=self.ancestor), request))


def _instance_dataset(instance, *, header_only: bool = False) -> pydicom.Dataset:
    """The stored file, parsed; large values (pixel data, big private blobs) stay unread until asked for."""
    if header_only:
        return dicom_json.read_for_json(selectors.instance_dicom_header(instance=instance), header_only=True)
    return dicom_json.read_for_json(selectors.instance_dicom(instance=instance))


def _tags_dataset(instance, *, whole: bool = False) -> pydicom.Dataset:
    """The dataset the tags routes convert: without ``whole`` nothing after the pixel data is shown, so the
    part of the file before it does, where the archive keeps it apart (StorageCompression), as Orthanc."""
    if whole:
        return _instance_dataset(instance)
    data, until_pixel_data = selectors.instance_dicom_until_pixel_data(instance=instance)
    if not until_pixel_data:
        return dicom_json.read_for_json(data)
    return dicom_json.inject_empty_pixel_data(dicom_json.read_for_json(data, header_only=True))


def _json_options() -> dict:
    """What every tags route reads a file with: the DefaultEncoding in force (PUT /tools/default-encoding
    included) and the Dictionary option."""
    return {"default_encoding": runtime.default_encoding(), "dictionary": archive_settings().dictionary}


def _tags_json(ds: pydicom.Dataset, fmt: str, *, whole: bool = False) -> dict:
    return dicom_json.dataset_to_json(ds, fmt=fmt, whole=whole, **_json_options())


class InstanceTagsApi(OrthancView):
    fmt_default = "full"

    def get(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        whole = flag(request, "whole")
        ds = _tags_dataset(instance, whole=whole)
        return json_response(_tags_json(ds, tag_format(request, self.fmt_default), whole=whole))


class SimplifiedTagsApi(InstanceTagsApi):
    fmt_default = "simplify"

    def get(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        whole = flag(request, "whole")
        return json_response(_tags_json(_tags_dataset(instance, whole=whole), "simplify", whole=whole))


class InstanceHeaderApi(OrthancView):
    def get(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        ds = _instance_dataset(instance, header_only=True)
        return json_response(dicom_json.header_to_json(ds, tag_format(request, "full")))


class InstanceFileApi(OrthancView):
    def get(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        data, uuid = selectors.instance_dicom_file(instance=instance)
        accept = request.META.get("HTTP_ACCEPT", "").strip()
        # Orthanc compares the whole header with the one type: a list of types is not this case.
        if accept == "application/dicom+json":
            return _dicomweb_json(data)
        if accept == "application/dicom+xml":
            from archive.dicom.xml import dataset_to_xml

            xml = dataset_to_xml(pydicom.dcmread(io.BytesIO(data), force=True))
            return HttpResponse(xml, content_type="application/dicom+xml")
        syntax = request.GET.get("transcode")
        if syntax:
            data = _transcoded(request, data, syntax.strip())
            if data is None:
                return bare_response(404)  # Orthanc answers nothing when the transcoding fails
        response = HttpResponse(data, content_type="application/dicom")
        # The stored file is named after its attachment, as Orthanc 1.10.1 sends it (seen live), unless the
        # filename argument (1.12.7) names it
        filename = request.GET.get("filename") or (None if syntax else f"{uuid}.dcm")
        return with_filename(response, filename) if filename else response


class InstanceExportApi(OrthancView):
    """POST /instances/{id}/export: the DICOM file written where the body names, on the server's file system.
    Only with RestApiWriteToFileSystemEnabled (Orthanc 1.12.0, and Debian's 1.10.1 since its security update):
    anyone who reaches the REST API could otherwise overwrite any file the server may write. Refused, it is
    the bare 403 that Orthanc answers, before the instance is even looked up (seen live)."""

    def post(self, request, public_id: str):
        if not settings.ORTHANC.get("RestApiWriteToFileSystemEnabled", False):
            logger.error('The URI /instances/../export is disallowed for security reasons: set the '
                         '"RestApiWriteToFileSystemEnabled" configuration option to true to enable it')
            return bare_response(403)
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        data, _uuid = selectors.instance_dicom_file(instance=instance)
        target = request.body.decode("utf-8", errors="surrogateescape")    # the path as sent, as Orthanc reads it
        try:
            with open(target, "wb") as out:
                out.write(data)
        except (OSError, ValueError) as exc:      # ValueError: a NUL in the path
            logger.error("Cannot write to file %r: %s", target, exc)
            raise ArchiveError(orthanc_error=OrthancError.CANNOT_WRITE_FILE) from exc
        return json_response({})


def _dicomweb_json(data: bytes) -> HttpResponse:
    """The instance in DICOMweb JSON (PS3.18 F.2), binary values inline (base64), as Orthanc's /file sends it
    for ``Accept: application/dicom+json``."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    body = json.dumps(ds.to_json_dict(bulk_data_threshold=1 << 62), indent=3, ensure_ascii=False)
    return HttpResponse(body.encode("utf-8"), content_type="application/dicom+json")


def _transcoded(request, data: bytes, syntax: str) -> bytes | None:
    """?transcode= (1.12.2) with ?lossy-quality= (1.12.7, default DicomLossyTranscodingQuality)."""
    from archive.dicom.transcode import TranscodingFailed, file_transcode

    quality_text = request.GET.get("lossy-quality")
    quality = archive_settings().lossy_quality
    if quality_text is not None:
        if not quality_text.strip().isdigit() or not 1 <= int(quality_text) <= 100:
            raise ParameterOutOfRange("lossy-quality must be an integer between 1 and 100")
        quality = int(quality_text)
    try:
        return file_transcode(data, syntax=syntax, quality=quality)
    except TranscodingFailed:
        return None


class InstanceFramesApi(OrthancView):
    def get(self, request, public_id: str):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        ds = _instance_dataset(instance, header_only=True)
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            frames = 1
        return json_response(list(range(max(frames, 1))))


class InstanceContentApi(OrthancView):
    def get(self, request, public_id: str, subpath: str = ""):
        instance = selectors.resource_get(level=Level.INSTANCE, public_id=public_id)
        ds = _instance_dataset(instance)
        parts = [p for p in subpath.split("/") if p]
        try:
            result = dicom_json.content_navigate(ds, parts)
        except (KeyError, IndexError, ValueError):
            return bare_response(404)     # as Orthanc: a path absent from the dataset gets no error body
        if isinstance(result, list):
            return json_response(result)
        return HttpResponse(result, content_type="application/octet-stream")


class ModuleApi(OrthancView):
    module_level: Level | None = None

    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        ds = _instance_dataset(selectors.instance_first(resource=resource), header_only=True)
        level = self.module_level or self.level
        return json_response(dicom_json.module_json(ds, level, tag_format(request, "full"), **_json_options()))


class SharedTagsApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        instances = selectors.resource_descendants(resource=resource, level=Level.INSTANCE)
        datasets = (_instance_dataset(i, header_only=True) for i in instances)
        full = dicom_json.shared_tags(datasets, **_json_options())
        return json_response(dicom_json.convert_full(full, tag_format(request, "full")))


class InstancesTagsApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        fmt = tag_format(request, "full")
        instances = selectors.resource_descendants(resource=resource, level=Level.INSTANCE)
        return json_response({i.public_id: _tags_json(_tags_dataset(i), fmt) for i in instances})


class StatisticsApi(OrthancView):
    def get(self, request, public_id: str):
        resource = selectors.resource_get(level=self.level, public_id=public_id)
        return json_response(resource_statistics(resource=resource))


class OrderedSlicesApi(OrthancView):
    def get(self, request, public_id: str):
        from archive.dicom.slices import ordered_slices

        series = selectors.resource_get(level=Level.SERIES, public_id=public_id)
        instances = selectors.resource_descendants(resource=series, level=Level.INSTANCE)
        datasets = [(i.public_id, _instance_dataset(i, header_only=True)) for i in instances]
        return json_response(ordered_slices(datasets))


urlpatterns = []
for _level in Level:
    p = _level.plural
    urlpatterns += [
        path(f"{p}", ResourceListApi.as_view(level=_level)),
        path(f"{p}/<str:public_id>", ResourceApi.as_view(level=_level)),
        path(f"{p}/<str:public_id>/statistics", StatisticsApi.as_view(level=_level)),
        path(f"{p}/<str:public_id>/module", ModuleApi.as_view(level=_level)),
    ]
    for _child in Level:
        if _child.depth > _level.depth:
            urlpatterns.append(path(f"{p}/<str:public_id>/{_child.plural}",
                                    ChildrenApi.as_view(level=_level, child=_child)))
    for _ancestor in Level:
        if _ancestor.depth < _level.depth:
            urlpatterns.append(path(f"{p}/<str:public_id>/{_ancestor.value.lower()}",
                                    ParentApi.as_view(level=_level, ancestor=_ancestor)))
    if _level is not Level.INSTANCE:
        urlpatterns += [
            path(f"{p}/<str:public_id>/shared-tags", SharedTagsApi.as_view(level=_level)),
            path(f"{p}/<str:public_id>/instances-tags", InstancesTagsApi.as_view(level=_level)),
        ]

urlpatterns += [
    path("studies/<str:public_id>/module-patient", ModuleApi.as_view(level=Level.STUDY, module_level=Level.PATIENT)),
    path("series/<str:public_id>/ordered-slices", OrderedSlicesApi.as_view(level=Level.SERIES)),
    path("instances/<str:public_id>/tags", InstanceTagsApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/simplified-tags", SimplifiedTagsApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/header", InstanceHeaderApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/file", InstanceFileApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/export", InstanceExportApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames", InstanceFramesApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/content", InstanceContentApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/content/<path:subpath>", InstanceContentApi.as_view(level=Level.INSTANCE)),
]
