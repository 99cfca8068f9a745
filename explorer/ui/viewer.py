"""The viewer (issue 8, part 2): one page, the slices of a series, and a frame's decoded pixels.

Window/level is applied in the browser (static/ui/viewer.js) on the stored values, so the server sends each
frame once, decoded but not windowed: little-endian samples (uint8, uint16, int16, uint32 for grey, RGB bytes for
colour) with what the browser needs to window them in one ``X-Viewer-Frame`` header (JSON: size, type, rescale,
the file's windows, MONOCHROME1, min/max). PNG would need a decoder in JavaScript to keep 16 bits
(createImageBitmap stops at 8) and /raw is still compressed for JPEG & co, so this route decodes on the server
with archive.pixels (the cached decoder the image routes use) and sends bytes a typed array reads as they are.

The slice order comes from the index (instance main tags: ImagePositionPatient, ImageOrientationPatient,
InstanceNumber, NumberOfFrames), as Orthanc's SliceOrdering sorts, without opening a file: the first image
only waits for its own frame.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET
from pydicom.dataset import Dataset

from archive import pixels, selectors
from archive.dicom import decode
from archive.dicom import render as dicom_render
from archive.dicom.decode import DecodedFrame, PixelFormat
from archive.errors import ArchiveError, BadRequest
from archive.levels import Level
from archive.models import Resource
from explorer.ui import browser
from explorer.ui.errors import ui_errors
from explorer.ui.reading import dicom_date, dicom_time, person_name

LAYOUTS = {"1x1": 1, "1x2": 2, "2x2": 4}
PIXELS_URL = "/ui/viewer/instances/{id}/frames/{frame}/pixels"
CACHE_CONTROL = "private, max-age=86400"   # instances never change; a new file is a new attachment
MAX_EXPLANATION = 64


# --- slices of a series, from the index ----------------------------------------------------------------

def _floats(value: object, n: int) -> list[float] | None:
    if not isinstance(value, str):
        return None
    try:
        out = [float(x) for x in value.split("\\")]
    except ValueError:
        return None
    return out if len(out) == n else None


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def slices_ordered(instances: list[tuple[str, dict, int | None]]) -> list[dict]:
    """(public_id, main_tags, index_in_series) of a series' instances as the viewer's slices: one per frame,
    ``{"i": instance, "f": frame, "n": frames of the instance, "pos": distance along the normal or None}``.

    Sorted as Orthanc's SliceOrdering: along the normal of a common orientation when every instance has a
    position and the positions differ (in the direction the instance numbers go), else by InstanceNumber (then
    the index in the series)."""
    rows = []
    for public_id, tags, index in instances:
        rows.append((public_id, _floats(tags.get("ImagePositionPatient"), 3),
                     _floats(tags.get("ImageOrientationPatient"), 6), _int(tags.get("InstanceNumber")),
                     index, max(_int(tags.get("NumberOfFrames")) or 1, 1)))
    orientations = {tuple(round(c, 4) for c in o) for _, _, o, _, _, _ in rows if o is not None}
    distance: dict[str, float] = {}
    if rows and len(orientations) == 1 and all(p is not None and o is not None for _, p, o, _, _, _ in rows):
        ax, ay, az, bx, by, bz = rows[0][2]
        normal = (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)
        distance = {pid: sum(a * b for a, b in zip(normal, p, strict=True)) for pid, p, _, _, _, _ in rows}
    if distance and len({round(d, 6) for d in distance.values()}) == len(distance):
        rows.sort(key=lambda r: (distance[r[0]], r[0]))
        if rows[0][3] is not None and rows[-1][3] is not None and rows[0][3] > rows[-1][3]:
            rows.reverse()   # the scanner's direction (image 1 first), as the thumbnails are numbered
    else:
        big = 1 << 30
        rows.sort(key=lambda r: (r[3] if r[3] is not None else big, r[4] if r[4] is not None else big, r[0]))
    out = []
    for public_id, _, _, _, _, frames in rows:
        pos = distance.get(public_id)
        for frame in range(frames):
            out.append({"i": public_id, "f": frame, "n": frames, "pos": None if pos is None else round(pos, 3)})
    return out


def series_slices(*, series: Resource) -> list[dict]:
    """The viewer's slices of ``series`` in one query."""
    instances = list(Resource.objects.filter(parent_id=series.id)
                     .values_list("public_id", "main_tags", "index_in_series"))
    return slices_ordered(instances)


# --- the page ------------------------------------------------------------------------------------------

@dataclass
class ViewerPage:
    study: Resource
    series: list[browser.SeriesRow]     # the study's series, in the study page's order
    selected: list[str]                 # public IDs, one per viewport of the layout
    layout: str
    config: dict                        # for viewer.js, through json_script (never markup)
    first_frame: str                    # URL of the first image's pixels, preloaded


