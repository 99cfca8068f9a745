"""Orthanc configuration options as a client sees them through the REST API, each checked against real
Orthanc (1.10.1 live; 1.12.11's source and documentation where they differ)."""

from __future__ import annotations

import base64
import io
import json
import zlib

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from archive import runtime
from archive.housekeeping import housekeeper_tick
from archive.models import Attachment, ContentType
from archive.storage import dicom_storage
from tests.dicom_factory import make_dataset, make_dicom
from tests.samples import sample_path

pytestmark = pytest.mark.django_db

CHALLENGE = 'Basic realm="Orthanc Secure Area"'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def upload(client, data: bytes):
    return client.generic("POST", "/instances", data, content_type="application/dicom")


def stored(client, **tags) -> dict:
    response = upload(client, make_dicom(**tags))
    assert response.status_code == 200, response.content
    return response.json()


def patient_ids(client) -> set[str]:
    return {p["MainDicomTags"]["PatientID"] for p in client.get("/patients?expand").json()}


# --- RemoteAccessAllowed, AuthenticationEnabled, RegisteredUsers ------------------------------------------

def test_remote_client_is_refused_with_orthancs_challenge(client, orthanc_config):
    orthanc_config(RemoteAccessAllowed=False, AuthenticationEnabled=False)
    response = client.get("/system", REMOTE_ADDR="192.0.2.7")
    assert (response.status_code, response.content) == (401, b"")
    assert response["WWW-Authenticate"] == CHALLENGE


