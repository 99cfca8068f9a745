"""The local-disk storage area: two-phase writes, bytes kept exactly."""

import os

from archive.storage import INCOMING, WRITE_PIECE, DicomFileStorage


def test_a_file_bigger_than_one_write_piece_is_stored_byte_for_byte(tmp_path):
    storage = DicomFileStorage(str(tmp_path), sync=True)
    data = os.urandom(2 * WRITE_PIECE + 12345)       # written in three pieces
    storage.stage("0123abcd-uuid", data)
    assert (tmp_path / INCOMING / "0123abcd-uuid").read_bytes() == data
    storage.publish("0123abcd-uuid")
    assert not (tmp_path / INCOMING / "0123abcd-uuid").exists()
    assert (tmp_path / "01" / "23" / "0123abcd-uuid").read_bytes() == data
    assert storage.read("0123abcd-uuid") == data


def test_a_staged_file_that_is_discarded_leaves_nothing(tmp_path):
    storage = DicomFileStorage(str(tmp_path))
    storage.stage("ffee-uuid", b"\x00" * 10)
    storage.discard("ffee-uuid")
    storage.discard("ffee-uuid")       # twice: no error
    assert list((tmp_path / INCOMING).iterdir()) == []
