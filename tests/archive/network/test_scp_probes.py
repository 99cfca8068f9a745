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


def test_a_handler_failing_after_its_association_started_counts_it_once(monkeypatch):
    """The association's thread counts the association done when it ends; a handler that fails after starting
    that thread must not count it a second time (the count would then miss a live association: DicomThreadsCount
    and handle_store's sole writer read it)."""
    from archive.network.association import FastRequestHandler

    running = server_start(scp=ScpSettings(port=0, threads=4, timeout=30), port=0)
    try:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        kept = ae.associate("127.0.0.1", running.port, ae_title="ORTHANC")
        assert kept.is_established and running.server.active == 1
        started = FastRequestHandler.handle

        def start_then_fail(self) -> None:
            started(self)
            raise RuntimeError("the handler fails after the association's thread started")

        monkeypatch.setattr(FastRequestHandler, "handle", start_then_fail)
        failing = ae.associate("127.0.0.1", running.port, ae_title="ORTHANC")
        monkeypatch.undo()
        if failing.is_established:
            failing.release()
        deadline = time.monotonic() + 5
        while running.server.active != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)     # a second decrement would come from the failing association's thread ending
        assert running.server.active == 1        # the kept association, still open
        assert kept.send_c_echo().Status == 0
        kept.release()
        deadline = time.monotonic() + 3
        while running.server.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.server.active == 0
    finally:
        running.stop()
