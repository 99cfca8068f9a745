"""The viewer end to end (explorer/ui/viewer.py, static/ui/viewer.js): a real server, Debian's Chromium.

Window/level happens in the browser, so the tests read the canvas' pixels back; the viewport's state (slice
index, window, scale) is mirrored on the stage's data attributes, which the tests read too."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import requests

from explorer.ui.viewer import slices_ordered
from tests.dicom_factory import make_dicom
from tests.explorer.ui.conftest import axe_violations, shot
from tests.live import live_server
from tests.samples import sample_path

STUDY = "1.2.88.1"
CT_SLICES = 12
MF_FRAMES = 8
SIZE = 64
STAGE = ".viewport:not([hidden]) .vp-stage"



def _ct_slice(k: int) -> bytes:
    """A 64x64 CT slice: air (-1000 HU) around a disc of 100 HU, a bone-bright square (1000 HU) whose place
    depends on the slice, so that every slice looks different."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2, 1024 + 100, 24).astype(np.int16)
    x = 8 + 3 * k
    img[8:16, x:x + 6] = 1024 + 1000
    return make_dicom(PatientName="VIEW^ER", PatientID="V-1", StudyInstanceUID=STUDY, SeriesInstanceUID=f"{STUDY}.1",
                      SeriesNumber="1", SeriesDescription="CT AXIAL", StudyDescription="CT VIEWER",
                      InstanceNumber=str(k + 1), ImagePositionPatient=[0, 0, -2.5 * k], SliceLocation=-2.5 * k,
                      Rows=SIZE, Columns=SIZE, PixelRepresentation=1, RescaleIntercept="-1024", RescaleSlope="1",
                      WindowCenter="40", WindowWidth="400", PixelData=img.astype("<i2").tobytes())


def _multiframe() -> bytes:
    """Eight 32x32 16-bit frames: a ramp, and a bright bar on a row that moves with the frame."""
    frames = []
    for k in range(MF_FRAMES):
        img = np.tile(np.linspace(0, 1000, 32, dtype=np.uint16), (32, 1))
        img[4 * k:4 * k + 3, :] = 4000
        frames.append(img)
    return make_dicom(PatientName="VIEW^ER", PatientID="V-1", StudyInstanceUID=STUDY, SeriesInstanceUID=f"{STUDY}.2",
                      SeriesNumber="2", SeriesDescription="CINE", Modality="XA",
                      SOPClassUID="1.2.840.10008.5.1.4.1.1.7.3", NumberOfFrames=str(MF_FRAMES), FrameTime="100",
                      Rows=32, Columns=32, WindowCenter="2000", WindowWidth="4000",
                      PixelData=np.stack(frames).astype("<u2").tobytes())


def _colour() -> bytes:
    """32x32 RGB: red, green, blue and white quadrants."""
    img = np.zeros((32, 32, 3), dtype=np.uint8)
    img[:16, :16] = (255, 0, 0)
    img[:16, 16:] = (0, 255, 0)
    img[16:, :16] = (0, 0, 255)
    img[16:, 16:] = (255, 255, 255)
    return make_dicom(PatientName="VIEW^ER", PatientID="V-1", StudyInstanceUID=STUDY, SeriesInstanceUID=f"{STUDY}.3",
                      SeriesNumber="3", SeriesDescription="COLOUR", Modality="OT",
                      SOPClassUID="1.2.840.10008.5.1.4.1.1.7", Rows=32, Columns=32, SamplesPerPixel=3,
                      PhotometricInterpretation="RGB", PlanarConfiguration=0, BitsAllocated=8, BitsStored=8,
                      HighBit=7, PixelRepresentation=0, PixelData=img.tobytes())


