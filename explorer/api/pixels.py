"""Images of instances: preview, rendered, image-uint8/16/int16, matlab, numpy, raw frames, pdf.

Orthanc answers these routes in two ways, and clients see the difference:
- the image routes (preview, image-*, rendered) catch every error after the instance is found: a bad argument
  or a frame string that is not a number is a bare 404, anything that cannot be decoded or encoded a bare 415
  (or, with ``returnUnsupportedImage``, a redirection to Orthanc Explorer's "unsupported" picture);
- matlab, numpy, raw and pdf let errors through as Orthanc's JSON error body.
Instances never change, so answers carry an ETag (the instance and the request) and may be cached for a day;
Orthanc sends neither, clients that ignore them lose nothing.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

from archive import pixels, selectors
from archive.dicom import decode, render
from archive.dicom.decode import CannotDecode
from archive.dicom.render import Mode
from archive.dicom.slices import ordered_slices
from archive.errors import ArchiveError, BadRequest, NotImplementedYet, ParameterOutOfRange, UnknownResource
from archive.levels import Level
from explorer.api.base import OrthancView
from explorer.api.params import boolean_argument
from explorer.api.rendering import bare_response, json_response

PNG, JPEG, PAM = pixels.PNG, pixels.JPEG, pixels.PAM
CACHE_CONTROL = "private, max-age=86400"
FRAME_CHILDREN = ["image-int16", "image-uint16", "image-uint8", "matlab", "numpy", "preview", "raw", "raw.gz",
                  "rendered"]


class _NoAnswer(Exception):
    """The handler answers nothing: Orthanc's bare 404."""


class _Unsupported(Exception):
    """A bare 415 (or the redirection of returnUnsupportedImage)."""


def accepted_image_type(accept: str | None) -> str | None:
    """Orthanc's content negotiation among PNG, JPEG and PAM (HttpContentNegociation): the most specific
    media range wins, then the highest q, then the first found; None when nothing matches. A bad q value
    raises _Unsupported (Orthanc's BadRequest inside the image handler)."""
    best: tuple[int, float] | None = None
    chosen: str | None = None
    for item in (accept or "*/*").split(","):
        parts = [p.strip() for p in item.split(";")]
        kind = parts[0]
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    raise _Unsupported() from None
                if not 0.0 <= q <= 1.0:
                    raise _Unsupported()
        main, _, sub = kind.partition("/")
        main, sub = main.strip(), sub.strip()
        if main == "*" and sub == "*":
            candidates, level = [PNG, JPEG, PAM], 0
        elif main == "image" and sub == "*":
            candidates, level = [PNG, JPEG, PAM], 1
        elif f"{main}/{sub}" in (PNG, JPEG, PAM):
            candidates, level = [f"{main}/{sub}"], 2
        else:
            continue
        for candidate in candidates:
            if best is None or (level, q) > best:
                best, chosen = (level, q), candidate
    return chosen


def _frame_number(text: str) -> int:
    """boost::lexical_cast<unsigned int>: digits only (a leading '-' wraps around, so it is out of range)."""
    if text.isdigit():
        return int(text)
    if text.startswith("-") and text[1:].isdigit():
        return 1 << 32  # beyond any frame count
    raise _NoAnswer()


def _int_argument(request, name: str) -> int:
    value = request.GET.get(name)
    if value is None:
        return 0
    if not value.isdigit():
        raise _NoAnswer()  # not a number, or negative: ParameterOutOfRange in Orthanc's handler, a bare 404
    return int(value)


def _float_argument(request, name: str) -> float | None:
    value = request.GET.get(name)
    if value is None:
        return None
    try:
        return float(value.replace(" ", ""))
    except ValueError:
        raise _NoAnswer() from None


def _smooth(request) -> bool:
    value = request.GET.get("smooth")
    if value is None:
        return False
    value = value.strip()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise _Unsupported()


def _quality(request) -> int:
    value = request.GET.get("quality", "90")
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise _Unsupported()
    return int(value)


def _etag(request, stored: str) -> str:
    digest = hashlib.sha1(f"{stored}|{request.get_full_path()}|{request.META.get('HTTP_ACCEPT', '')}".encode())
    return f'"{digest.hexdigest()}"'


