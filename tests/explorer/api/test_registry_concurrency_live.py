"""Modalities and peers changed by several clients at once, on a real ``manage.py serve`` (several HTTP worker
processes) and its database (SQLite, or PostgreSQL when DATABASE_URL names one): each change counts once, as
Orthanc's lock on its configuration makes it."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.live import live_server

pytestmark = pytest.mark.django_db

CLIENTS = 8


def _at_once(calls) -> list[int]:
    """Run the calls on as many threads, released together: their HTTP statuses."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result().status_code for f in [pool.submit(call) for call in calls]]


OPTIONS = {"DicomServerEnabled": False, "DicomModalities": {"configured": ["CONF", "127.0.0.1", 104]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("registry"), **OPTIONS) as srv:
        yield srv


@pytest.mark.parametrize("kind, body", [
    ("modalities", {"AET": "A", "Host": "127.0.0.1", "Port": 104}),
    ("peers", {"Url": "http://127.0.0.1:1/"}),
])
def test_concurrent_deletes_of_one_entry_succeed_once(server, kind, body):
    for round_ in range(3):
        name = f"gone{round_}"
        assert requests.put(f"{server.url}/{kind}/{name}", json=body, timeout=10).status_code == 200
        url = f"{server.url}/{kind}/{name}"
        statuses = _at_once([functools.partial(requests.delete, url, timeout=30)] * CLIENTS)
        assert sorted(statuses) == [200] + [404] * (CLIENTS - 1)
        assert name not in requests.get(f"{server.url}/{kind}", timeout=10).json()


def test_concurrent_first_changes_all_count(tmp_path):
    """No row holds the REST changes before the first one: the concurrent first ones must not lose each other
    (nor fail on the row another one created)."""
    names = [f"first{i}" for i in range(CLIENTS - 1)]
    body = {"AET": "A", "Host": "127.0.0.1", "Port": 104}
    with live_server(tmp_path, **OPTIONS) as server:
        statuses = _at_once([lambda n=n: requests.put(f"{server.url}/modalities/{n}", json=body, timeout=30)
                             for n in names]
                            + [lambda: requests.delete(f"{server.url}/modalities/configured", timeout=30)])
        assert statuses == [200] * CLIENTS
        assert sorted(requests.get(f"{server.url}/modalities", timeout=10).json()) == names