def _overlay(study: Resource, row: browser.SeriesRow) -> dict:
    """The overlay's text of a series: plain strings, set with textContent by the browser."""
    st, se = study.main_tags, row.series.main_tags
    sex = st.get("PatientSex", "")
    return {
        "patient": person_name(st.get("PatientName")), "patientId": st.get("PatientID", ""),
        "birth": " ".join(x for x in (dicom_date(st.get("PatientBirthDate")), sex) if x),
        "study": st.get("StudyDescription", ""),
        "date": " ".join(x for x in (dicom_date(st.get("StudyDate")), dicom_time(st.get("StudyTime")))
                         if x),
        "accession": f"Acc. {st['AccessionNumber']}" if st.get("AccessionNumber") else "",
        "series": " ".join(x for x in (se.get("Modality", ""), f"#{se['SeriesNumber']}" if se.get("SeriesNumber")
                                       else "", se.get("SeriesDescription", "")) if x),
    }


def viewer_page(*, series_ids: list[str], layout: str) -> ViewerPage:
    """The viewer on ``series_ids`` (the first one's study gives the choice of series); as many viewports as
    ``layout`` has, the empty ones filled with the study's next series."""
    if not series_ids:
        raise BadRequest("No series to view")
    first = selectors.resource_get(level=Level.SERIES, public_id=series_ids[0])
    study = Resource.objects.select_related("parent").get(id=first.parent_id)
    rows = browser.series_rows(sorted(Resource.objects.filter(parent_id=study.id), key=browser._series_key))
    # Only series with images are offered (a report or a PDF has nothing to show here); a series without
    # any asked for by name stays, and its viewport says it has no images
    rows = [r for r in rows if r.has_images or r.series.public_id in series_ids]
    known = {r.series.public_id: r for r in rows}
    layout = layout if layout in LAYOUTS else "1x1"
    chosen = [sid for sid in series_ids if sid in known][:4]
    with_images = [r.series.public_id for r in rows if r.has_images] or [first.public_id]
    for sid in with_images * 4:
        if len(chosen) >= LAYOUTS[layout]:
            break
        if sid not in chosen or len(chosen) >= len(with_images):
            chosen.append(sid)
    slices = {sid: series_slices(series=known[sid].series) if known[sid].has_images else []
              for sid in dict.fromkeys(chosen)}
    config = {
        "layout": layout,
        "selected": chosen,
        "series": {r.series.public_id: {"label": r.label, "overlay": _overlay(study, r),
                                        "modality": r.series.main_tags.get("Modality", "")} for r in rows},
        "slices": slices,
        "slicesUrl": "/ui/viewer/series/{id}/slices",
        "pixelsUrl": PIXELS_URL,
    }
    # The first image is fetched while the page's scripts load (<link rel=preload>): the slice viewer.js
    # starts on, by the same rule.
    first = slices[chosen[0]]
    first_frame = ""
    if first:
        start = first[start_index(first)]
        first_frame = PIXELS_URL.replace("{id}", start["i"]).replace("{frame}", str(start["f"]))
    return ViewerPage(study=study, series=rows, selected=chosen, layout=layout, config=config,
                      first_frame=first_frame)


def start_index(slices: list[dict]) -> int:
    """The slice a viewport opens on: the middle one, but the first frame of a cine (one multi-frame
    instance). viewer.js' setSeries applies the same rule."""
    if slices and slices[0]["n"] > 1 and len(slices) == slices[0]["n"]:
        return 0
    return len(slices) // 2


@require_GET
@csrf_protect
@ui_errors
def viewer(request: HttpRequest) -> HttpResponse:
    ids = [s for s in request.GET.getlist("series") if s][:4]
    view = viewer_page(series_ids=ids, layout=request.GET.get("layout", "1x1"))
    first = next((r for r in view.series if r.series.public_id == view.selected[0]), None)
    return render(request, "ui/viewer.html", {"view": view, "first": first, "viewports": range(4),
                                              "layouts": list(LAYOUTS)})


@require_GET
@ui_errors
def series_slices_json(request: HttpRequest, public_id: str) -> HttpResponse:
    series = selectors.resource_get(level=Level.SERIES, public_id=public_id)
    return JsonResponse({"slices": series_slices(series=series)})


# --- a frame's pixels ----------------------------------------------------------------------------------

