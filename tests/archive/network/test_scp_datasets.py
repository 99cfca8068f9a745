"""The C-STORE SCP's look at a received dataset before it is stored (no association needed)."""

from __future__ import annotations

import struct

from archive.network.scp import leading_invalid_groups_dropped, little_endian_dataset

SOP_CLASS = struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 2) + b"1\x00"


def test_stray_elements_leading_a_dataset_are_dropped_in_every_little_endian_syntax():
    stray = struct.pack("<HH2sH", 0x0002, 0x0003, b"UI", 4) + b"1.2\x00"
    assert leading_invalid_groups_dropped(stray + SOP_CLASS, False) == SOP_CLASS
    assert little_endian_dataset("1.2.840.10008.1.2.4.50") is False      # JPEG: an explicit VR dataset too
    assert little_endian_dataset("1.2.840.10008.1.2.5") is False
    assert little_endian_dataset("1.2.840.10008.1.2") is True
    assert little_endian_dataset("1.2.840.10008.1.2.2") is None and little_endian_dataset("1.2.840.10008.1.2.1.99") is None
    implicit = struct.pack("<HHI", 0x0000, 0x0000, 4) + b"\x00" * 4 + struct.pack("<HHI", 0x0008, 0x0016, 2) + b"1\x00"
    assert leading_invalid_groups_dropped(implicit, True) == implicit[12:]


def test_a_dataset_that_cannot_be_walked_is_left_as_received():
    truncated = b"\x02\x00\x01\x00OB\x00\x00"                    # a long VR header cut short
    assert leading_invalid_groups_dropped(truncated, False) == truncated
    too_long = struct.pack("<HH2sH", 0x0002, 0x0003, b"UI", 40) + b"1.2"
    assert leading_invalid_groups_dropped(too_long, False) == too_long
    assert leading_invalid_groups_dropped(SOP_CLASS, False) == SOP_CLASS     # nothing to drop: the same bytes