def _segmentation() -> bytes:
    """A segmentation-like multi-frame without window tags: an empty first frame, then a 255 square."""
    frames = np.zeros((3, 32, 32), dtype=np.uint8)
    frames[1, 8:24, 8:24] = 255
    return make_dicom(PatientName="VIEW^SEG", PatientID="V-2", StudyInstanceUID=f"{STUDY}9",
                      SeriesInstanceUID=f"{STUDY}9.1", Modality="SEG", SOPClassUID="1.2.840.10008.5.1.4.1.1.66.4",
                      NumberOfFrames="3", Rows=32, Columns=32, BitsAllocated=8, BitsStored=8, HighBit=7,
                      ImagePositionPatient=None, ImageOrientationPatient=None, PixelData=frames.tobytes())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("viewer")) as s:
        order = [5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6]   # stored out of order: the viewer sorts by position
        s.ct = [s.upload(_ct_slice(k)) for k in order][0]["ParentSeries"]
        s.mf = s.upload(_multiframe())
        s.colour = s.upload(_colour())["ParentSeries"]
        s.seg = s.upload(_segmentation())["ParentSeries"]
        yield s


# --- helpers -------------------------------------------------------------------------------------------

def _open(page, server, query: str) -> None:
    page.goto(server.url + "/ui/viewer?" + query)
    _wait_ready(page)


def _wait_ready(page, n: int = 0) -> None:
    page.wait_for_function(f"document.querySelectorAll({STAGE!r})[{n}].dataset.ready === 'true'")


def _state(page, n: int = 0) -> dict:
    return page.evaluate(f"Object.assign({{}}, document.querySelectorAll({STAGE!r})[{n}].dataset)")


def _wait_state(page, name: str, value: str, n: int = 0) -> None:
    page.wait_for_function(f"(() => {{ const d = document.querySelectorAll({STAGE!r})[{n}].dataset;"
                           f" return d.{name} === {json.dumps(value)} && d.ready === 'true'; }})()")


def _pixel(page, fx: float = 0.5, fy: float = 0.5, n: int = 0) -> list[int]:
    """The RGBA of the canvas at a fraction of its size."""
    return page.evaluate(f"""(() => {{ const c = document.querySelectorAll({STAGE!r})[{n}].querySelector('canvas');
        const x = Math.floor(c.width * {fx}), y = Math.floor(c.height * {fy});
        return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data); }})()""")


def _digest(page, n: int = 0) -> int:
    """A checksum of the whole canvas: different images, different sums."""
    return page.evaluate(f"""(() => {{ const c = document.querySelectorAll({STAGE!r})[{n}].querySelector('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let h = 0; for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) >>> 0;
        return h; }})()""")


def _stage_box(page, n: int = 0) -> dict:
    return page.locator(STAGE).nth(n).bounding_box()


def _no_serious_axe(page) -> None:
    violations = axe_violations(page)
    assert violations == [], violations


# --- the routes ------------------------------------------------------------------------------------------

def test_slices_follow_the_geometry_then_the_instance_number():
    tags = [("a", {"ImagePositionPatient": "0\\0\\-5", "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
                   "InstanceNumber": "1"}, 0),
            ("b", {"ImagePositionPatient": "0\\0\\5", "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
                   "InstanceNumber": "2"}, 1),
            ("c", {"ImagePositionPatient": "0\\0\\0", "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
                   "InstanceNumber": "3", "NumberOfFrames": "2"}, 2)]
    assert [(s["i"], s["f"]) for s in slices_ordered(tags)] == [("a", 0), ("c", 0), ("c", 1), ("b", 0)]
    no_geometry = [(pid, {"InstanceNumber": t["InstanceNumber"]}, i) for pid, t, i in reversed(tags)]
    assert [s["i"] for s in slices_ordered(no_geometry)] == ["a", "b", "c"]
    # along the normal, in the direction the instance numbers go
    reversed_numbers = [(pid, {**t, "InstanceNumber": str(10 - int(t["InstanceNumber"]))}, i) for pid, t, i in tags]
    assert [s["i"] for s in slices_ordered(reversed_numbers)] == ["b", "c", "c", "a"]