def _first_float(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None   # type: ignore[arg-type, index]
    try:
        return float(value)   # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _many(value: object) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)   # type: ignore[call-overload]
    return [value]


def _functional_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """``sequence``'s item for ``frame`` in the per-frame groups, else in the shared groups (PS3.3 C.7.6.16)."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items and index < len(items):
            inner = items[index].get(sequence)
            if inner:
                return inner[0]
    return None


def file_windows(ds: Dataset, frame: int) -> list[list]:
    """The file's VOI windows for ``frame`` as [center, width, explanation]: every value of the top-level
    WindowCenter/WindowWidth (PS3.3 C.11.2: paired by position, with WindowCenterWidthExplanation), else the
    frame's FrameVOILUTSequence (C.7.6.16.2.10)."""
    source: Dataset | None = ds if "WindowCenter" in ds and "WindowWidth" in ds else \
        _functional_item(ds, frame, "FrameVOILUTSequence")
    if source is None:
        return []
    centers, widths = _many(source.get("WindowCenter")), _many(source.get("WindowWidth"))
    explanations = _many(source.get("WindowCenterWidthExplanation"))
    out = []
    for k, (center, width) in enumerate(zip(centers, widths, strict=False)):
        c, w = _first_float(center), _first_float(width)
        if c is None or w is None or w <= 0:
            continue
        text = str(explanations[k]) if k < len(explanations) else ""
        out.append([c, w, text[:MAX_EXPLANATION]])
    return out


def frame_rescale(ds: Dataset, frame: int) -> tuple[float, float]:
    """Slope and intercept as Orthanc's GetRescale, then the shared functional groups (enhanced objects)."""
    windowing = dicom_render.default_windowing(ds, frame)
    if (windowing.slope, windowing.intercept) == (1.0, 0.0):
        item = _functional_item(ds, frame, "PixelValueTransformationSequence")
        if item is not None:
            s, i = _first_float(item.get("RescaleSlope")), _first_float(item.get("RescaleIntercept"))
            if s is not None and i is not None:
                return s, i
    return windowing.slope, windowing.intercept


def _frame_ms(ds: Dataset) -> float | None:
    """The cine interval of a multi-frame instance: FrameTime, else 1000 / (Recommended display or cine rate)."""
    frame_time = _first_float(ds.get("FrameTime"))
    if frame_time and frame_time > 0:
        return frame_time
    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        rate = _first_float(ds.get(keyword))
        if rate and rate > 0:
            return 1000.0 / rate
    return None


DTYPES = {PixelFormat.GRAYSCALE8: "uint8", PixelFormat.GRAYSCALE16: "uint16",
          PixelFormat.SIGNED_GRAYSCALE16: "int16", PixelFormat.GRAYSCALE32: "uint32"}


def frame_payload(decoded: DecodedFrame, ds: Dataset, frame: int) -> tuple[bytes, dict]:
    """The bytes the browser windows (little-endian samples, or RGB) and their description."""
    info: dict = {"rows": decoded.height, "columns": decoded.width, "frames": decode.frames_count(ds),
                  "frameMs": _frame_ms(ds)}
    spacing = _many(ds.get("PixelSpacing"))
    if len(spacing) == 2:
        info["spacing"] = [_first_float(spacing[0]), _first_float(spacing[1])]
    if decoded.format.is_color:
        data = decoded.pixels if decoded.format is PixelFormat.RGB24 else (decoded.pixels >> 8).astype(np.uint8)
        info["dtype"] = "rgb8"
        return np.ascontiguousarray(data).tobytes(), info
    slope, intercept = frame_rescale(ds, frame)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    data = decoded.pixels
    info.update(dtype=DTYPES[decoded.format], slope=slope, intercept=intercept, monochrome1=photometric ==
                "MONOCHROME1", min=int(data.min()), max=int(data.max()), windows=file_windows(ds, frame))
    return np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes(), info


@require_GET
@ui_errors
def frame_pixels(request: HttpRequest, public_id: str, frame: int) -> HttpResponse:
    """The decoded frame for the viewer (see the module docstring). 404 unknown instance or frame, 415 cannot
    decode (the viewer says so in the viewport)."""
    stored = pixels.stored_file(public_id=public_id)
    etag = '"' + hashlib.sha1(f"viewer|{stored.uuid}|{frame}".encode()).hexdigest() + '"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        try:
            decoded, ds = pixels.frame_decoded(stored=stored, frame=frame)
        except decode.CannotDecode as exc:   # whatever Orthanc's error code (NotImplemented, BadFileFormat)
            return HttpResponse(exc.details or "", status=415, content_type="text/plain")
        except ArchiveError as exc:          # ParameterOutOfRange (404)
            return HttpResponse(exc.details or "", status=exc.http_status, content_type="text/plain")
        body, info = frame_payload(decoded, ds, frame)
        response = HttpResponse(body, content_type="application/octet-stream")
        response["X-Viewer-Frame"] = json.dumps(info, separators=(",", ":"))
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response
