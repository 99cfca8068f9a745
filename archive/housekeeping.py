"""Background chores of the server process: stable resources and recovery of staged files."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import OperationalError

from archive.models import Attachment
from archive.services import resources_stabilize
from archive.settings import archive_settings
from archive.storage import dicom_storage

logger = logging.getLogger(__name__)


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
    """One pass of the periodic chores; never raises (a busy database is retried next tick)."""
    try:
        while resources_stabilize(stable_age=archive_settings().stable_age) > 0:
            pass
    except OperationalError as exc:
        logger.info("housekeeper: database busy (%s); retrying later", exc)
    except Exception:
        logger.exception("housekeeper failed")