def test_pixels_route_answers_the_stored_values_and_their_description(server):
    first = requests.get(server.url + f"/ui/viewer/series/{server.ct}/slices", timeout=10).json()["slices"][0]
    answer = requests.get(server.url + f"/ui/viewer/instances/{first['i']}/frames/0/pixels", timeout=10)
    assert answer.status_code == 200
    info = json.loads(answer.headers["X-Viewer-Frame"])
    assert (info["rows"], info["columns"], info["dtype"]) == (SIZE, SIZE, "int16")
    assert (info["slope"], info["intercept"], info["windows"]) == (1.0, -1024.0, [[40.0, 400.0, ""]])
    pixels = np.frombuffer(answer.content, dtype="<i2").reshape(SIZE, SIZE)
    assert pixels[32, 32] == 1124 and (info["min"], info["max"]) == (24, 2024)
    again = requests.get(answer.url, headers={"If-None-Match": answer.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    assert requests.get(server.url + f"/ui/viewer/instances/{first['i']}/frames/3/pixels",
                        timeout=10).status_code in (400, 404)
    assert requests.get(server.url + "/ui/viewer/instances/nope/frames/0/pixels", timeout=10).status_code == 404


def test_viewer_page_refuses_no_series_and_unknown_ones(server):
    assert requests.get(server.url + "/ui/viewer", timeout=10).status_code == 400
    unknown = requests.get(server.url + "/ui/viewer?series=nope", timeout=10)
    assert unknown.status_code == 404 and "<h1" in unknown.text          # the UI's error page, not JSON


# --- the viewer in the browser ---------------------------------------------------------------------------

def test_open_series_from_its_page(server, page):
    page.goto(server.url + f"/ui/series/{server.ct}")
    page.get_by_role("link", name="Open in viewer").click()
    page.wait_for_url(re.compile(r"/ui/viewer\?series="))
    _wait_ready(page)
    state = _state(page)
    assert state["count"] == str(CT_SLICES) and state["index"] == str(CT_SLICES // 2)
    overlay = page.locator(".viewport:not([hidden]) .overlay").inner_text()
    assert "VIEW, ER" in overlay and "CT VIEWER" in overlay and "CT #1 CT AXIAL" in overlay
    assert f"Image {CT_SLICES // 2 + 1}/{CT_SLICES}" in overlay and "Position" in overlay
    assert "W 400 L 40" in overlay
    assert "2024-01-02 10:10:10" in overlay and "Acc. A1" in overlay     # study date and time, accession apart
    r, g, b, _ = _pixel(page)
    assert r == g == b and 150 <= r <= 180          # 100 HU in W 400 L 40
    assert _pixel(page, 0.02, 0.5)[:3] == [0, 0, 0]  # the black around the image
    page.wait_for_function(f"document.querySelector({STAGE!r}).dataset.loaded === '{CT_SLICES}'")  # prefetched
    _no_serious_axe(page)


def test_wheel_keyboard_and_slider_change_the_slice(server, page):
    _open(page, server, f"series={server.ct}")
    middle = CT_SLICES // 2
    before = _digest(page)
    box = _stage_box(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 100)
    _wait_state(page, "index", str(middle + 1))
    assert _digest(page) != before
    page.mouse.wheel(0, -100)
    page.mouse.wheel(0, -100)
    _wait_state(page, "index", str(middle - 1))
    page.locator(STAGE).focus()
    page.keyboard.press("ArrowDown")
    _wait_state(page, "index", str(middle))
    page.keyboard.press("End")
    _wait_state(page, "index", str(CT_SLICES - 1))
    page.keyboard.press("Home")
    _wait_state(page, "index", "0")
    page.keyboard.press("PageDown")
    _wait_state(page, "index", "10")
    slider = page.get_by_label("Slice of viewport 1")
    slider.fill("3")
    _wait_state(page, "index", "2")
    assert page.locator(".viewport:not([hidden]) .vp-count").inner_text() == f"3 / {CT_SLICES}"
    assert "Position -5.00 mm" in page.locator(".viewport:not([hidden]) .overlay").inner_text()


def test_window_level_drag_changes_pixels_in_the_browser(server, page):
    _open(page, server, f"series={server.ct}")
    page.wait_for_function(f"document.querySelector({STAGE!r}).dataset.loaded === '{CT_SLICES}'")
    requests_before = page.evaluate("performance.getEntriesByType('resource').length")
    grey = _pixel(page)[0]
    box = _stage_box(page)
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 200, y - 60, steps=10)   # wider window, lower level
    page.mouse.up()
    state = _state(page)
    assert float(state["ww"]) > 400 and float(state["wc"]) < 40
    after = _pixel(page)[0]
    assert after != grey
    # no server round trip for any of it
    assert page.evaluate("performance.getEntriesByType('resource').length") == requests_before
    shot(page, "viewer_window_drag")


def test_presets_and_the_files_windows(server, page):
    _open(page, server, f"series={server.ct}")
    preset = page.get_by_label("Preset")
    preset.select_option(label="Lung (W 1500 L -600)")
    _wait_state(page, "ww", "1500")
    assert _state(page)["wc"] == "-600"
    lung = _pixel(page)[0]
    preset.select_option(label="Bone (W 1800 L 400)")
    _wait_state(page, "ww", "1800")
    assert _pixel(page)[0] < lung                    # soft tissue darker in a bone window
    preset.select_option(label="Brain (W 80 L 40)")
    _wait_state(page, "ww", "80")
    assert _pixel(page)[0] == 255                    # 100 HU above a brain window
    preset.select_option(label="Abdomen (W 400 L 40)")
    _wait_state(page, "ww", "400")
    assert page.locator("#viewer-file-presets option").all_inner_texts() == ["Window 1 (W 400 L 40)"]
    preset.select_option(label="Full range (min–max)")
    _wait_state(page, "ww", "2000")
    preset.select_option(label="Window 1 (W 400 L 40)")
    _wait_state(page, "ww", "400")
    assert _state(page)["wc"] == "40"


def test_ct_presets_only_on_ct(server, page):
    """Hounsfield windows are offered on a CT series only; switching the series updates the choice."""
    _open(page, server, f"series={server.mf['ParentSeries']}")      # XA
    ct_group = page.locator("#viewer-ct-presets")
    assert ct_group.evaluate("g => g.disabled") is True
    page.locator(".vp-series").first.select_option(server.ct)
    # the CT's own window in the menu (the XA's, W 4000 L 2000, is there until the CT's first frame)
    page.wait_for_function("Array.from(document.querySelectorAll('#viewer-file-presets option'))"
                           ".map(o => o.textContent).join('|') === 'Window 1 (W 400 L 40)'")
    assert ct_group.evaluate("g => g.disabled") is False
    page.locator(".vp-series").first.select_option(server.colour)
    page.wait_for_function("document.getElementById('viewer-ct-presets').disabled")
    assert page.locator("#viewer-file-presets option").count() == 0     # not the CT's window any more


def test_invert(server, page):
    _open(page, server, f"series={server.ct}")
    grey = _pixel(page)[0]
    page.get_by_role("button", name="Invert").click()
    _wait_state(page, "invert", "true")
    assert _pixel(page)[0] == 255 - grey
    assert page.get_by_role("button", name="Invert").get_attribute("aria-pressed") == "true"
    assert _pixel(page, 0.02, 0.5)[:3] == [0, 0, 0]   # outside the image stays black
    page.locator(STAGE).focus()
    page.keyboard.press("i")
    _wait_state(page, "invert", "false")
    assert _pixel(page)[0] == grey


def test_zoom_pan_fit_and_actual_size(server, page):
    _open(page, server, f"series={server.ct}")
    box = _stage_box(page)
    fit = float(_state(page)["scale"])
    assert fit == pytest.approx(min(box["width"], box["height"]) / SIZE, rel=0.02)
    page.get_by_role("button", name="1:1").click()
    _wait_state(page, "scale", "1")
    page.locator(STAGE).focus()
    page.keyboard.press("+")
    _wait_state(page, "scale", "1.25")
    page.get_by_role("button", name="Fit").click()
    _wait_state(page, "scale", str(fit))
    # zoom by dragging with the zoom tool: up enlarges
    page.get_by_role("button", name="Zoom", exact=True).click()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 50, steps=5)
    page.mouse.up()
    assert float(_state(page)["scale"]) > fit * 1.4
    # pan: the centre of the canvas no longer shows the disc
    centre = _pixel(page)
    page.get_by_role("button", name="Pan").click()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] / 2, y, steps=5)
    page.mouse.up()
    assert _pixel(page) != centre
    shot(page, "viewer_zoom_pan")
    page.get_by_role("button", name="Reset").click()
    _wait_state(page, "scale", str(fit))


