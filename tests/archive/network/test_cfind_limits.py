"""LimitFindResults and LimitFindInstances on our C-FIND SCP, over a real association: the first answers,
then 0xFE00, as Orthanc's FindScp answers a query it cropped (real Orthanc 1.10.1 does so on the wire)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as StudyRootFind

from archive.ingest import Origin, instance_store
from archive.network.scp import ScpSettings, server_start
from tests.dicom_factory import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)


def _find(port: int, **keys) -> tuple[int, list[int]]:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(StudyRootFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="ORTHANC")
    assert assoc.is_established
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    try:
        statuses = [status.Status for status, _ds in assoc.send_c_find(identifier, StudyRootFind)]
    finally:
        assoc.release()
    return sum(1 for s in statuses if s in (0xFF00, 0xFF01)), statuses[-1:]


@pytest.fixture
def archive_of_three_studies():
    for k in range(3):
        for i in range(3):
            instance_store(data=make_dicom(PatientID="LIM", StudyInstanceUID=f"1.2.3.9.{k}",
                                           SeriesInstanceUID=f"1.2.3.9.{k}.1", SOPInstanceUID=f"1.2.3.9.{k}.1.{i}"),
                           origin=Origin.rest(remote_ip="127.0.0.1"))


@pytest.mark.parametrize(("options", "level", "expected"), [
    ({"LimitFindResults": 2}, "STUDY", (2, [0xFE00])),
    ({"LimitFindResults": 3}, "STUDY", (3, [0x0000])),       # exactly the limit: complete
    ({"LimitFindResults": 0}, "STUDY", (3, [0x0000])),       # 0: no limit
    ({"LimitFindInstances": 4}, "IMAGE", (4, [0xFE00])),
    ({"LimitFindInstances": 4, "LimitFindResults": 1}, "IMAGE", (4, [0xFE00])),   # its own limit at IMAGE
])
def test_a_cropped_find_answers_what_fits_then_matching_terminated(archive_of_three_studies, orthanc_config,
                                                                    options, level, expected):
    orthanc_config(DicomAlwaysAllowFind=True, **options)
    running = server_start(scp=ScpSettings.from_configuration(), port=0)
    try:
        keys = {"QueryRetrieveLevel": level, "StudyInstanceUID": ""}
        if level == "IMAGE":
            keys.update(SeriesInstanceUID="", SOPInstanceUID="")
        assert _find(running.port, **keys) == expected
    finally:
        running.stop()
