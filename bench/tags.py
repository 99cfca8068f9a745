"""Tags routes bench: /instances/{id}/tags, ?simplify and /studies/{id}/instances-tags, ours against real
Orthanc, on an archive with and without StorageCompression.

    .venv/bin/python bench/tags.py                       # both servers, both settings, ~2 minutes
    .venv/bin/python bench/tags.py --count 20 --runs 10 --no-orthanc
    .venv/bin/python bench/tags.py --nested --runs 20         # big nested documents instead

``--nested``: three files whose tags are deep trees rather than a flat list, uploaded to each server (no
compression): a comprehensive SR of 60 sections of 40 items (2,460 content items, 7,300 sequence items at all
depths: bench/ui.py's report), and the header of a 500-frame enhanced MR (per-frame functional groups: 3,500
items), written once with sequences of defined length and once of undefined length (pydicom reads these at
once, item by item, where it reads the others when asked); the upload of ``--runs`` such enhanced MRs
(POST /instances, one at a time) is timed too.

``--count`` synthetic 512x512 CT instances (bench/synth.py, 0.53 MB each, one study) are uploaded to each
server. Compressed, both servers keep the file up to its pixel data apart ("dicom-until-pixel-data") and read
the tags from it without inflating the whole file; ``?whole`` has to inflate it all. Each route is asked
``--runs`` times per instance (cycling over the instances), alternating between the servers on one keep-alive
connection each, so both see the same background load. Prints the p50 and p90 of the client's wall time in
ms and the ratio ours / Orthanc (below 1: ours is faster). The machine is shared: compare figures of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import KeepAliveClient, orthanc_server, ours_server  # noqa: E402
from synth import generate_count  # noqa: E402

ROUTES = ("/instances/{i}/tags", "/instances/{i}/tags?simplify", "/instances/{i}/tags?whole",
          "/studies/{s}/instances-tags")


def _load(client: KeepAliveClient, files: list[bytes]) -> tuple[list[str], str]:
    answers = client.upload(files)
    return [a["ID"] for a in answers], answers[-1]["ParentStudy"]


def _measure(sides: dict[str, tuple[KeepAliveClient, list[str], str]], route: str, runs: int
             ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for n in range(runs + 1):
        for name, (client, ids, study) in sides.items():
            path = route.format(i=ids[n % len(ids)], s=study)
            status, _, body, seconds = client.call("GET", path)
            if status != 200:
                raise SystemExit(f"{name} {path}: {status} {body[:200]!r}")
            if n:  # the first request of each route is a warm-up
                times[name].append(seconds * 1000)
    return times


NESTED_ROUTES = ("/instances/{i}/tags", "/instances/{i}/tags?simplify")


def enhanced_mr(frames: int, *, undefined_length: bool, number: int = 0) -> bytes:
    """An enhanced MR instance of ``frames`` 4x4 frames, without pixel data: what matters is its per-frame
    functional groups (six sequences of one item in each frame's item). ``number`` makes the SOP Instance UID."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4.1", f"1.2.778.{int(undefined_length)}.{number}"
    ds.PatientID, ds.PatientName, ds.StudyInstanceUID = "ENHANCED-BENCH", "Enhanced^MR", "1.2.778"
    ds.SeriesInstanceUID, ds.Modality, ds.NumberOfFrames, ds.Rows, ds.Columns = "1.2.778.1", "MR", frames, 4, 4
    groups = []
    for i in range(frames):
        content, position, orientation = Dataset(), Dataset(), Dataset()
        content.FrameAcquisitionNumber, content.StackID, content.InStackPositionNumber = i, "1", i + 1
        content.DimensionIndexValues = [1, i + 1]
        position.ImagePositionPatient = [-100.0, -100.0, i * 1.5]
        orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        measures, window, timing = Dataset(), Dataset(), Dataset()
        measures.PixelSpacing, measures.SliceThickness = [0.5, 0.5], 1.5
        window.WindowCenter, window.WindowWidth = 300, 600
        timing.RepetitionTime, timing.FlipAngle, timing.EchoTrainLength = 2000, 90, 1
        frame = Dataset()
        frame.FrameContentSequence, frame.PlanePositionSequence = Sequence([content]), Sequence([position])
        frame.PlaneOrientationSequence, frame.PixelMeasuresSequence = Sequence([orientation]), Sequence([measures])
        frame.FrameVOILUTSequence = Sequence([window])
        frame.MRTimingAndRelatedParametersSequence = Sequence([timing])
        groups.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)

    def undefined(dataset: Dataset) -> None:
        for element in dataset:
            if element.VR == "SQ":
                element.is_undefined_length = True
                for item in element.value:
                    item.is_undefined_length_sequence_item = True
                    undefined(item)

    if undefined_length:
        undefined(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def bench_nested(args) -> None:
    from ui import report_files

    files = {"SR, 2,460 items": report_files(60, 40, 10)[1],
             "enhanced MR, defined lengths": enhanced_mr(500, undefined_length=False),
             "enhanced MR, undefined lengths": enhanced_mr(500, undefined_length=True)}
    print(f"Nested documents; {args.runs} requests per route and server; ms")
    print(f"{'file':32} {'route':30} {'ours p50':>9} {'p90':>7} {'orthanc p50':>12} {'p90':>7} {'ratio p50':>10}")
    with ours_server() as ours, orthanc_server() as orthanc:
        clients = {"ours": KeepAliveClient(ours.url), "orthanc": KeepAliveClient(orthanc.url)}
        try:
            for undefined_length in (False, True):
                uploads = [enhanced_mr(500, undefined_length=undefined_length, number=n) for n in range(args.runs + 1)]
                times: dict[str, list[float]] = {name: [] for name in clients}
                for n, data in enumerate(uploads):
                    for name, client in clients.items():
                        started = time.perf_counter()
                        client.upload([data])
                        if n:    # the first upload is a warm-up
                            times[name].append((time.perf_counter() - started) * 1000)
                ours_t, orth_t = sorted(times["ours"]), sorted(times["orthanc"])
                label = f"enhanced MR, {'undefined' if undefined_length else 'defined'} lengths"
                print(f"{label:32} {'POST /instances':30} {statistics.median(ours_t):9.1f} "
                      f"{ours_t[int(len(ours_t) * .9)]:7.1f} {statistics.median(orth_t):12.1f} "
                      f"{orth_t[int(len(orth_t) * .9)]:7.1f} {statistics.median(ours_t) / statistics.median(orth_t):10.2f}",
                      flush=True)
            for label, data in files.items():
                loaded = {name: (client, *_load(client, [data])) for name, client in clients.items()}
                for route in NESTED_ROUTES:
                    times = {name: sorted(t) for name, t in _measure(loaded, route, args.runs).items()}
                    ours_t, orth_t = times["ours"], times["orthanc"]
                    ratio = statistics.median(ours_t) / statistics.median(orth_t)
                    print(f"{label:32} {route:30} {statistics.median(ours_t):9.1f} {ours_t[int(len(ours_t) * .9)]:7.1f}"
                          f" {statistics.median(orth_t):12.1f} {orth_t[int(len(orth_t) * .9)]:7.1f} {ratio:10.2f}",
                          flush=True)
        finally:
            for client in clients.values():
                client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10, help="CT instances uploaded to each server")
    ap.add_argument("--runs", type=int, default=40, help="requests per route and server")
    ap.add_argument("--no-orthanc", action="store_true", help="ours only")
    ap.add_argument("--nested", action="store_true", help="big nested documents instead of CT instances")
    args = ap.parse_args()
    if args.nested:
        bench_nested(args)
        return 0
    files = [inst.to_bytes() for inst in generate_count(args.count, instances_per_series=args.count)]
    print(f"{args.count} CT instances of {len(files[0]) / 1e6:.2f} MB; {args.runs} requests per route; ms")
    for compression in (False, True):
        extra = {"StorageCompression": compression}
        print(f"\nStorageCompression {str(compression).lower()}")
        print(f"{'route':36} {'ours p50':>9} {'p90':>7} {'orthanc p50':>12} {'p90':>7} {'ratio p50':>10}")
        with ours_server(extra=extra) as ours:
            sides = {"ours": KeepAliveClient(ours.url)}
            if args.no_orthanc:
                orthanc_cm = None
            else:
                orthanc_cm = orthanc_server(extra=extra)
                sides["orthanc"] = KeepAliveClient(orthanc_cm.__enter__().url)
            try:
                loaded = {name: (client, *_load(client, files)) for name, client in sides.items()}
                for route in ROUTES:
                    times = _measure(loaded, route, args.runs)
                    ours_t = sorted(times["ours"])
                    line = f"{route:36} {statistics.median(ours_t):9.2f} {ours_t[int(len(ours_t) * .9)]:7.2f}"
                    if "orthanc" in times:
                        orth_t = sorted(times["orthanc"])
                        ratio = statistics.median(ours_t) / statistics.median(orth_t)
                        line += (f" {statistics.median(orth_t):12.2f} {orth_t[int(len(orth_t) * .9)]:7.2f}"
                                 f" {ratio:10.2f}")
                    print(line, flush=True)
            finally:
                for client in sides.values():
                    client.close()
                if orthanc_cm is not None:
                    orthanc_cm.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