def test_cine_on_a_synthetic_multiframe(server, page):
    _open(page, server, f"series={server.mf['ParentSeries']}")
    state = _state(page)
    assert state["count"] == str(MF_FRAMES) and state["index"] == "0"   # a cine starts at its first frame
    assert f"frame 1/{MF_FRAMES}" in page.locator(".viewport:not([hidden]) .overlay").inner_text()
    assert page.get_by_label("Frames/s").input_value() == "10"
    first = _digest(page)
    page.get_by_label("Frames/s").fill("30")
    page.get_by_role("button", name="Play").click()
    _wait_state(page, "playing", "true")
    seen = set()
    for _ in range(40):
        seen.add(int(_state(page)["index"]))
        if len(seen) >= 4:
            break
        page.wait_for_timeout(50)
    assert len(seen) >= 4, seen
    page.get_by_role("button", name="Pause").click()
    _wait_state(page, "playing", "false")
    index = _state(page)["index"]
    page.wait_for_timeout(300)
    assert _state(page)["index"] == index
    page.locator(STAGE).focus()
    page.keyboard.press("Home")
    _wait_state(page, "index", "0")
    assert _digest(page) == first


def test_cine_on_a_multiframe_sample(server, page):
    data = sample_path("Issue16.dcm").read_bytes()       # 34 frames, JPEG baseline, YBR: decoded by the server
    series = server.upload(data)["ParentSeries"]
    _open(page, server, f"series={series}")
    assert _state(page)["count"] == "34"
    page.get_by_role("button", name="Play").click()
    page.wait_for_function(f"+document.querySelector({STAGE!r}).dataset.index >= 5", timeout=20_000)
    page.get_by_role("button", name="Pause").click()
    r, g, b, _ = _pixel(page)
    assert (r, g, b) != (0, 0, 0)


