"""The web UI's study list on a big archive: server time, first contentful paint, filter-as-you-type, weight.

    .venv/bin/python bench/ui.py                      # 1,000,000 instances if /tmp/find-bench has it, else 100,000
    .venv/bin/python bench/ui.py --count 100000 --runs 20
    .venv/bin/python bench/ui.py --part report        # a structured report's instance page

The archive is bench/find.py's (``--data``/sqlite-N, built by ``manage.py populate --count N`` when missing:
~3 minutes for 100,000 instances, ~30 for 1,000,000). Our server starts on it as a user starts it
(bench/servers.py). Figures:

- server time: GET of the study list (whole page, and the HTMX fragment a filter asks for), wall time seen by
  a keep-alive client on 127.0.0.1, for the unfiltered list, typical filters (each counted: exactly up to
  explorer.ui.browser.COUNT_CAP matches, "more than" beyond), sorts, 20 pages forward with "Next page" and
  20 back with "Previous page" (keyset both ways);
- first contentful paint: headless Chromium (Debian's, through Playwright), a new browser context per run
  (cold cache), ``performance.getEntriesByName('first-contentful-paint')``;
- filter-as-you-type: from the request HTMX sends after the debounce to the swapped results
  (``htmx:beforeRequest`` -> ``htmx:afterSettle``), the debounce itself (300 ms) left out;
- page weight: the study list's HTML, CSS and JS, uncompressed.

Goals (issue 8): server <= 150 ms, FCP <= 500 ms, filter answer <= 250 ms, weight <= 150 KB.

The viewer (``--part viewer``, or ``all``) runs on a server of its own: a 200-slice CT series (bench/synth.py,
512x512 16-bit) uploaded through POST /instances, then in headless Chromium:

- first image: from navigation start to the first image drawn on the canvas (viewer.js' own clock), a new
  browser context per run; the first run also has a cold server (nothing decoded yet);
- prefetch: until every slice of the series is in the browser;
- scrolling after prefetch: a wheel event per animation frame over the whole series, images drawn per second
  (the display's refresh rate caps it: headless Chromium runs at 60 Hz), and the browser's time per image;
- window/level drag: a pointer move per animation frame, windowed images drawn per second, and the time per update;
- for comparison, the server round trip a window change would cost if the server windowed (GET /rendered with
  window-center/width, a different window each time).

Goals (issue 8): first image <= 500 ms, scrolling >= 30 frames/s, window/level drag >= 30 updates/s.

The structured report (``--part report``, or ``all``), on a server of its own: 100 small CT instances and a
comprehensive SR of 60 sections of 40 items (TEXT, NUM, CODE, and IMAGE references to the CTs, ~2,460 items,
past the page's 2,000-item cut): the server time of its instance page (tags tree, report, one query for the
cited images) beside a CT's instance page, and the page sizes. Goal: the study list's, <= 150 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from find import ensure_ours  # noqa: E402
from servers import ours_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
GOAL_SERVER_MS, GOAL_FCP_MS, GOAL_FILTER_MS, GOAL_WEIGHT_KB = 150.0, 500.0, 250.0, 150.0
GOAL_FIRST_IMAGE_MS, GOAL_SCROLL_FPS, GOAL_WINDOW_UPS = 500.0, 30.0, 30.0
VIEWER_SLICES = 200

# (name, query string, as HTMX fragment)
QUERIES = [
    ("list, newest first (page)", "", False),
    ("list, newest first (fragment)", "", True),
    ("name contains 'smi'", "name=smi", True),
    ("name contains 'smith'", "name=smith", True),
    ("name contains 'zzz' (no match)", "name=zzz", True),
    ("patient ID contains '00012'", "pid=00012", True),
    ("accession contains 'A0001'", "accession=A0001", True),
    ("description contains 'brain'", "description=brain", True),
    ("modality MR", "modality=MR", True),
    ("last 7 days", "dates=7days", True),
    ("dates 2015-01-01..2015-12-31", "dates=custom&date_from=2015-01-01&date_to=2015-12-31", True),
    ("label teaching", "label=teaching", True),
    ("modality CT (counted up to the cap)", "modality=CT", True),
    ("sorted by patient name", "sort=name", True),
    ("sorted by study date, newest", "sort=-date", True),
    ("name 'smith' sorted by date", "name=smith&sort=-date", True),
]


class Client:
    def __init__(self, base: str):
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def get(self, path: str, headers: dict | None = None) -> tuple[float, int, bytes]:
        start = time.perf_counter()
        self.conn.request("GET", path, headers=headers or {})
        response = self.conn.getresponse()
        body = response.read()
        return (time.perf_counter() - start) * 1000, response.status, body


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def server_times(base: str, runs: int) -> list[tuple[str, float, float]]:
    client = Client(base)
    out = []
    for name, query, fragment in QUERIES:
        headers = {"HX-Request": "true"} if fragment else {}
        path = "/ui/" + (f"?{query}" if query else "")
        times = []
        for i in range(runs + 1):   # the first run warms up
            ms, status, _ = client.get(path, headers)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
            if i:
                times.append(ms)
        out.append((name, statistics.median(times), _p(times, 0.95)))
    # 20 pages deep, following the keyset cursor of each "Next page", then 20 back with "Previous page"
    for name, rel in (("next page, 20 pages in a row", "next"), ("previous page, 20 pages back", "prev")):
        times = []
        path = "/ui/" if rel == "next" else path
        for _ in range(20):
            ms, _, body = client.get(path, {"HX-Request": "true"})
            times.append(ms)
            match = re.search(rb'rel="' + rel.encode() + rb'" href="\?([^"]+)"', body)
            if not match:
                break
            path = "/ui/?" + match.group(1).decode().replace("&amp;", "&")
        out.append((name, statistics.median(times), _p(times, 0.95)))
    return out


def page_weight(base: str) -> tuple[int, dict[str, int]]:
    client = Client(base)
    _, _, html = client.get("/ui/")
    sizes = {"/ui/ (HTML)": len(html)}
    for asset in re.findall(rb'(?:href|src)="(/static/[^"]+\.(?:css|js))"', html):
        _, _, body = client.get(asset.decode())
        sizes[asset.decode()] = len(body)
    return sum(sizes.values()), sizes


def browser_figures(base: str, runs: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    fcps: list[float] = []
    answers: list[float] = []
    terms = ["smi", "jon", "gar", "bro", "wil", "lee", "kin", "mar", "dav", "tho"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(runs + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(base + "/ui/", wait_until="load")
                fcp = page.evaluate(
                    "() => new Promise(r => { const e = performance.getEntriesByName('first-contentful-paint');"
                    " if (e.length) return r(e[0].startTime);"
                    " new PerformanceObserver(l => r(l.getEntries()[0].startTime))"
                    ".observe({type: 'paint', buffered: true}); })")
                if i:
                    fcps.append(fcp)
                # filter as you type: time the request HTMX makes once typing pauses
                page.evaluate("""() => { window.__t = []; let s = 0;
                    document.body.addEventListener('htmx:beforeRequest', () => { s = performance.now(); });
                    document.body.addEventListener('htmx:afterSettle', () => { window.__t.push(performance.now() - s); }); }""")
                box = page.get_by_label("Patient name")
                box.press_sequentially(terms[i % len(terms)], delay=40)
                page.wait_for_function("window.__t.length >= 1", timeout=30_000)
                if i:
                    answers.append(page.evaluate("window.__t[window.__t.length - 1]"))
                context.close()
        finally:
            browser.close()
    return fcps, answers


# --- the viewer ----------------------------------------------------------------------------------------------

def viewer_series(base: str, slices: int) -> tuple[str, list[str]]:
    """Upload a CT series of ``slices`` instances; its series ID and instance IDs."""
    from synth import generate

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    series, instances = "", []
    for inst in generate(instances_per_series=slices, prefix="VIEWER"):
        conn.request("POST", "/instances", body=inst.to_bytes(), headers={"Content-Type": "application/dicom"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"upload: HTTP {response.status} {answer}")
        series = answer["ParentSeries"]
        instances.append(answer["ID"])
    return series, instances


STAGE_JS = "document.querySelector('.viewport:not([hidden]) .vp-stage')"

# One synthetic event per animation frame for ``n`` frames; answers images drawn, elapsed ms, render ms.
DRIVE_JS = """async ([kind, n]) => {
    const stage = STAGE, box = stage.getBoundingClientRect(), s = window.viewer.stats;
    const x0 = box.left + box.width / 2, y0 = box.top + box.height / 2;
    const frame = () => new Promise(r => requestAnimationFrame(r));
    await frame();
    if (kind === 'window') stage.dispatchEvent(new PointerEvent('pointerdown', {pointerId: 1, button: 0,
        clientX: x0, clientY: y0, bubbles: true}));
    const renders = s.renders, ms = s.renderMs, start = performance.now();
    for (let i = 1; i <= n; i++) {
        if (kind === 'scroll') stage.dispatchEvent(new WheelEvent('wheel', {deltaY: i <= n / 2 ? 100 : -100,
            clientX: x0, clientY: y0, bubbles: true, cancelable: true}));
        else stage.dispatchEvent(new PointerEvent('pointermove', {pointerId: 1, clientX: x0 + (i % 40) * 4,
            clientY: y0 + (i % 30), bubbles: true}));
        await frame();
    }
    const elapsed = performance.now() - start;
    if (kind === 'window') stage.dispatchEvent(new PointerEvent('pointerup', {pointerId: 1, bubbles: true}));
    return {images: s.renders - renders, elapsed, renderMs: s.renderMs - ms};
}""".replace("STAGE", STAGE_JS)


def viewer_figures(base: str, series: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {k: [] for k in ("first", "first_cold", "prefetch", "scroll_fps", "scroll_ms",
                                                    "window_ups", "window_ms")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(runs + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/ui/viewer?series={series}", wait_until="commit")
                page.wait_for_function(f"{STAGE_JS} && {STAGE_JS}.dataset.ready === 'true'", timeout=60_000)
                first = page.evaluate("window.viewer.stats.firstImage")
                (out["first"] if i else out["first_cold"]).append(first)
                page.wait_for_function(f"{STAGE_JS}.dataset.loaded === '{VIEWER_SLICES}'", timeout=120_000,
                                       polling=20)
                out["prefetch"].append(page.evaluate("performance.now()"))
                page.locator(".vp-stage").first.focus()
                page.keyboard.press("Home")
                scroll = page.evaluate(DRIVE_JS, ["scroll", 2 * (VIEWER_SLICES - 1)])
                out["scroll_fps"].append(scroll["images"] / scroll["elapsed"] * 1000)
                out["scroll_ms"].append(scroll["renderMs"] / max(scroll["images"], 1))
                drag = page.evaluate(DRIVE_JS, ["window", 240])
                out["window_ups"].append(drag["images"] / drag["elapsed"] * 1000)
                out["window_ms"].append(drag["renderMs"] / max(drag["images"], 1))
                context.close()
        finally:
            browser.close()
    return out


def server_window_round_trip(base: str, instances: list[str], runs: int) -> list[float]:
    """What one window change costs when the server windows: GET /rendered with a new window each time."""
    client = Client(base)
    times = []
    for i in range(runs):
        ms, status, _ = client.get(f"/instances/{instances[i % len(instances)]}/rendered"
                                   f"?window-center={40 + i}&window-width={400 + 2 * i}")
        if status != 200:
            raise RuntimeError(f"/rendered: HTTP {status}")
        times.append(ms)
    return times


def viewer_bench(runs: int) -> None:
    print(f"\n[viewer on a {VIEWER_SLICES}-slice CT series, 512x512 16-bit, SQLite]", flush=True)
    with ours_server() as srv:
        t0 = time.perf_counter()
        series, instances = viewer_series(srv, VIEWER_SLICES)
        print(f"  uploaded {len(instances)} instances in {time.perf_counter() - t0:.1f} s")
        figures = viewer_figures(srv, series, runs)
        trips = server_window_round_trip(srv, instances, 50)

    def line(name: str, values: list[float], unit: str, goal: str = "") -> None:
        print(f"  {name:<42} p50 {statistics.median(values):7.1f}  p95 {_p(values, 0.95):7.1f} {unit}{goal}")

    print(f"\nbrowser (headless Chromium, {runs} runs, new context each; the first, cold-server run apart):")
    print(f"  first image, cold server                       {figures['first_cold'][0]:7.1f} ms")
    line("first image, ms", figures["first"], "ms", f"  (goal <= {GOAL_FIRST_IMAGE_MS:.0f})")
    line("whole series in the browser (prefetch)", figures["prefetch"], "ms")
    line("scrolling after prefetch, images/s", figures["scroll_fps"], "/s", f"  (goal >= {GOAL_SCROLL_FPS:.0f})")
    line("  browser time per scrolled image", figures["scroll_ms"], "ms")
    line("window/level drag, updates/s", figures["window_ups"], "/s", f"  (goal >= {GOAL_WINDOW_UPS:.0f})")
    line("  browser time per window update", figures["window_ms"], "ms")
    line("server round trip per window (if it windowed)", trips, "ms  (GET /rendered, 50 calls; avoided)")


REPORT_SECTIONS, REPORT_ITEMS_PER_SECTION, REPORT_IMAGES = 60, 40, 100


def _code(value: str, meaning: str, scheme: str = "99BENCH"):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def report_files(sections: int, per_section: int, images: int) -> tuple[list[bytes], bytes]:
    """``images`` small CT instances and one comprehensive SR citing them: ``sections`` CONTAINERs of
    ``per_section`` items each (TEXT, NUM in UCUM units, CODE, and an IMAGE reference to one of the CTs)."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    def dataset(sop_class: str, sop_uid: str, series: str, **values) -> bytes:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        ds.PatientID, ds.PatientName, ds.StudyInstanceUID = "REPORT-BENCH", "Report^Bench", "1.2.777.1"
        ds.SeriesInstanceUID, ds.Modality = series, values.pop("Modality")
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    cts = [dataset("1.2.840.10008.5.1.4.1.1.2", f"1.2.777.1.1.{i}", "1.2.777.1.1", Modality="CT",
                   InstanceNumber=str(i), Rows=8, Columns=8, BitsAllocated=16, BitsStored=16, HighBit=15,
                   PixelRepresentation=0, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
                   PixelData=bytes(128)) for i in range(images)]

    def item(relationship: str, value_type: str, concept: str, **values) -> Dataset:
        it = Dataset()
        it.RelationshipType, it.ValueType = relationship, value_type
        it.ConceptNameCodeSequence = Sequence([_code(concept[:8], concept)])
        for keyword, value in values.items():
            setattr(it, keyword, value)
        return it

    content = []
    for s in range(sections):
        children = []
        for k in range(per_section):
            kind = k % 4
            if kind == 0:
                children.append(item("CONTAINS", "TEXT", "Finding", TextValue=f"Section {s} finding {k}: no change."))
            elif kind == 1:
                measured = Dataset()
                measured.NumericValue = f"{k}.5"
                measured.MeasurementUnitsCodeSequence = Sequence([_code("mm", "millimeter", "UCUM")])
                children.append(item("CONTAINS", "NUM", "Diameter", MeasuredValueSequence=Sequence([measured])))
            elif kind == 2:
                children.append(item("HAS PROPERTIES", "CODE", "Laterality",
                                     ConceptCodeSequence=Sequence([_code("7771000", "Left", "SCT")])))
            else:
                ref = Dataset()
                ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
                ref.ReferencedSOPInstanceUID = f"1.2.777.1.1.{(s * per_section + k) % images}"
                children.append(item("INFERRED FROM", "IMAGE", "Source image", ReferencedSOPSequence=Sequence([ref])))
        content.append(item("CONTAINS", "CONTAINER", f"Section {s}", ContinuityOfContent="SEPARATE",
                            ContentSequence=Sequence(children)))
    sr = dataset("1.2.840.10008.5.1.4.1.1.88.33", "1.2.777.1.2.1", "1.2.777.1.2", Modality="SR", ValueType="CONTAINER",
                 ConceptNameCodeSequence=Sequence([_code("18748-4", "Diagnostic imaging report", "LN")]),
                 ContinuityOfContent="SEPARATE", CompletionFlag="COMPLETE", VerificationFlag="UNVERIFIED",
                 ContentSequence=Sequence(content))
    return cts, sr


