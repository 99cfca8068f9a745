"""Archives, synchronous (streamed) and as jobs, and the /jobs routes around them."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.test import Client

from archive.ingest import Origin, instance_store
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _inline_jobs(settings, tmp_path):
    settings.JOBS_RUN_INLINE = True  # django-q2's synchronous mode: the job runs inside the request
    settings.ORTHANC = {**settings.ORTHANC, "StorageDirectory": str(tmp_path / "storage")}


def _study() -> str:
    for k, (modality, description) in enumerate([("MR", "sT2W/FLAIR"), ("MR", "sT2W/FLAIR"), ("CT", "")]):
        ids = instance_store(data=make_dicom(
            PatientID="5Yp0E", PatientName="BRAINIX", AccessionNumber="0",
            StudyDescription="IRM cérébrale, neuro-crâne", Modality=modality, SeriesDescription=description,
            SeriesInstanceUID=f"1.2.3.{1 if modality == 'MR' else 2}", SOPInstanceUID=f"1.2.3.{k}", InstanceNumber=str(k + 1)),
            origin=Origin()).ids
    return ids.study


def _names(data: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


EXPECTED = ["5Yp0E BRAINIX/0 IRM crbrale neurocrne/CT/CT000003.dcm",
            "5Yp0E BRAINIX/0 IRM crbrale neurocrne/MR sT2WFLAIR/MR000001.dcm",
            "5Yp0E BRAINIX/0 IRM crbrale neurocrne/MR sT2WFLAIR/MR000002.dcm"]


def test_synchronous_archive_is_streamed_with_orthancs_layout() -> None:
    study = _study()
    response = Client().get(f"/studies/{study}/archive")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'filename="{study}.zip"'
    assert response.streaming
    assert _names(response.getvalue()) == EXPECTED


def test_asynchronous_archive_is_a_job_with_an_output() -> None:
    study = _study()
    client = Client()
    submitted = client.post(f"/studies/{study}/archive", {"Asynchronous": True, "Priority": 3},
                            content_type="application/json").json()
    assert submitted["Path"] == f"/jobs/{submitted['ID']}"
    job = client.get(submitted["Path"]).json()
    assert job["State"] == "Success" and job["Type"] == "Archive" and job["Progress"] == 100
    assert job["Priority"] == 3 and job["ErrorCode"] == 0 and job["ErrorDescription"] == "Success"
    assert job["Content"]["InstancesCount"] == 3 and "CompletionTime" in job
    output = client.get(f"{submitted['Path']}/archive")
    assert output["Content-Type"] == "application/zip"
    assert _names(b"".join(output.streaming_content)) == EXPECTED
    assert client.get("/jobs").json() == [submitted["ID"]]
    assert client.get("/jobs?expand").json()[0]["ID"] == submitted["ID"]
    missing = client.get(f"{submitted['Path']}/nope")
    assert missing.status_code == 404 and missing.json()["Details"] == "Job has no such output: nope"


def test_job_state_machine_as_orthanc() -> None:
    study = _study()
    client = Client()
    job_id = client.post(f"/studies/{study}/archive", {"Asynchronous": True},
                         content_type="application/json").json()["ID"]
    # A finished job: cancel and pause change nothing, resume and resubmit are a bare 400.
    assert client.post(f"/jobs/{job_id}/cancel").json() == {}
    assert client.post(f"/jobs/{job_id}/pause").json() == {}
    for action in ("resume", "resubmit"):
        response = client.post(f"/jobs/{job_id}/{action}")
        assert response.status_code == 400 and response.content == b""
    missing = client.get("/jobs/nope")
    assert (missing.status_code, missing.content) == (404, b"")          # Orthanc: no body
    for action in ("cancel", "pause", "resume", "resubmit"):
        response = client.post(f"/jobs/nope/{action}")
        assert (response.status_code, response.content) == (400, b"")
    for uri in ("/jobs/nope/archive", f"/jobs/{job_id}/cancel"):         # GET of an action is an output lookup
        response = client.get(uri)
        assert (response.status_code, response.json()["OrthancStatus"]) == (404, 7)
        assert response.json()["Details"] == f"Job has no such output: {uri.rsplit('/', 1)[1]}"
    response = client.delete("/jobs/nope")
    assert (response.status_code, response.json()["Details"]) == (404, "No job found with this id: nope")
    deleted = client.delete(f"/jobs/{job_id}")
    assert (deleted.status_code, deleted.content, deleted["Content-Type"]) == (200, b"", "text/plain")
    assert client.get(f"/jobs/{job_id}").status_code == 404


def test_jobs_as_orthancs_registry_shows_them() -> None:
    """GET /jobs in the order of the IDs (Orthanc's registry is a map); Timestamp the time of the request;
    EffectiveRuntime in milliseconds; a running job past 1% has its EstimatedTimeOfArrival."""
    import datetime as dt

    from jobs.models import Job, State

    ids = sorted(Job.objects.create(type="Archive", state=state, runtime=1.2345678, progress=40).id
                 for state in (State.SUCCESS, State.RUNNING, State.PENDING))
    client = Client()
    assert client.get("/jobs").json() == ids
    shown = {job["ID"]: job for job in client.get("/jobs?expand").json()}
    assert [job["ID"] for job in client.get("/jobs?expand").json()] == ids
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for job in shown.values():
        assert job["EffectiveRuntime"] == 1.234
        assert abs(dt.datetime.strptime(job["Timestamp"], "%Y%m%dT%H%M%S.%f") - now) < dt.timedelta(seconds=5)
    running = next(j for j in shown.values() if j["State"] == "Running")
    eta = dt.datetime.strptime(running["EstimatedTimeOfArrival"], "%Y%m%dT%H%M%S.%f")
    assert dt.timedelta(seconds=1.5) < eta - now < dt.timedelta(seconds=7)     # 1.234 s for 40%: ~1.85 s to go
    assert not any("EstimatedTimeOfArrival" in j for j in shown.values() if j["State"] != "Running")


def test_bad_requests() -> None:
    client = Client()
    assert client.post("/studies/nope/archive", {"Asynchronous": True},
                       content_type="application/json").status_code == 404
    study = _study()
    response = client.post(f"/studies/{study}/archive", {"Asynchronous": "x"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["Details"] == "Boolean value expected in field: Asynchronous"


def test_unnamed_folders_and_file_names_as_orthanc() -> None:
    """Orthanc's ArchiveJob: an empty folder name is "Unknown <level>" (the files landed at the root of the ZIP);
    file names take the modality in upper case, and as many digits as leave 8 characters (audit, 1.10.1)."""
    for k, modality in enumerate(["m", "ct", ""]):
        ids = instance_store(data=make_dicom(
            PatientID="", PatientName="", AccessionNumber="", StudyInstanceUID="1.2.8", StudyDescription="",
            Modality=modality, SeriesDescription="", SeriesInstanceUID=f"1.2.8.{k}", SOPInstanceUID=f"1.2.8.{k}.1",
            InstanceNumber=None), origin=Origin()).ids
    names = _names(Client().get(f"/patients/{ids.patient}/archive").getvalue())
    assert sorted(n.rsplit("/", 1)[1] for n in names) == ["00000000.dcm", "CT000000.dcm", "M0000000.dcm"]
    assert {n.rsplit("/", 2)[0] for n in names} == {"Unknown Patient/Unknown Study"}
    assert sum(n.split("/")[2] == "Unknown Series" for n in names) == 1   # the series without a modality


def test_patient_folder_takes_the_patients_name() -> None:
    # Two studies of one PatientID under different names: the patient keeps the name it was created with, and
    # its folder is named after it for both studies (real Orthanc 1.10.1), whatever study comes first
    for study, name in (("1.2.11", "FIRST^NAME"), ("1.2.10", "OTHER^NAME")):   # 1.2.10's study ID sorts first
        ids = instance_store(data=make_dicom(PatientID="PX", PatientName=name, StudyInstanceUID=study,
                                             SeriesInstanceUID=f"{study}.1", SOPInstanceUID=f"{study}.1.1"),
                             origin=Origin()).ids
    names = _names(Client().get(f"/patients/{ids.patient}/archive").getvalue())
    assert len(names) == 2 and {n.split("/")[0] for n in names} == {"PX FIRST NAME"}


def test_create_archive_of_several_resources() -> None:
    study = _study()
    client = Client()
    series = client.get(f"/studies/{study}/series").json()
    response = client.post("/tools/create-archive", {"Resources": [s["ID"] for s in series[:1]]},
                           content_type="application/json")
    assert response.status_code == 200 and len(_names(response.getvalue())) in (1, 2)


def test_names_keep_what_orthanc_keeps() -> None:
    # Checked on real Orthanc 1.10.1: '^' becomes a space, '_' and '.' stay, brackets and signs go.
    for k, (modality, description) in enumerate([("OT", "a_b.c(d) e+f=g"), ("SEG", "x")]):
        ids = instance_store(data=make_dicom(
            PatientID="Z9_x.y", PatientName="Doe^John", AccessionNumber="A_1", StudyInstanceUID="1.2.9",
            StudyDescription="S_1", Modality=modality, SeriesDescription=description,
            SeriesInstanceUID=f"1.2.9.{k}", SOPInstanceUID=f"1.2.9.{k}.1", InstanceNumber=None),
            origin=Origin()).ids
    names = _names(Client().get(f"/studies/{ids.study}/archive").getvalue())
    assert names == ["Z9_x.y Doe John/A_1 S_1/OT a_b.cd efg/OT000000.dcm", "Z9_x.y Doe John/A_1 S_1/SEG x/SE000000.dcm"]


UTF8_EXPECTED = ["5Yp0E BRAINIX/0 IRM cérébrale neurocrâne/CT/CT000003.dcm",
                 "5Yp0E BRAINIX/0 IRM cérébrale neurocrâne/MR sT2WFLAIR/MR000001.dcm",
                 "5Yp0E BRAINIX/0 IRM cérébrale neurocrâne/MR sT2WFLAIR/MR000002.dcm"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_utf8_names_keep_the_letters_of_every_script(asynchronous: bool) -> None:
    # "Utf8" (Orthanc 1.12.11): letters of any script stay, written with the ZIP's UTF-8 flag (bit 11); what
    # is no letter or digit ('/', ',', '-') still goes, so that DICOM text never becomes a path
    study = _study()
    client = Client()

    def archive(body: dict) -> bytes:
        response = client.post(f"/studies/{study}/archive", {**body, "Asynchronous": asynchronous},
                               content_type="application/json")
        if asynchronous:
            return client.get(f"{response.json()['Path']}/archive").getvalue()
        return response.getvalue()

    data = archive({"Utf8": True})
    assert _names(data) == UTF8_EXPECTED
    assert all(info.flag_bits & 0x800 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert _names(archive({"Utf8": False})) == EXPECTED
    assert _names(archive({})) == EXPECTED                     # ZipUseUtf8 is false by default


def test_zip_use_utf8_is_the_default_of_utf8(settings) -> None:
    study = _study()
    settings.ORTHANC = {**settings.ORTHANC, "ZipUseUtf8": True}
    client = Client()
    assert _names(client.get(f"/studies/{study}/archive").getvalue()) == UTF8_EXPECTED
    assert _names(client.post("/tools/create-archive", {"Resources": [study]},
                              content_type="application/json").getvalue()) == UTF8_EXPECTED
    assert _names(client.post("/tools/create-archive", {"Resources": [study], "Utf8": False},
                              content_type="application/json").getvalue()) == EXPECTED
    response = client.post("/tools/create-archive", {"Resources": [study], "Utf8": "yes"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["Details"] == "Boolean value expected in field: Utf8"


def test_utf8_names_of_other_scripts_and_decomposed_accents() -> None:
    from jobs.kinds.archive import _folder

    assert _folder("山田^太郎", utf8=True) == "山田 太郎"
    assert _folder("Ivanov/Иван,-", utf8=True) == "IvanovИван"
    assert _folder("Mu\u0308ller", utf8=True) == "Müller"          # a combining diaeresis, composed
    assert _folder("..\x00a\tb", utf8=True) == "ab"
    assert _folder("山田 Müller") == "Mller"                        # ASCII names, as Orthanc <= 1.12.10


def test_media_is_a_dicomdir_file_set(tmp_path) -> None:
    import pydicom
    from pydicom.fileset import FileSet

    study = _study()
    client = Client()
    data = client.get(f"/studies/{study}/media").getvalue()
    folder = zipfile.ZipFile(io.BytesIO(data))
    assert "DICOMDIR" in folder.namelist() and len(folder.namelist()) == 4
    folder.extractall(tmp_path / "media")
    fileset = FileSet(pydicom.dcmread(tmp_path / "media" / "DICOMDIR"))
    assert fileset.ID == "ORTHANC_MEDIA" and len(fileset) == 3
    assert sorted(str(i.SOPInstanceUID) for i in fileset) == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]
    job_id = client.post(f"/studies/{study}/media", {"Asynchronous": True}, content_type="application/json").json()["ID"]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["Type"] == "Media" and job["State"] == "Success"
    assert "DICOMDIR" in zipfile.ZipFile(io.BytesIO(b"".join(client.get(f"/jobs/{job_id}/archive").streaming_content))).namelist()


def _dicomdir(data: bytes, tmp_path) -> pydicom.Dataset:
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    return pydicom.dcmread(tmp_path / "DICOMDIR")


def test_media_of_files_without_patient_id_or_study_id_as_orthanc(tmp_path) -> None:
    """Orthanc's DicomDirWriter takes them (a missing PatientID is an empty one, issue 124); pydicom's record
    creators refused the whole media (audit against Orthanc 1.10.1)."""
    ids = instance_store(data=make_dicom(PatientID=None, StudyID=None, SeriesNumber=None, SOPInstanceUID="1.2.7.1",
                                         StudyInstanceUID="1.2.7", SeriesInstanceUID="1.2.7.1.1"),
                         origin=Origin()).ids
    response = Client().get(f"/studies/{ids.study}/media")
    assert response.status_code == 200
    records = {r.DirectoryRecordType: r for r in _dicomdir(response.getvalue(), tmp_path).DirectoryRecordSequence}
    assert set(records) == {"PATIENT", "STUDY", "SERIES", "IMAGE"}
    assert records["PATIENT"].PatientID == "" and "PatientName" in records["PATIENT"]
    assert "StudyID" not in records["STUDY"] and "SeriesNumber" not in records["SERIES"]
    assert records["IMAGE"].ReferencedSOPInstanceUIDInFile == "1.2.7.1"


def test_extended_media_adds_the_series_description(tmp_path) -> None:
    study = _study()
    client = Client()
    for route, body, extended in (("tools/create-media", [study], False),
                                  ("tools/create-media-extended", [study], True),
                                  ("tools/create-media", {"Resources": [study], "Extended": True}, True),
                                  (f"studies/{study}/media", {}, False)):
        data = client.post(f"/{route}", body, content_type="application/json").getvalue()
        series = [r for r in _dicomdir(data, tmp_path / route.replace("/", "_")).DirectoryRecordSequence
                  if r.DirectoryRecordType == "SERIES"]
        assert len(series) == 2
        assert all(("SeriesDescription" in r) is extended for r in series), route
    data = client.get(f"/studies/{study}/media?extended").getvalue()
    assert any(r.get("SeriesDescription") == "sT2W/FLAIR"
               for r in _dicomdir(data, tmp_path / "get").DirectoryRecordSequence)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_archive_transcoded(asynchronous: bool) -> None:
    import pydicom

    study = _study()
    client = Client()
    body = {"Transcode": "1.2.840.10008.1.2.5", "Asynchronous": asynchronous}
    response = client.post(f"/studies/{study}/archive", body, content_type="application/json")
    if asynchronous:
        response = client.get(f"/jobs/{response.json()['ID']}/archive")
    folder = zipfile.ZipFile(io.BytesIO(response.getvalue()))
    syntaxes = {pydicom.dcmread(io.BytesIO(folder.read(n))).file_meta.TransferSyntaxUID for n in folder.namelist()}
    assert syntaxes == {"1.2.840.10008.1.2.5"}
    bad = client.post(f"/studies/{study}/archive", {"Transcode": "1.2.3"}, content_type="application/json")
    assert bad.status_code == 400


def _same_name_files() -> list[bytes]:
    """Two series of one study with the same folder name, two patients whose folders are named alike, and
    white space that Orthanc folds."""
    files = []
    for k in range(2):
        files.append(make_dicom(PatientID="P1", PatientName="Doe^John", AccessionNumber="A1",
                                StudyInstanceUID="1.2.7.1", StudyDescription="Knee\tleft  side",
                                Modality="CT", SeriesDescription="Axial", SeriesInstanceUID=f"1.2.7.1.{k}",
                                SOPInstanceUID=f"1.2.7.1.{k}.1", InstanceNumber="1"))
    files.append(make_dicom(PatientID="P-1", PatientName="Doe^John", AccessionNumber="A1",
                            StudyInstanceUID="1.2.7.2", StudyDescription="Knee", Modality="MR",
                            SeriesInstanceUID="1.2.7.2.1", SOPInstanceUID="1.2.7.2.1.1", InstanceNumber="1"))
    return files


def test_folders_of_the_same_name_are_numbered_as_orthanc_numbers_them() -> None:
    from archive.identifiers import resource_ids

    for data in _same_name_files():
        instance_store(data=data, origin=Origin())
    client = Client()
    patients = sorted(client.get("/patients").json())
    names = _names(client.post("/tools/create-archive", {"Resources": patients},
                               content_type="application/json").getvalue())
    assert len(names) == 3 and len(set(names)) == 3
    first, second = sorted(("P1", "P-1"), key=lambda pid: resource_ids(
        patient_id=pid, study_uid="", series_uid="", sop_uid="").patient)
    p1 = "P1 Doe John" if first == "P1" else "P1 Doe John-2"
    assert names == sorted([f"{p1}/A1 Kneeleft side/CT Axial/CT000001.dcm",
                            f"{p1}/A1 Kneeleft side/CT Axial-2/CT000001.dcm",
                            f"{'P1 Doe John-2' if first == 'P1' else 'P1 Doe John'}/A1 Knee/MR Axial/MR000001.dcm"])


@pytest.mark.django_db(transaction=True)
def test_folder_names_as_real_orthanc_names_them() -> None:
    """The same files in real Orthanc 1.10.1 and here: the same folders (1.10.1 numbers the files from 0;
    1.12.5 by InstanceNumber, as we do, so only the folders are compared)."""
    import pydicom
    import requests

    from bench.servers import orthanc_server

    def folders(data: bytes) -> dict[str, str]:
        """SOP Instance UID -> its folder in the archive."""
        archive = zipfile.ZipFile(io.BytesIO(data))
        return {str(pydicom.dcmread(io.BytesIO(archive.read(name))).SOPInstanceUID): name.rsplit("/", 1)[0]
                for name in archive.namelist()}

    files = _same_name_files()
    for data in files:
        instance_store(data=data, origin=Origin())
    client = Client()
    ours = folders(client.post("/tools/create-archive", {"Resources": client.get("/patients").json()},
                               content_type="application/json").getvalue())
    with orthanc_server() as orthanc:
        for data in files:
            requests.post(f"{orthanc}/instances", data=data, timeout=30).raise_for_status()
        answer = requests.post(f"{orthanc}/tools/create-archive",
                               json={"Resources": requests.get(f"{orthanc}/patients", timeout=30).json()}, timeout=60)
        theirs = folders(answer.content)
    assert len(ours) == 3 and ours == theirs


def test_create_archive_takes_the_identifiers_alone_or_in_resources() -> None:
    """Orthanc's AddResourcesOfInterest: a JSON array of identifiers, or {"Resources": [...]}."""
    study = _study()
    client = Client()
    for body in ([study], {"Resources": [study]}):
        for route in ("create-archive", "create-media"):
            response = client.post(f"/tools/{route}", body, content_type="application/json")
            assert response.status_code == 200 and response["Content-Type"] == "application/zip", (route, body)
    assert _names(client.post("/tools/create-archive", [study], content_type="application/json")
                  .getvalue()) == EXPECTED
    for body, details in ((b"{}", "Missing field Resources in the JSON body"),
                          (b'{"Resources": [1]}', "Expected a list of strings (Orthanc identifiers)"),
                          (b"", "Expected a list of resources to archive in the body"),
                          (b"{bad", "Expected a list of resources to archive in the body")):
        answer = client.post("/tools/create-archive", body, content_type="application/json").json()
        assert (answer["HttpStatus"], answer["OrthancStatus"], answer["Details"]) == (400, 15, details)


def test_resource_archive_post_ignores_a_body_that_is_no_object_and_refuses_one_that_is_no_json() -> None:
    study = _study()
    client = Client()
    response = client.post(f"/studies/{study}/archive", b"[]", content_type="application/json")
    assert response.status_code == 200 and _names(response.getvalue()) == EXPECTED
    for body in (b"", b"{bad"):
        response = client.post(f"/studies/{study}/archive", body, content_type="application/json")
        assert (response.status_code, response.json()["OrthancStatus"]) == (400, 15)