def test_colour_image(server, page):
    _open(page, server, f"series={server.colour}")
    box = _stage_box(page)
    side = min(box["width"], box["height"])
    # the image is square and centred: quadrants at a quarter of its side from the centre
    dx, dy = side / 4 / box["width"], side / 4 / box["height"]
    assert _pixel(page, 0.5 - dx, 0.5 - dy)[:3] == [255, 0, 0]
    assert _pixel(page, 0.5 + dx, 0.5 - dy)[:3] == [0, 255, 0]
    assert _pixel(page, 0.5 - dx, 0.5 + dy)[:3] == [0, 0, 255]
    page.get_by_role("button", name="Invert").click()
    _wait_state(page, "invert", "true")
    assert _pixel(page, 0.5 - dx, 0.5 - dy)[:3] == [0, 255, 255]


def test_layout_2x2_shows_series_side_by_side(server, page):
    study = requests.get(server.url + f"/series/{server.ct}", timeout=10).json()["ParentStudy"]
    page.goto(server.url + f"/ui/studies/{study}")
    page.get_by_role("link", name="Open in viewer").click()      # three series: a 2x2 layout
    page.wait_for_url(re.compile(r"layout=2x2"))
    assert page.locator(".viewport:not([hidden])").count() == 4
    for n in range(4):
        _wait_ready(page, n)
    chosen = [page.locator(".viewport:not([hidden]) .vp-series").nth(n).input_value() for n in range(4)]
    assert chosen[:3] == [server.ct, server.mf["ParentSeries"], server.colour]
    # another series in the second viewport, and the URL follows
    page.locator(".viewport:not([hidden]) .vp-series").nth(1).select_option(server.colour)
    page.wait_for_url(re.compile(rf"series={server.ct}&series={server.colour}"))
    # the viewport was ready with the multi-frame series a moment ago: wait for the colour one (1 image)
    _wait_state(page, "count", "1", n=1)
    # the toolbar acts on the viewport last used
    page.locator(STAGE).nth(2).click()
    page.get_by_role("button", name="Invert").click()
    _wait_state(page, "invert", "true", n=2)
    assert _state(page, 0)["invert"] == "false"
    _no_serious_axe(page)
    # the bookmark opens the same layout
    page.goto(page.url)
    for n in range(4):
        _wait_ready(page, n)
    assert page.locator(".viewport:not([hidden])").count() == 4
    page.get_by_role("button", name="1x2").click()
    assert page.locator(".viewport:not([hidden])").count() == 2


