"""A C-MOVE whose study a modality re-sends meanwhile (OverwriteInstances): every sub-operation still succeeds.

The SCP looks the files of the whole study up before the first sub-operation; an overwrite replaces them. The
replaced files stay readable for a while (archive/storage.py, REPLACED_GRACE): before that, every sub-operation
after the overwrite failed ("unreadable") and the move answered 0xB000."""

from __future__ import annotations

import socket
import time

import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelMove

from tests.dicom_factory import make_dicom
from tests.live import free_port, live_server

EXPLICIT = "1.2.840.10008.1.2.1"
COUNT = 6


def _wait_for_port(port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def test_a_move_of_a_study_overwritten_meanwhile_sends_every_instance(tmp_path):
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(COUNT)]

    def version(number: int) -> list[bytes]:
        return [make_dicom(StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=sop,
                           InstanceNumber=str(k + 1), ImageComments=f"version {number}")
                for k, sop in enumerate(sops)]

    received: list[Dataset] = []
    overwritten: list[int] = []
    port = free_port()
    config = {"DicomAet": "ORTHANC", "OverwriteInstances": True, "DicomAlwaysAllowMove": True,
              "DicomModalities": {"dest": ["DEST", "127.0.0.1", port]}}
    with live_server(tmp_path, **config) as server:

        def store(event):
            if not received:
                # The first sub-operation: the modality re-sends the study now, replacing every stored file
                overwritten.extend(requests.post(server.url + "/instances", data=data, timeout=30).status_code
                                   for data in version(2))
            received.append(event.dataset)
            return 0x0000

        destination = AE(ae_title="DEST")
        destination.add_supported_context(CTImageStorage, [EXPLICIT])
        scp = destination.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
        try:
            for data in version(1):
                assert requests.post(server.url + "/instances", data=data, timeout=30).status_code == 200
            _wait_for_port(server.config["DicomPort"])
            scu = AE(ae_title="SCU")
            scu.acse_timeout = scu.dimse_timeout = scu.network_timeout = 30
            scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            assoc = scu.associate("127.0.0.1", server.config["DicomPort"], ae_title="ORTHANC")
            assert assoc.is_established
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = study
            answers = list(assoc.send_c_move(identifier, "DEST", StudyRootQueryRetrieveInformationModelMove))
            assoc.release()
        finally:
            scp.shutdown()
        final = answers[-1][0]
        assert overwritten == [200] * COUNT
        assert final.Status == 0x0000, final
        assert final.NumberOfCompletedSuboperations == COUNT and final.NumberOfFailedSuboperations == 0
        assert sorted(ds.SOPInstanceUID for ds in received) == sorted(sops)
        # Sent as listed when the move began (the first version), or as now stored: whole instances either way
        assert {str(ds.ImageComments) for ds in received} <= {"version 1", "version 2"}
        statistics = requests.get(server.url + "/statistics", timeout=10).json()
        assert statistics["CountInstances"] == COUNT