def _image_request(request, frame: int, mode: Mode) -> pixels.ImageRequest:
    """The route's arguments, with Orthanc's answers to bad ones (_NoAnswer: 404, _Unsupported: 415)."""
    quality = _quality(request)
    content_type = accepted_image_type(request.META.get("HTTP_ACCEPT"))
    if content_type is None:
        raise _NoAnswer()
    if mode is not Mode.RENDERED:
        return pixels.ImageRequest(frame=frame, mode=mode, content_type=content_type, quality=quality)
    return pixels.ImageRequest(
        frame=frame, mode=mode, content_type=content_type, quality=quality,
        window_center=_float_argument(request, "window-center"), window_width=_float_argument(request, "window-width"),
        width=_int_argument(request, "width"), height=_int_argument(request, "height"), smooth=_smooth(request))


def _image_answer(request, public_id: str, frame_text: str, mode: Mode) -> HttpResponse:
    try:
        stored = pixels.stored_file(public_id=public_id)
    except UnknownResource:
        return bare_response(404)
    try:
        frame = _frame_number(frame_text)
        etag = _etag(request, stored.uuid)
        if request.META.get("HTTP_IF_NONE_MATCH") == etag:
            return bare_response(304, ETag=etag)
        try:
            wanted = _image_request(request, frame, mode)
        except (_NoAnswer, _Unsupported):
            # Orthanc decodes before it reads the arguments: an undecodable frame answers 415 first.
            pixels.frame_check(stored=stored, frame=frame)
            raise
        body = pixels.frame_image(stored=stored, request=wanted)
    except (_NoAnswer, pixels.NoSuchFrame, pixels.NotAcceptable):
        return bare_response(404)
    except (_Unsupported, pixels.ImageRefused):
        if _return_unsupported_image(request):
            depth = request.path_info.strip("/").count("/")
            return bare_response(301, Location="../" * depth + "app/images/unsupported.png")
        return bare_response(415)
    response = HttpResponse(body, content_type=wanted.content_type)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _return_unsupported_image(request) -> bool:
    if "returnUnsupportedImage" not in request.GET:
        return False
    return request.GET["returnUnsupportedImage"].strip().lower() not in ("false", "0")


class ImageApi(OrthancView):
    mode: Mode = Mode.PREVIEW

    def get(self, request, public_id: str, frame: str = "0"):
        return _image_answer(request, public_id, frame, self.mode)


class FrameChildrenApi(OrthancView):
    """GET /instances/{id}/frames/{n}: Orthanc lists the routes below a frame, whatever the id and frame."""

    def get(self, request, public_id: str, frame: str):
        return json_response(FRAME_CHILDREN)


def _stored(public_id: str) -> pixels.StoredFile:
    return pixels.stored_file(public_id=public_id)


class MatlabApi(OrthancView):
    def get(self, request, public_id: str, frame: str = "0"):
        stored = _stored(public_id)
        try:
            number = _frame_number(frame)
        except _NoAnswer:
            return bare_response(404)
        decoded, _ = pixels.frame_decoded(stored=stored, frame=number)
        text = render.matlab_text(decoded)
        return HttpResponse(text, content_type="text/plain")


def _numpy_frames(stored: pixels.StoredFile, frames: range) -> list[render.NumpyFrame]:
    out = []
    for frame in frames:
        decoded, ds = pixels.frame_decoded(stored=stored, frame=frame)
        window = render.default_windowing(ds, frame)
        out.append(render.NumpyFrame(decoded, slope=window.slope, intercept=window.intercept))
    return out


NUMPY_CHUNK = 1 << 20


def _numpy_response(frames: list[render.NumpyFrame], *, rescale: bool, stacked: bool,
                    compress: bool) -> HttpResponse | StreamingHttpResponse:
    try:
        npy = render.numpy_file(frames, rescale=rescale, stacked=stacked)
    except CannotDecode as exc:
        raise NotImplementedYet(exc.details) from None
    if compress:
        return HttpResponse(render.numpy_compressed(npy), content_type="application/octet-stream")
    # Streamed from the one buffer, a megabyte at a time: no second copy of a hundred-megabyte volume.
    view = memoryview(npy)
    response = StreamingHttpResponse((view[i:i + NUMPY_CHUNK] for i in range(0, len(view), NUMPY_CHUNK)),
                                     content_type="application/octet-stream")
    response["Content-Length"] = str(len(view))
    return response


class NumpyFrameApi(OrthancView):
    def get(self, request, public_id: str, frame: str):
        stored = _stored(public_id)
        if not frame.strip().isdigit():
            # real Orthanc 1.10.1: "Parameter out of range" (3) with this text, for "abc" and "-1" alike
            raise ParameterOutOfRange('Expected an unsigned integer for the "frame" argument')
        compress, rescale = boolean_argument(request, "compress", False), boolean_argument(request, "rescale", True)
        frames = _numpy_frames(stored, range(int(frame.strip()), int(frame.strip()) + 1))
        return _numpy_response(frames, rescale=rescale, stacked=False, compress=compress)