def test_xss_sample_is_inert_in_the_overlay(server, page):
    answer = server.upload(sample_path("2017-06-27-XSSInjection.dcm").read_bytes())
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.url + f"/ui/viewer?series={answer['ParentSeries']}")
    # the sample has no pixel data: the viewport says so, as text too
    page.wait_for_function(f"document.querySelector({STAGE!r}).dataset.error === 'true'")
    assert page.locator(".viewport:not([hidden]) .vp-status").inner_text() == "Cannot show this image: No pixel data"
    overlay = page.locator(".viewport:not([hidden]) .overlay")
    text = overlay.inner_text()
    assert 'MyStudy<script>alert("XSS inside DICOM file 2");</script>' in text
    assert "MySeries<script>" in text
    assert overlay.locator("script").count() == 0
    assert page.locator("main script:not([src]):not([type='application/json'])").count() == 0
    assert "<script>" in page.locator(".vp-series option").first.inner_text()
    assert dialogs == []
    _no_serious_axe(page)


def test_frames_beyond_the_memory_budget_are_dropped_farthest_first(server, page):
    page.add_init_script(f"window.viewerBudget = {3 * SIZE * SIZE * 2}")   # three slices
    _open(page, server, f"series={server.ct}")
    page.wait_for_timeout(500)
    assert int(_state(page)["loaded"]) <= 5                  # the slice and its neighbours, not the series
    page.locator(STAGE).focus()
    page.keyboard.press("End")                               # far away: it loads all the same
    _wait_state(page, "index", str(CT_SLICES - 1))
    page.keyboard.press("ArrowUp")
    _wait_state(page, "index", str(CT_SLICES - 2))
    assert int(_state(page)["loaded"]) <= 5


def test_tablet_in_dark_theme(browser, server):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, color_scheme="dark", has_touch=True)
    page = context.new_page()
    try:
        page.goto(server.url + f"/ui/viewer?series={server.ct}&series={server.mf['ParentSeries']}&layout=1x2")
        _wait_ready(page, 0)
        _wait_ready(page, 1)
        boxes = [page.locator(STAGE).nth(n).bounding_box() for n in range(2)]
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]     # stacked, not squeezed side by side
        assert all(b["width"] > 700 and b["height"] >= 250 for b in boxes)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        _no_serious_axe(page)
        shot(page, "viewer_tablet_dark")
    finally:
        context.close()


def test_a_flat_first_frame_does_not_blank_the_series(server, page):
    # The default window of a frame without window tags is its range; a flat one (a segmentation's empty
    # first frame) shows black, and the first frame with a range sets the window: the mask shows white on black
    _open(page, server, f"series={server.seg}")
    assert _state(page)["index"] == "0"
    assert _pixel(page)[:3] == [0, 0, 0]
    page.locator(STAGE).focus()
    page.keyboard.press("ArrowDown")
    _wait_state(page, "index", "1")
    page.wait_for_function(f"document.querySelector({STAGE!r}).dataset.ww === '255'")
    assert _pixel(page)[:3] == [255, 255, 255]
    assert _pixel(page, 0.5, 0.02)[:3] == [0, 0, 0]       # outside the image or the square: black
    assert "W 255 L 128" in page.locator(".viewport:not([hidden]) .overlay").inner_text()
