"""DICOM network figures, ours against real Orthanc 1.10.1 in the same run.

    .venv/bin/python bench/network.py                         # C-STORE (two PDU sizes), C-FIND, C-MOVE
    .venv/bin/python bench/network.py --only store --count 500 --assocs 1 --pdus 16384
    .venv/bin/python bench/network.py --only store --overwrite --assocs 1,4 --pdus 16384
    .venv/bin/python bench/network.py --only find --runs 50
    .venv/bin/python bench/network.py --only move --move-count 500
    .venv/bin/python bench/network.py --only assoc --assoc-runs 40

1. C-STORE: ``--count`` synthetic CT instances (bench/synth.py, ~0.53 MB each) sent with DCMTK ``storescu``
   over ``--assocs`` associations at once (one storescu process each, the files split evenly), to a fresh
   archive after a warm-up of 20 other instances, ``--rounds`` times per server (3 by default, alternating
   which server goes first; the medians are compared: runs on this shared machine vary by 20%). Both servers and storescu run with TCP_NODELAY=1 in their
   environment (without it Orthanc stalls ~45 ms per instance). Figures: instances/s from the launch of
   the storescu processes to the exit of the last one, ours / Orthanc, and the CPU time the server's
   processes used per instance (user + system, whole process tree). One table per ``--pdus`` value: both
   servers get that MaximumPduLength (16384 is the default of both; storescu then sends PDUs of that size).
   With ``--overwrite``, a modality sending a study again: both servers run with OverwriteInstances, the
   files are sent once untimed, then the timed run sends them all again (each store replaces an instance:
   ours keeps the replaced file for STORAGE_REPLACED_GRACE, archive/storage.py; Orthanc deletes it).
2. C-FIND at the study level on the 100,000-instance archives of bench/find.py (``--data``, made by
   ``bench/find.py --sizes 100000`` or ``manage.py populate --count 100000``): PatientID=, StudyInstanceUID=
   and StudyDate= (one day) with nine return keys (ModalitiesInStudy and NumberOfStudyRelatedInstances
   among them), a different value each run, over one association kept open (pynetdicom as the SCU), so the
   figure is the query, not the association. p50 and p95 in ms; the answers must agree between servers.
3. C-MOVE of one study of ``--move-count`` instances (5 series) between the two servers, each registered in
   the other's DicomModalities (ours as AET OURS, Orthanc as ORTHANC), both started fresh for each
   direction: the study is stored into the source with storescu, then DCMTK ``movescu`` asks the source to
   move it to the other server (DicomAlwaysAllowMove on both, the bench being an unknown caller); Orthanc to
   a second Orthanc is the reference for both roles. Figures:
   instances/s from the launch of movescu to its exit (the source answers last when every sub-operation is
   done), the CPU time of both servers per instance, and a check that every SOPInstanceUID arrived. Then the
   study is deleted from the destination and sent again with ``POST /modalities/dest/store`` on the source
   (a synchronous store job): the same figures.
4. One association per exchange, as many modalities send (an association per image or per series) and as
   monitoring echoes: DCMTK ``echoscu``, and ``storescu`` of one CT instance (it proposes its ~120 storage
   classes, each with 3 transfer syntaxes), ``--assoc-runs`` times each, one after the other, on both servers
   running side by side. Figures: p50 and p95 in ms from the launch of the tool to its exit (the tool's own
   start-up, ~10 ms, is in both).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from servers import (  # noqa: E402
    filesystem_of,
    free_port,
    orthanc_server,
    ours_server,
    removed,
    wait_for_freed_inodes,
)
from synth import generate_count  # noqa: E402

from archive.populate import Shape, patient_info, study_info  # noqa: E402

# DCMTK's tools (an activated venv puts pynetdicom's apps of the same names first on the PATH)
STORESCU = "/usr/bin/storescu" if os.path.exists("/usr/bin/storescu") else shutil.which("storescu")
MOVESCU = "/usr/bin/movescu" if os.path.exists("/usr/bin/movescu") else shutil.which("movescu")
ECHOSCU = "/usr/bin/echoscu" if os.path.exists("/usr/bin/echoscu") else shutil.which("echoscu")
RETURN_KEYS = ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyDescription", "AccessionNumber",
               "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries")


def write_files(folder: Path, count: int, *, seed: int, prefix: str, series_per_study: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, inst in enumerate(generate_count(count, seed=seed, prefix=prefix, series_per_study=series_per_study)):
        path = folder / f"{n:06d}.dcm"
        path.write_bytes(inst.to_bytes())
        paths.append(path)
    return paths


def storescu(port: int, files: list[Path], assocs: int) -> tuple[float, list[int]]:
    """Send ``files`` over ``assocs`` storescu processes at once: (seconds, exit codes)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    chunks = [files[i::assocs] for i in range(assocs)]
    started = time.perf_counter()
    procs = [subprocess.Popen([STORESCU, "-aet", "BENCHSCU", "-aec", "ORTHANC", "127.0.0.1", str(port),
                               *map(str, chunk)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for chunk in chunks if chunk]
    codes = []
    for proc in procs:
        _out, err = proc.communicate()
        codes.append(proc.returncode)
        if proc.returncode != 0 or err.strip():
            print(f"  storescu: exit {proc.returncode} {err.decode(errors='replace')[-300:]}")
    return time.perf_counter() - started, codes


def wait_dicom(port: int, timeout: float = 60) -> None:
    """Our DICOM server starts a few seconds after the HTTP server answers: wait until it accepts."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on DICOM port {port}")


def _request_json(url: str, body: dict | None = None, *, method: str | None = None):
    import json

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    with urllib.request.urlopen(request, timeout=3600) as r:
        raw = r.read()
    return json.loads(raw) if raw.strip() else None


def instances_count(url: str) -> int:
    import json

    with urllib.request.urlopen(url + "/statistics", timeout=30) as r:
        return int(json.loads(r.read())["CountInstances"])


def bench_store(args) -> None:
    wait_for_freed_inodes()
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    try:
        print(f"writing {args.count} + 20 instances to {work} ...", flush=True)
        files = write_files(work / "main", args.count, seed=11, prefix="NET")
        warmup = write_files(work / "warm", 20, seed=12, prefix="WARM")
        _settle_disk()
        for pdu in args.pdus:
            results: dict[tuple[str, int], list[float]] = {}
            print(f"\nC-STORE{' again (OverwriteInstances)' if args.overwrite else ''}, storescu, "
                  f"{args.count} CT instances of {files[0].stat().st_size / 1e6:.2f} MB, "
                  f"MaximumPduLength {pdu} on both servers, {args.rounds} round(s); storage areas on "
                  f"{filesystem_of(tempfile.gettempdir())}")
            print(f"{'server':8} {'assocs':>6} {'stored':>7} {'seconds':>8} {'inst/s':>8} {'ours/Orthanc':>13} "
                  f"{'cpu ms/inst':>12}")
            for assocs in args.assocs:
                for round_ in range(args.rounds):
                    # Alternate which server goes first: the one that runs second finds the page cache fuller
                    # and the disk busy with the first one's writeback.
                    order = (("orthanc", orthanc_server), ("ours", ours_server))
                    for name, factory in order if round_ % 2 == 0 else order[::-1]:
                        if args.only_server and name != args.only_server:
                            continue
                        rate, line = _store_run(factory, pdu=pdu, files=files, warmup=warmup, assocs=assocs,
                                                overwrite=args.overwrite)
                        results.setdefault((name, assocs), []).append(rate)
                        other = results.get(("orthanc" if name == "ours" else "ours", assocs))
                        ratio = ""
                        if other and len(other) == len(results[(name, assocs)]):
                            ratio = f"{results[('ours', assocs)][-1] / results[('orthanc', assocs)][-1]:.2f}"
                        print(f"{name:8} {assocs:>6} {line} {ratio:>13}", flush=True)
            if args.rounds > 1 and not args.only_server:
                print("medians over the rounds:")
                for assocs in args.assocs:
                    ours = statistics.median(results[("ours", assocs)])
                    orthanc = statistics.median(results[("orthanc", assocs)])
                    print(f"  {assocs} association(s): Orthanc {orthanc:.0f} inst/s, ours {ours:.0f} inst/s, "
                          f"ours/Orthanc {ours / orthanc:.2f}")
    finally:
        removed(work)


def _store_run(factory, *, pdu: int, files: list[Path], warmup: list[Path], assocs: int,
               overwrite: bool = False) -> tuple[float, str]:
    """One fresh server, the warm-up, then the files over ``assocs`` associations: (instances/s, table cells).
    With ``overwrite``, the files are stored first and the timed run replaces them. The server's archive is
    emptied when it stops and removed when the bench ends (servers._retire)."""
    with factory(extra={"MaximumPduLength": pdu, "OverwriteInstances": overwrite}) as srv:
        wait_dicom(srv.dicom_port)
        storescu(srv.dicom_port, warmup, 1)
        if overwrite:
            storescu(srv.dicom_port, files, assocs)
            _settle_disk()
        before = instances_count(srv) - (len(files) if overwrite else 0)
        cpu = srv.cpu_seconds()
        seconds, codes = storescu(srv.dicom_port, files, assocs)
        cpu = srv.cpu_seconds() - cpu
        stored = instances_count(srv) - before
        if overwrite and any(codes):
            stored = 0      # the count cannot tell a refused resend from a stored one: storescu's status can
    rate = stored / seconds
    _settle_disk()
    return rate, f"{stored:>7} {seconds:>8.2f} {rate:>8.0f} {cpu * 1000 / max(stored, 1):>12.2f}"


def _settle_disk() -> None:
    """Write back what the last run wrote before the next one starts."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


SETTLE_SECONDS = 6


def _sop_uids_of(url: str) -> set[str]:
    """SOPInstanceUID of every instance a server holds."""
    import json

    with urllib.request.urlopen(url + "/instances?expand", timeout=120) as r:
        return {i["MainDicomTags"]["SOPInstanceUID"] for i in json.loads(r.read())}


def movescu(port: int, *, called: str, destination: str, study_uid: str) -> tuple[float, int, str]:
    """DCMTK movescu, study root, STUDY level: (seconds, exit code, stderr)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    started = time.perf_counter()
    run = subprocess.run([MOVESCU, "-S", "-aet", "BENCHSCU", "-aec", called, "-aem", destination,
                          "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                          "127.0.0.1", str(port)], env=env, capture_output=True, timeout=3600)
    return time.perf_counter() - started, run.returncode, run.stderr.decode(errors="replace")


def bench_move(args) -> None:
    import pydicom

    wait_for_freed_inodes()
    work = Path(tempfile.mkdtemp(prefix="bench-move-"))
    try:
        count = args.move_count
        print(f"\nwriting one study of {count} instances to {work} ...", flush=True)
        # one study: series of 100 instances, as many as it takes
        files = write_files(work / "study", count, seed=21, prefix="MOVE", series_per_study=-(-count // 100))
        study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        sent = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
        print(f"\nC-MOVE of one study of {count} CT instances of {files[0].stat().st_size / 1e6:.2f} MB "
              "(movescu asks the source to move it to the destination)")
        print(f"{'source':8} {'dest':8} {'moved':>6} {'seconds':>8} {'inst/s':>8} {'src cpu ms/inst':>16} "
              f"{'dst cpu ms/inst':>16}  check")
        rest_rows: list[str] = []
        # (source, destination): ours and Orthanc each way, and Orthanc to Orthanc as the reference
        for source_name, dest_name in (("ours", "orthanc"), ("orthanc", "ours"), ("orthanc", "orthanc")):
            source_port, dest_port = free_port(), free_port()
            aets = {"ours": "OURS", "orthanc": "ORTHANC"}
            source_aet = aets[source_name]
            dest_aet = aets[dest_name] + ("2" if dest_name == source_name else "")
            common = {"DicomAlwaysAllowMove": True}
            source_extra = {**common, "DicomAet": source_aet,
                            "DicomModalities": {"dest": [dest_aet, "127.0.0.1", dest_port]}}
            dest_extra = {**common, "DicomAet": dest_aet}
            factories = {"ours": ours_server, "orthanc": orthanc_server}
            with factories[source_name](dicom_port=source_port, extra=source_extra) as source, \
                    factories[dest_name](dicom_port=dest_port, extra=dest_extra) as dest:
                wait_dicom(source.dicom_port)
                wait_dicom(dest.dicom_port)
                env = {**os.environ, "TCP_NODELAY": "1"}
                load = subprocess.run([STORESCU, "-aet", "BENCHSCU", "-aec", source_aet, "127.0.0.1",
                                       str(source.dicom_port), *map(str, files)], env=env, capture_output=True)
                if load.returncode != 0 or instances_count(source) != count:
                    print(f"  loading the source failed: {load.stderr.decode(errors='replace')[-300:]}")
                    continue
                src_cpu, dst_cpu = source.cpu_seconds(), dest.cpu_seconds()
                seconds, code, err = movescu(source.dicom_port, called=source_aet, destination=dest_aet,
                                             study_uid=study_uid)
                src_cpu, dst_cpu = source.cpu_seconds() - src_cpu, dest.cpu_seconds() - dst_cpu
                arrived = _sop_uids_of(dest)
                moved = len(arrived & sent)
                check = "all arrived" if arrived == sent else f"MISSING {len(sent - arrived)}"
                if code != 0:
                    check += f"; movescu exit {code}: {err.strip()[-200:]}"
                print(f"{source_name:8} {dest_name:8} {moved:>6} {seconds:>8.2f} {moved / seconds:>8.0f} "
                      f"{src_cpu * 1000 / count:>16.2f} {dst_cpu * 1000 / count:>16.2f}  {check}", flush=True)
                # The same study sent again by the source's REST API (a synchronous store job, one association)
                study_id = _request_json(source + "/studies")[0]        # the only study
                _request_json(dest + f"/studies/{study_id}", method="DELETE")
                src_cpu, dst_cpu = source.cpu_seconds(), dest.cpu_seconds()
                started = time.perf_counter()
                answer = _request_json(source + "/modalities/dest/store", {"Resources": [study_id]})
                seconds = time.perf_counter() - started
                src_cpu, dst_cpu = source.cpu_seconds() - src_cpu, dest.cpu_seconds() - dst_cpu
                arrived = _sop_uids_of(dest)
                check = "all arrived" if arrived == sent else f"MISSING {len(sent - arrived)}"
                if answer.get("FailedInstancesCount"):
                    check += f"; {answer['FailedInstancesCount']} failed"
                rest_rows.append(f"{source_name:8} {dest_name:8} {len(arrived & sent):>6} {seconds:>8.2f} "
                                 f"{len(arrived & sent) / seconds:>8.0f} {src_cpu * 1000 / count:>16.2f} "
                                 f"{dst_cpu * 1000 / count:>16.2f}  {check}")
        print("\nPOST /modalities/dest/store of the same study (synchronous job: the source is the C-STORE SCU)")
        print(f"{'source':8} {'dest':8} {'stored':>6} {'seconds':>8} {'inst/s':>8} {'src cpu ms/inst':>16} "
              f"{'dst cpu ms/inst':>16}  check")
        print("\n".join(rest_rows), flush=True)
    finally:
        removed(work)


def _find_identifier(key: str, value: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in RETURN_KEYS:
        setattr(ds, keyword, "")
    setattr(ds, key, value)
    return ds


def _queries(shape: Shape, seed: int, runs: int) -> dict[str, list]:
    rng = random.Random(seed)
    out: dict[str, list] = {"PatientID=": [], "StudyInstanceUID=": [], "StudyDate=day": []}
    for _ in range(runs + 1):   # + the warm-up
        out["PatientID="].append(_find_identifier("PatientID",
                                                  patient_info(seed, rng.randrange(shape.patients)).patient_id))
        study = study_info(seed, rng.randrange(shape.studies))
        out["StudyInstanceUID="].append(_find_identifier("StudyInstanceUID", study.uid))
        out["StudyDate=day"].append(_find_identifier("StudyDate", study_info(seed, rng.randrange(shape.studies)).date))
    return out


def _measure_find(port: int, queries: dict[str, list]) -> dict[str, dict]:
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae = AE(ae_title="BENCHSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="ORTHANC")
    if not assoc.is_established:
        raise RuntimeError("association refused")
    assoc.dul.socket.socket.setsockopt(6, 1, 1)   # TCP_NODELAY on our side too
    out = {}
    try:
        for name, identifiers in queries.items():
            times, answers = [], []
            for i, identifier in enumerate(identifiers):
                started = time.perf_counter()
                found = []
                for status, ds in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
                    if status and status.Status in (0xFF00, 0xFF01) and ds is not None:
                        found.append(str(ds.get("StudyInstanceUID", "")))
                    elif status and status.Status not in (0xFF00, 0xFF01, 0x0000):
                        print(f"  {name}: status 0x{status.Status:04X}")
                elapsed = (time.perf_counter() - started) * 1000
                if i:   # the first run warms up
                    times.append(elapsed)
                    answers.append(tuple(sorted(found)))
            times.sort()
            out[name] = {"p50": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1],
                         "answers": answers, "matches": sum(len(a) for a in answers) / len(answers)}
    finally:
        assoc.release()
    return out


def bench_find(args) -> None:
    size = 100_000
    shape = Shape.for_count(size)
    ours_dir, orthanc_dir = args.data / f"sqlite-{size}", args.data / f"orthanc-{size}"
    for folder in (ours_dir, orthanc_dir):
        if not (folder / "populated.json").exists():
            print(f"no populated archive in {folder}: run bench/find.py --sizes {size} first; C-FIND skipped")
            return
    queries = _queries(shape, 0, args.runs)
    results = {}
    extra = {"DicomAlwaysAllowFind": True}
    if args.only_server in (None, "ours"):
        with ours_server(workdir=ours_dir, extra=extra,
                         env={"DATABASE_URL": f"sqlite:///{ours_dir}/index/index.sqlite3"}) as srv:
            wait_dicom(srv.dicom_port)
            results["ours"] = _measure_find(srv.dicom_port, queries)
    if args.only_server in (None, "orthanc"):
        with orthanc_server(workdir=orthanc_dir, extra={**extra, "SyncStorageArea": False}) as srv:
            results["orthanc"] = _measure_find(srv.dicom_port, queries)
    print(f"\nC-FIND study level, {size:,} instances ({shape.studies:,} studies), {args.runs} runs, "
          "one open association; ms")
    print(f"{'query':20} {'matches':>8} " + " ".join(f"{n + ' p50':>12} {n + ' p95':>12}" for n in results)
          + "  ours/Orthanc p50")
    for name in queries:
        cells = " ".join(f"{results[n][name]['p50']:>12.1f} {results[n][name]['p95']:>12.1f}" for n in results)
        ratio = ""
        if len(results) == 2:
            ratio = f"{results['ours'][name]['p50'] / results['orthanc'][name]['p50']:.2f}"
            same = results["ours"][name]["answers"] == results["orthanc"][name]["answers"]
            ratio += "" if same else "  ANSWERS DIFFER"
        first = next(iter(results.values()))
        print(f"{name:20} {first[name]['matches']:>8.1f} {cells}  {ratio}")


def bench_associations(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-assoc-"))
    env = {**os.environ, "TCP_NODELAY": "1"}

    def timed_ms(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        return (time.perf_counter() - started) * 1000

    try:
        files = write_files(work / "files", 2 * (args.assoc_runs + 5), seed=13, prefix="ASSOC")
        print(f"\nOne association per exchange, {args.assoc_runs} runs each, one after the other")
        print(f"{'server':8} {'exchange':28} {'p50 ms':>7} {'p95 ms':>7}")
        with orthanc_server() as orthanc, ours_server() as ours:
            figures: dict[tuple[str, str], float] = {}
            for name, srv, sent in (("orthanc", orthanc, files[0::2]), ("ours", ours, files[1::2])):
                wait_dicom(srv.dicom_port)
                target = ["-aet", "BENCHSCU", "-aec", "ORTHANC", "127.0.0.1", str(srv.dicom_port)]
                exchanges = {"echoscu (C-ECHO)": [[ECHOSCU, *target]] * len(sent),
                             "storescu, 1 instance": [[STORESCU, *target, str(f)] for f in sent]}
                for label, commands in exchanges.items():
                    for command in commands[args.assoc_runs:]:       # warm-up
                        timed_ms(command)
                    times = sorted(timed_ms(command) for command in commands[:args.assoc_runs])
                    p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
                    figures[(name, label)] = p50
                    print(f"{name:8} {label:28} {p50:>7.1f} {p95:>7.1f}", flush=True)
            for label in ("echoscu (C-ECHO)", "storescu, 1 instance"):
                print(f"  {label}: ours/Orthanc p50 {figures[('ours', label)] / figures[('orthanc', label)]:.2f} "
                      "(time: lower is better)")
            _association_phases(args, files[0], {"orthanc": orthanc, "ours": ours})
    finally:
        removed(work)


def _tool_request(tool: str, *, then: tuple[str, ...] = ()) -> bytes:
    """The A-ASSOCIATE-RQ a DCMTK tool sends, caught on a socket of ours (``then``: its arguments after the port)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)
        port = str(listener.getsockname()[1])
        process = subprocess.Popen([tool, "-aet", "BENCHSCU", "-aec", "ORTHANC", "127.0.0.1", port, *then],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with listener.accept()[0] as peer:
                header = _recv_exactly(peer, 6)
                return header + _recv_exactly(peer, struct.unpack(">I", header[2:6])[0])
        finally:
            process.kill()
            process.wait()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            raise RuntimeError("connection closed")
        data += piece
    return data


def _pdu_type(sock: socket.socket) -> int:
    header = _recv_exactly(sock, 6)
    _recv_exactly(sock, struct.unpack(">I", header[2:6])[0])
    return header[0]


def _association_phases(args, instance: Path, servers: dict) -> None:
    """The servers' own share: each tool's A-ASSOCIATE-RQ sent again on a raw socket, timed from the request to
    the A-ASSOCIATE-AC, then the A-RELEASE-RQ to its answer (no tool start-up, no process exit)."""
    release = struct.pack(">BBI", 0x05, 0, 4) + b"\0\0\0\0"
    requests = {"echoscu's request": _tool_request(ECHOSCU),
                "storescu's request": _tool_request(STORESCU, then=(str(instance),))}
    print(f"\nAssociation set-up alone: the tools' requests sent on a raw socket, {5 * args.assoc_runs} runs each")
    print(f"{'server':8} {'request':20} {'associate p50':>14} {'p95':>6} {'release p50':>12}")
    figures: dict[tuple[str, str], float] = {}
    for name, srv in servers.items():
        for label, request in requests.items():
            associate, released = [], []
            for run in range(5 * args.assoc_runs + 10):
                with socket.create_connection(("127.0.0.1", srv.dicom_port), timeout=30) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    started = time.perf_counter()
                    sock.sendall(request)
                    if _pdu_type(sock) != 0x02:
                        raise RuntimeError(f"{name} did not accept {label}")
                    accepted = time.perf_counter()
                    sock.sendall(release)
                    _pdu_type(sock)
                    if run >= 10:          # warm-up
                        associate.append((accepted - started) * 1000)
                        released.append((time.perf_counter() - accepted) * 1000)
                time.sleep(0.005)
            associate.sort()
            figures[(name, label)] = statistics.median(associate)
            print(f"{name:8} {label:20} {figures[(name, label)]:>14.2f} {associate[int(0.95 * (len(associate) - 1))]:>6.2f} "
                  f"{statistics.median(released):>12.2f}", flush=True)
    for label in requests:
        print(f"  {label}: set-up ours/Orthanc p50 {figures[('ours', label)] / figures[('orthanc', label)]:.1f} "
              "(time: lower is better)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("store", "find", "move", "assoc"))
    ap.add_argument("--server", dest="only_server", choices=("ours", "orthanc"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="C-STORE runs per server, alternating which goes first")
    ap.add_argument("--assocs", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    ap.add_argument("--pdus", type=lambda s: [int(x) for x in s.split(",")], default=[16384, 131072],
                    help="MaximumPduLength of both servers, one C-STORE table each")
    ap.add_argument("--overwrite", action="store_true",
                    help="C-STORE: time a second send of the files, OverwriteInstances on both servers")
    ap.add_argument("--move-count", type=int, default=500)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--assoc-runs", type=int, default=40, help="associations per exchange in the fourth part")
    ap.add_argument("--data", type=Path, default=Path("/tmp/find-bench"))
    args = ap.parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"WARNING: load average {load:.2f} before the bench: other work on this machine skews the figures")
    if args.only in (None, "store"):
        bench_store(args)
    if args.only in (None, "find"):
        bench_find(args)
    if args.only in (None, "move"):
        bench_move(args)
    if args.only in (None, "assoc"):
        bench_associations(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