def test_remote_client_is_refused_even_with_valid_credentials(client, orthanc_config):
    orthanc_config(RemoteAccessAllowed=False, AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    response = client.get("/system", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION=basic("alice", "secret"))
    assert response.status_code == 401


def test_only_127_0_0_1_is_local(client, orthanc_config):
    orthanc_config(RemoteAccessAllowed=False, AuthenticationEnabled=False)
    assert client.get("/system", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/system", REMOTE_ADDR="127.0.0.2").status_code == 401


def test_remote_client_is_served_when_remote_access_is_allowed(client, orthanc_config):
    orthanc_config(RemoteAccessAllowed=True, AuthenticationEnabled=False)
    assert client.get("/system", REMOTE_ADDR="192.0.2.7").status_code == 200


def test_authentication_asks_for_a_registered_user(client, orthanc_config):
    orthanc_config(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    response = client.get("/patients")
    assert (response.status_code, response.content) == (401, b"")
    assert response["WWW-Authenticate"] == CHALLENGE
    assert "Content-Type" not in response


def test_a_wrong_password_is_refused(client, orthanc_config):
    orthanc_config(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    assert client.get("/patients", HTTP_AUTHORIZATION=basic("alice", "wrong")).status_code == 401


def test_a_registered_user_is_served(client, orthanc_config):
    orthanc_config(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    response = client.get("/patients", HTTP_AUTHORIZATION=basic("alice", "secret"))
    assert (response.status_code, response.json()) == (200, [])


def test_credentials_are_not_checked_when_authentication_is_off(client, orthanc_config):
    orthanc_config(AuthenticationEnabled=False, RegisteredUsers={"alice": "secret"})
    assert client.get("/patients", HTTP_AUTHORIZATION=basic("alice", "wrong")).status_code == 200


# --- Dictionary ------------------------------------------------------------------------------------------

DICTIONARY = {
    "0009,1001": ["DS", "MyDecimal", 1, 1, "MYCREATOR"],
    "0009,02": ["US", "MyShortKey", 1, 1, "MYCREATOR"],     # low 8 bits, as Orthanc's documentation advises
    "0011,1001": ["SL", "MySigned", 1, 1],                  # no creator: elements without one
    "0013,1001": ["LO", "MyOtherCreator", 1, 1, "MYCREATOR"],
}


def implicit_vr_private_file() -> bytes:
    """Private elements in implicit VR: only a dictionary tells how to read them (as real Orthanc did)."""
    ds = make_dataset(PatientID="DICT")
    ds.add_new(0x00090010, "LO", "MYCREATOR")
    ds.add_new(0x00091001, "DS", "123.5")
    ds.add_new(0x00091002, "US", 513)
    ds.add_new(0x00111001, "SL", -7)
    ds.add_new(0x00130010, "LO", "OTHER")
    ds.add_new(0x00131001, "LO", "hello")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def private_tags(client, orthanc_config) -> dict:
    orthanc_config(Dictionary=DICTIONARY)
    instance = upload(client, implicit_vr_private_file()).json()["ID"]
    return client.get(f"/instances/{instance}/tags").json()


def test_dictionary_names_and_reads_an_implicit_vr_private_element(private_tags):
    assert private_tags["0009,1001"] == {"Name": "MyDecimal", "PrivateCreator": "MYCREATOR", "Type": "String",
                                         "Value": "123.5"}


def test_dictionary_vr_decodes_binary_private_values(private_tags):
    assert private_tags["0009,1002"]["Name"] == "MyShortKey"
    assert private_tags["0009,1002"]["Value"] == "513"


def test_dictionary_entry_without_creator_applies_without_creator(private_tags):
    assert private_tags["0011,1001"] == {"Name": "MySigned", "Type": "String", "Value": "-7"}


def test_dictionary_entry_of_another_creator_does_not_apply(private_tags):
    assert private_tags["0013,1001"] == {"Name": "Unknown Tag & Data", "PrivateCreator": "OTHER", "Type": "Null",
                                         "Value": None}


def test_without_dictionary_implicit_private_values_are_unknown(client):
    instance = upload(client, implicit_vr_private_file()).json()["ID"]
    tag = client.get(f"/instances/{instance}/tags").json()["0009,1001"]
    assert (tag["Name"], tag["Type"]) == ("Unknown Tag & Data", "Null")


# --- DefaultEncoding -------------------------------------------------------------------------------------

@pytest.fixture
def fresh_runtime():
    runtime.runtime_reset()
    yield
    runtime.runtime_reset()


def no_charset_instance(client) -> dict:
    return stored(client, SpecificCharacterSet=None, PatientName=b"Caf\xe9", StudyDescription=b"Caf\xe9")


@pytest.mark.parametrize(("encoding", "text"), [("Latin1", "Café"), ("Windows1251", "Cafй")])
def test_default_encoding_decodes_tags_without_charset(client, orthanc_config, fresh_runtime, encoding, text):
    orthanc_config(DefaultEncoding=encoding)
    instance = no_charset_instance(client)["ID"]
    assert client.get(f"/instances/{instance}/tags").json()["0010,0010"]["Value"] == text


@pytest.mark.parametrize(("encoding", "text"), [("Latin1", "Café"), ("Windows1251", "Cafй")])
def test_default_encoding_decodes_main_dicom_tags(client, orthanc_config, fresh_runtime, encoding, text):
    orthanc_config(DefaultEncoding=encoding)
    study = no_charset_instance(client)["ParentStudy"]
    assert client.get(f"/studies/{study}").json()["MainDicomTags"]["StudyDescription"] == text


def test_default_encoding_set_at_runtime_applies_to_tags(client, fresh_runtime):
    instance = no_charset_instance(client)["ID"]
    assert client.put("/tools/default-encoding", b"Windows1251").status_code == 200
    assert client.get(f"/instances/{instance}/tags").json()["0010,0010"]["Value"] == "Cafй"


def test_default_encoding_applies_to_the_module_route(client, orthanc_config, fresh_runtime):
    orthanc_config(DefaultEncoding="Windows1251")
    patient = no_charset_instance(client)["ParentPatient"]
    assert client.get(f"/patients/{patient}/module").json()["0010,0010"]["Value"] == "Cafй"


# --- ExtraMainDicomTags ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("level", "route", "parent", "name", "value"), [
    ("Patient", "patients", "ParentPatient", "PatientWeight", "70"),
    ("Study", "studies", "ParentStudy", "RequestingPhysician", "Who^Doc"),
    ("Series", "series", "ParentSeries", "SliceThickness", "1.5"),
    ("Instance", "instances", "ID", "Rows", "8"),
])
def test_extra_main_dicom_tags_are_shown_at_their_level(client, orthanc_config, level, route, parent, name, value):
    orthanc_config(ExtraMainDicomTags={level: [name]})
    answer = stored(client, PatientWeight="70", RequestingPhysician="Who^Doc", SliceThickness="1.5")
    body = client.get(f"/{route}/{answer[parent]}").json()
    assert body["MainDicomTags"][name] == value


def test_extra_main_dicom_tags_stay_out_when_not_configured(client):
    answer = stored(client, PatientWeight="70")
    assert "PatientWeight" not in client.get(f"/patients/{answer['ParentPatient']}").json()["MainDicomTags"]


# --- StorageCompression ----------------------------------------------------------------------------------

def test_storage_compression_compresses_the_file_on_disk(client, orthanc_config, storage_dir):
    orthanc_config(StorageCompression=True)
    data = make_dicom()
    upload(client, data)
    # the file and, as Orthanc, the file up to its pixel data
    (on_disk, header) = sorted((p.read_bytes() for p in storage_dir.rglob("*") if p.is_file()), key=len, reverse=True)
    assert on_disk != data
    assert zlib.decompress(on_disk[8:]) == data     # Orthanc's layout: uint64 size, then a zlib stream
    assert int.from_bytes(on_disk[:8], "little") == len(data)
    assert data.startswith(zlib.decompress(header[8:]))


def test_storage_compression_leaves_answers_unchanged(client, orthanc_config):
    orthanc_config(StorageCompression=True)
    data = make_dicom()
    instance = upload(client, data).json()["ID"]
    assert client.get(f"/instances/{instance}/file").getvalue() == data
    assert client.get(f"/instances/{instance}/tags?simplify").json()["PatientID"] == "P1"


@pytest.mark.parametrize("sample", ["ColorTestMalaterre.dcm", "TransferSyntaxes/1.2.840.10008.1.2.2.dcm",
                                    "TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm", "TransferSyntaxes/1.2.840.10008.1.2.dcm"])
def test_compressed_tags_are_read_from_the_part_before_the_pixel_data(client, orthanc_config, storage_dir, sample):
    """Without ?whole, the tags routes read the "dicom-until-pixel-data" attachment, as Orthanc: the same
    answers as from the whole file, which is not even read (here: destroyed)."""
    data = sample_path(sample).read_bytes()
    routes = ("tags", "tags?short", "simplified-tags", "tags?whole")
    instance = upload(client, data).json()["ID"]
    plain = {r: client.get(f"/instances/{instance}/{r}").json() for r in routes}
    study = client.get(f"/instances/{instance}/study").json()["ID"]
    plain["instances-tags"] = client.get(f"/studies/{study}/instances-tags").json()
    client.delete(f"/instances/{instance}")

    orthanc_config(StorageCompression=True)
    upload(client, data)
    for route in routes[:-1]:
        assert json.dumps(client.get(f"/instances/{instance}/{route}").json()) == json.dumps(plain[route])
    assert client.get(f"/studies/{study}/instances-tags").json() == plain["instances-tags"]
    assert client.get(f"/instances/{instance}/tags?whole").json() == plain["tags?whole"]
    whole_file = Attachment.objects.get(resource__public_id=instance, content_type=ContentType.Dicom).uuid
    dicom_storage().remove(whole_file)
    assert json.dumps(client.get(f"/instances/{instance}/tags").json()) == json.dumps(plain["tags"])
    assert client.get(f"/instances/{instance}/tags?whole").status_code != 200


# --- MaximumPatientCount, MaximumStorageSize, MaximumStorageMode -----------------------------------------

def test_patient_count_recycles_the_oldest_unprotected_patient(client, orthanc_config):
    orthanc_config(MaximumPatientCount=2)
    first = stored(client, PatientID="A", StudyInstanceUID="1.1")
    assert client.put(f"/patients/{first['ParentPatient']}/protected", b"1").status_code == 200
    stored(client, PatientID="B", StudyInstanceUID="2.1")
    stored(client, PatientID="C", StudyInstanceUID="3.1")
    assert patient_ids(client) == {"A", "C"}


def test_patient_count_reject_answers_507(client, orthanc_config):
    orthanc_config(MaximumPatientCount=1, MaximumStorageMode="Reject")
    stored(client, PatientID="A", StudyInstanceUID="1.1")
    response = upload(client, make_dicom(PatientID="B", StudyInstanceUID="2.1"))
    assert response.status_code == 507
    assert response.json() == {"HttpError": "Insufficient Storage", "HttpStatus": 507,
                               "Message": "The file storage is full", "Method": "POST",
                               "OrthancError": "The file storage is full", "OrthancStatus": 19,
                               "Uri": "/instances"}
    assert patient_ids(client) == {"A"}


def test_reject_mode_still_takes_instances_of_stored_patients(client, orthanc_config):
    orthanc_config(MaximumPatientCount=1, MaximumStorageMode="Reject")
    stored(client, PatientID="A", StudyInstanceUID="1.1")
    stored(client, PatientID="A", StudyInstanceUID="1.2")
    assert len(client.get("/studies").json()) == 2


def half_megabyte(patient: str) -> bytes:
    return make_dicom(PatientID=patient, StudyInstanceUID=f"9.{ord(patient)}", Rows=500, Columns=500,
                      PixelData=bytes(500 * 500 * 2))


def test_storage_size_recycles_the_oldest_unprotected_patient(client, orthanc_config):
    orthanc_config(MaximumStorageSize=1)   # MB: two of these instances fit, not three
    first = upload(client, half_megabyte("A")).json()
    client.put(f"/patients/{first['ParentPatient']}/protected", b"1")
    upload(client, half_megabyte("B"))
    assert upload(client, half_megabyte("C")).status_code == 200
    assert patient_ids(client) == {"A", "C"}


def test_storage_size_reject_answers_507(client, orthanc_config):
    orthanc_config(MaximumStorageSize=1, MaximumStorageMode="Reject")
    upload(client, half_megabyte("A"))
    upload(client, half_megabyte("B"))
    response = upload(client, half_megabyte("C"))
    assert (response.status_code, response.json()["OrthancStatus"]) == (507, 19)
    assert patient_ids(client) == {"A", "B"}


def test_storage_size_counts_the_compressed_size(client, orthanc_config):
    orthanc_config(MaximumStorageSize=1, MaximumStorageMode="Reject", StorageCompression=True)
    for patient in "ABC":    # zeros compress to almost nothing
        assert upload(client, half_megabyte(patient)).status_code == 200


def test_nothing_left_to_recycle_is_a_500_with_orthancs_details(client, orthanc_config):
    orthanc_config(MaximumPatientCount=1)
    first = stored(client, PatientID="A", StudyInstanceUID="1.1")
    client.put(f"/patients/{first['ParentPatient']}/protected", b"1")
    response = upload(client, make_dicom(PatientID="B", StudyInstanceUID="2.1"))
    assert response.status_code == 500
    body = response.json()
    assert (body["OrthancStatus"], body["Details"]) == (19, "Cannot recycle more patients")


def test_a_failed_recycling_recycles_no_one(client, orthanc_config):
    orthanc_config(MaximumStorageSize=1)
    first = upload(client, half_megabyte("A")).json()
    client.put(f"/patients/{first['ParentPatient']}/protected", b"1")
    upload(client, half_megabyte("B"))
    big = make_dicom(PatientID="C", Rows=700, Columns=700, PixelData=bytes(700 * 700 * 2))
    assert upload(client, big).status_code == 500   # recycling B would not be enough: B stays
    assert patient_ids(client) == {"A", "B"}


def test_an_instance_larger_than_the_storage_is_refused_first(client, orthanc_config):
    orthanc_config(MaximumStorageSize=1)
    upload(client, half_megabyte("A"))
    big = make_dicom(PatientID="C", Rows=800, Columns=800, PixelData=bytes(800 * 800 * 2))
    response = upload(client, big)
    assert response.status_code == 500
    assert response.json()["Details"] == (f"Cannot store an instance of size {len(big)} bytes in a storage "
                                          "area limited to 1048576")
    assert patient_ids(client) == {"A"}


# --- StableAge -------------------------------------------------------------------------------------------

def test_resources_become_stable_after_stable_age(client, orthanc_config):
    orthanc_config(StableAge=0)
    series = stored(client)["ParentSeries"]
    housekeeper_tick()
    assert client.get(f"/series/{series}").json()["IsStable"] is True


def test_resources_stay_unstable_before_stable_age(client, orthanc_config):
    orthanc_config(StableAge=3600)
    series = stored(client)["ParentSeries"]
    housekeeper_tick()
    assert client.get(f"/series/{series}").json()["IsStable"] is False


def test_patient_level_disabled_leaves_no_patients_route(client, orthanc_config, storage_dir):
    """PatientLevelEnabled=false (1.12.11, experimental): Orthanc registers no /patients route, so each is an
    unknown URI (404, 'Unknown resource'), whatever its method; the other levels and /tools/find still serve."""
    stored = client.generic("POST", "/instances", make_dicom(), content_type="application/dicom").json()
    assert client.get(f"/patients/{stored['ParentPatient']}").status_code == 200
    orthanc_config(PatientLevelEnabled=False)
    assert client.get("/system").json()["PatientLevelEnabled"] is False
    for method, uri in (("GET", "/patients"), ("GET", f"/patients/{stored['ParentPatient']}"),
                        ("GET", f"/patients/{stored['ParentPatient']}/studies"),
                        ("DELETE", f"/patients/{stored['ParentPatient']}"),
                        ("POST", f"/patients/{stored['ParentPatient']}/anonymize")):
        response = client.generic(method, uri)
        assert response.status_code == 404, (method, uri)
        assert response.json()["Message"] == "Unknown resource" and response.json()["Method"] == method
    assert client.get(f"/studies/{stored['ParentStudy']}").status_code == 200
    assert client.get(f"/patients/{stored['ParentPatient']}").status_code == 404   # nothing was deleted
    found = client.post("/tools/find", {"Level": "Patient", "Query": {}}, content_type="application/json")
    assert found.json() == [stored["ParentPatient"]]
    assert client.get("/patientsX").status_code == 404      # not a /patients route: unknown anyway