class NumpyInstanceApi(OrthancView):
    def get(self, request, public_id: str):
        stored = _stored(public_id)
        compress, rescale = boolean_argument(request, "compress", False), boolean_argument(request, "rescale", True)
        ds = pixels.pixel_dataset(stored=stored)
        count = decode.frames_count(ds)
        if count == 0:
            raise ArchiveError("Empty DICOM instance", orthanc_error=BadRequest.orthanc_error)
        return _numpy_response(_numpy_frames(stored, range(count)), rescale=rescale, stacked=True,
                               compress=compress)


class NumpySeriesApi(OrthancView):
    def get(self, request, public_id: str):
        series = selectors.resource_get(level=Level.SERIES, public_id=public_id)
        compress, rescale = boolean_argument(request, "compress", False), boolean_argument(request, "rescale", True)
        instances = selectors.resource_descendants(resource=series, level=Level.INSTANCE)
        files = pixels.stored_files(instances=instances)
        stored = {i.public_id: files[i.id] for i in instances if i.id in files}
        datasets = [(pid, pixels.pixel_dataset(stored=f)) for pid, f in stored.items()]
        frames = []
        for pid, first, count in ordered_slices(datasets)["SlicesShort"]:
            frames += _numpy_frames(stored[pid], range(first, first + count))
        return _numpy_response(frames, rescale=rescale, stacked=True, compress=compress)


class RawFrameApi(OrthancView):
    compressed = False

    def get(self, request, public_id: str, frame: str):
        stored = _stored(public_id)
        try:
            number = _frame_number(frame)
        except _NoAnswer:
            return bare_response(404)
        ds = pixels.pixel_dataset(stored=stored)
        data, content_type = decode.frame_raw(ds, number)
        if self.compressed:
            return HttpResponse(gzip.compress(data, compresslevel=6, mtime=0), content_type="application/gzip")
        return HttpResponse(data, content_type=content_type)


PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


class PdfApi(OrthancView):
    def get(self, request, public_id: str):
        stored = _stored(public_id)
        ds = pixels.pixel_dataset(stored=stored)
        document = ds.get("EncapsulatedDocument")
        if (str(ds.get("SOPClassUID", "")) != PDF_STORAGE or document is None
                or str(ds.get("MIMETypeOfEncapsulatedDocument", "")).strip() != "application/pdf"):
            return bare_response(404)
        data = bytes(document)
        if data and data[-1:] not in (b"\n", b"\r"):
            data = data[:-1]  # the padding byte of an odd-length document (Orthanc drops one byte)
        return HttpResponse(data, content_type="application/pdf")


@functools.cache
def unsupported_png() -> bytes:
    """The picture of an image that cannot be shown: mid-grey, a white ring crossed out (drawn once, in memory)."""
    from PIL import Image, ImageDraw

    size = 256
    image = Image.new("L", (size, size), 64)
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 48, size - 48, size - 48), outline=200, width=14)
    draw.line((84, size - 84, size - 84, 84), fill=200, width=14)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


class UnsupportedImageApi(OrthancView):
    """GET /app/images/unsupported.png: where ?returnUnsupportedImage redirects (Orthanc serves it with its
    explorer; a client following the redirection got our 404)."""

    def get(self, request):
        response = HttpResponse(unsupported_png(), content_type="image/png")
        response["Cache-Control"] = CACHE_CONTROL
        return response


urlpatterns = [
    path("app/images/unsupported.png", UnsupportedImageApi.as_view()),
    path("series/<str:public_id>/numpy", NumpySeriesApi.as_view(level=Level.SERIES)),
    path("instances/<str:public_id>/numpy", NumpyInstanceApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/pdf", PdfApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/matlab", MatlabApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames/<str:frame>", FrameChildrenApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames/<str:frame>/matlab", MatlabApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames/<str:frame>/numpy", NumpyFrameApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames/<str:frame>/raw", RawFrameApi.as_view(level=Level.INSTANCE)),
    path("instances/<str:public_id>/frames/<str:frame>/raw.gz",
         RawFrameApi.as_view(level=Level.INSTANCE, compressed=True)),
]
for _mode in Mode:
    urlpatterns += [
        path(f"instances/<str:public_id>/{_mode.value}", ImageApi.as_view(level=Level.INSTANCE, mode=_mode)),
        path(f"instances/<str:public_id>/frames/<str:frame>/{_mode.value}",
             ImageApi.as_view(level=Level.INSTANCE, mode=_mode)),
    ]
