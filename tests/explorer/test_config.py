from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.config import ConfigurationError, load_configuration

ROOT = Path(__file__).resolve().parent.parent.parent


def test_comments_are_accepted_and_defaults_filled(tmp_path):
    path = tmp_path / "orthanc.json"
    path.write_text('{\n // a comment\n "Name": "X", /* block */ "HttpPort": 9000\n}')
    cfg = load_configuration(path)
    assert cfg["Name"] == "X" and cfg["HttpPort"] == 9000
    assert cfg["StableAge"] == 60 and cfg["DicomAet"] == "ORTHANC" and cfg["OverwriteInstances"] is False


def test_authentication_follows_remote_access_when_unset(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"RemoteAccessAllowed": True}))
    assert load_configuration(path)["AuthenticationEnabled"] is True


def test_relative_folders_are_relative_to_the_file(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"StorageDirectory": "store"}))
    assert load_configuration(path)["StorageDirectory"] == str(tmp_path / "store")


def test_folder_of_files_is_merged(tmp_path):
    (tmp_path / "a.json").write_text('{"Name": "A"}')
    (tmp_path / "b.json").write_text('{"HttpPort": 8050}')
    cfg = load_configuration(tmp_path)
    assert cfg["Name"] == "A" and cfg["HttpPort"] == 8050


@pytest.mark.parametrize("content, message", [
    ("{ not json", "not valid JSON"),
    ('{"HttpPort": "abc"}', "HttpPort"),
    ('{"MaximumStorageMode": "Delete"}', "MaximumStorageMode"),
    ('{"RegisteredUsers": {"a": 1}}', "registered user"),
    ('{"RegisteredUsers": {"a:b": "c"}}', "cannot contain a colon"),
    ('{"DefaultEncoding": "Klingon"}', "DefaultEncoding"),
    ('{"Dictionary": {"zz,1": ["LO", "Name"]}}', "Dictionary"),
    ('{"Dictionary": {"0009,1001": "LO"}}', "Dictionary"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "o.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        load_configuration(path)


def test_server_refuses_to_start_on_a_bad_file(tmp_path):
    path = tmp_path / "o.json"
    path.write_text('{"HttpPort": true}')
    result = subprocess.run([sys.executable, "manage.py", "serve", "--config", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "HttpPort" in result.stderr
