"""Request IDs in process: echoed or made, on the response and on the request's log lines; JSON log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from explorer.observability import JsonFormatter, RequestIdFilter, request_id_from_header

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured():
    """The 'django.request' logger's lines as the console handler would write them, in JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("django.request")
    log.addHandler(handler)
    yield stream
    log.removeHandler(handler)


def test_the_clients_request_id_is_echoed_and_logged(client, captured):
    response = client.get("/patients/unknown", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "lb-1234.abc"
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert lines and all(line["request_id"] == "lb-1234.abc" for line in lines)
    assert {"ts", "level", "logger", "message", "request_id", "pid"} <= set(lines[0])
    assert lines[0]["message"] == "Not Found: /patients/unknown"


def test_a_request_without_id_gets_a_new_one_each_time(client):
    first, second = client.get("/system")["X-Request-ID"], client.get("/system")["X-Request-ID"]
    assert len(first) == 32 and first != second


def test_an_unsafe_request_id_is_replaced():
    assert request_id_from_header("a b\nc") != "a b\nc"
    assert request_id_from_header("x" * 201) != "x" * 201
    assert request_id_from_header("5f0c-abc") == "5f0c-abc"


def test_lines_outside_a_request_carry_a_dash(client, captured):
    client.get("/system")
    logging.getLogger("django.request").warning("after the request")
    assert json.loads(captured.getvalue().splitlines()[-1])["request_id"] == "-"
