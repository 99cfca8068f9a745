"""A bare TCP connection (a load balancer's health check, a port scan) must not hold one of the
DicomThreadsCount slots: pynetdicom alone waits DicomScpTimeout for an A-ASSOCIATE-RQ that never comes."""

from __future__ import annotations

import socket
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from archive.network.scp import ScpSettings, server_start

pytestmark = pytest.mark.django_db(transaction=True)


def test_closed_probes_free_their_slot_at_once_and_associations_still_get_in():
    running = server_start(scp=ScpSettings(port=0, threads=2, timeout=30), port=0)
    try:
        for _ in range(5):   # more than DicomThreadsCount, each closed before saying anything
            socket.create_connection(("127.0.0.1", running.port), timeout=5).close()
        deadline = time.monotonic() + 3
        while running.server.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.server.active == 0
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        started = time.monotonic()
        assoc = ae.associate("127.0.0.1", running.port, ae_title="ORTHANC")
        assert assoc.is_established and time.monotonic() - started < 2
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    finally:
        running.stop()
