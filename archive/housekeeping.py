"""Background chores of the server process: stable resources and recovery of staged files."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.db import OperationalError

from archive.models import Attachment
from archive.services import resources_stabilize
from archive.settings import archive_settings
from archive.storage import dicom_storage

logger = logging.getLogger(__name__)
_last_recovery = [0.0]
_last_purge = [0.0]
PURGE_SECONDS = 60


def storage_recover() -> tuple[int, int]:
    """Settle the files a crash left staged: publish those the index knows, discard the others."""
    def known(uuids: Iterable[str]) -> set[str]:
        uuids = list(uuids)
        found: set[str] = set()
        for i in range(0, len(uuids), 900):
            found.update(Attachment.objects.filter(uuid__in=uuids[i:i + 900]).values_list("uuid", flat=True))
        return found

    return dicom_storage().recover(known)


def housekeeper_tick() -> None:
    """One pass of the periodic chores; never raises (a busy database is retried next tick). None under
    ReadOnly: marking resources stable and settling staged files are writes."""
    if archive_settings().read_only:
        return
    try:
        while resources_stabilize(stable_age=archive_settings().stable_age) > 0:
            pass
        if getattr(dicom_storage(), "recover_grace", 0) > 0 and time.monotonic() - _last_recovery[0] > 60:
            # S3: recovery only settles markers older than the grace period, so it is safe beside ingests in
            # flight in other processes, and cheap (one LIST of incoming/): run it every minute, not only at
            # start (a marker left by a crash just before a restart is younger than the grace at start).
            _last_recovery[0] = time.monotonic()
            storage_recover()
        if time.monotonic() - _last_purge[0] > PURGE_SECONDS:
            _last_purge[0] = time.monotonic()
            dicom_storage().purge_replaced()
    except OperationalError as exc:
        logger.info("housekeeper: database busy (%s); retrying later", exc)
    except Exception:
        logger.exception("housekeeper failed")