def report_bench(runs: int) -> None:
    """The instance page of a large structured report (explorer/ui/structured_report.py) beside that of a CT."""
    items = REPORT_SECTIONS * (REPORT_ITEMS_PER_SECTION + 1)
    print(f"\n[instance page of a structured report of {items} items citing {REPORT_IMAGES} images, SQLite]",
          flush=True)
    cts, sr = report_files(REPORT_SECTIONS, REPORT_ITEMS_PER_SECTION, REPORT_IMAGES)
    with ours_server() as srv:
        parts = urlsplit(srv.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        ids = []
        for data in [*cts, sr]:
            conn.request("POST", "/instances", body=data, headers={"Content-Type": "application/dicom"})
            answer = conn.getresponse()
            ids.append(json.loads(answer.read())["ID"])
        client = Client(srv.url)
        print(f"  server time, ms (p50 / p95 over {runs} runs; goal <= {GOAL_SERVER_MS:.0f}), page size:")
        for name, instance in (("CT instance page (no report)", ids[0]), ("report instance page", ids[-1])):
            times, size = [], 0
            for i in range(runs + 1):
                ms, status, body = client.get(f"/ui/instances/{instance}")
                if status != 200:
                    raise RuntimeError(f"/ui/instances/{instance}: HTTP {status}")
                if i:
                    times.append(ms)
                size = len(body)
            flag = "" if statistics.median(times) <= GOAL_SERVER_MS else "   <-- over the goal"
            print(f"  {name:<36} {statistics.median(times):8.1f} {_p(times, 0.95):8.1f}   {size / 1024:7.1f} KB{flag}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--count", type=int, default=0, help="instances (default: the largest prebuilt archive)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--browser-runs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="populate processes")
    ap.add_argument("--data", type=Path, default=Path("/tmp/find-bench"))
    ap.add_argument("--part", choices=["all", "list", "viewer", "report"], default="all")
    ap.add_argument("--viewer-runs", type=int, default=5)
    args = ap.parse_args()
    if args.part == "viewer":
        viewer_bench(args.viewer_runs)
        return 0
    if args.part == "report":
        report_bench(args.runs)
        return 0

    count = args.count
    if not count:
        count = next((n for n in (1_000_000, 100_000) if (args.data / f"sqlite-{n}" / "populated.json").exists()),
                     100_000)
    folder = args.data / f"sqlite-{count}"
    db = f"sqlite:///{folder}/index/index.sqlite3"
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")
    print(f"[study list on {count:,} instances, SQLite, {folder}]", flush=True)
    ensure_ours(folder, db, count, args.seed, args.workers)
    with ours_server(workdir=folder, env={"DATABASE_URL": db}) as srv:
        print(f"\nserver time, ms (p50 / p95 over {args.runs} runs; goal <= {GOAL_SERVER_MS:.0f}):")
        for name, p50, p95 in server_times(srv, args.runs):
            flag = "" if p50 <= GOAL_SERVER_MS else "   <-- over the goal"
            print(f"  {name:<36} {p50:8.1f} {p95:8.1f}{flag}")
        total, sizes = page_weight(srv)
        print(f"\npage weight of the study list, uncompressed (goal <= {GOAL_WEIGHT_KB:.0f} KB):")
        for name, size in sizes.items():
            print(f"  {name:<36} {size / 1024:8.1f} KB")
        print(f"  {'total':<36} {total / 1024:8.1f} KB")
        fcps, answers = browser_figures(srv, args.browser_runs)
        print(f"\nbrowser (headless Chromium, {args.browser_runs} runs, new context each):")
        print(f"  first contentful paint, ms           p50 {statistics.median(fcps):7.1f}  p95 {_p(fcps, 0.95):7.1f}"
              f"  (goal <= {GOAL_FCP_MS:.0f})")
        print(f"  filter-as-you-type answer, ms        p50 {statistics.median(answers):7.1f}  "
              f"p95 {_p(answers, 0.95):7.1f}  (goal <= {GOAL_FILTER_MS:.0f}; 300 ms debounce not counted)")
    if args.part == "all":
        viewer_bench(args.viewer_runs)
        report_bench(args.runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
