"""Request bodies as Orthanc's HTTP server takes them, through the real WSGI server (gunicorn): chunked uploads
(Transfer-Encoding, no Content-Length) and MaximumRequestBodySizeMB (Orthanc 1.12.11)."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.dicom_factory import make_dicom
from tests.live import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("body"), MaximumRequestBodySizeMB=1) as srv:
        yield srv


def _address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _chunks(data: bytes, size: int = 10_000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _post_chunked(server, path: str, data: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*_address(server), timeout=60)
    try:
        # A generator has no length: http.client sends it chunked (Transfer-Encoding: chunked)
        conn.request("POST", path, body=_chunks(data), headers={"Content-Type": "application/dicom"},
                     encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_chunked_upload_is_stored(server):
    # Orthanc 1.10.1 stores a chunked POST /instances; Django alone read such a body as empty ("Bad file format")
    data = make_dicom(PatientID="CHUNKED", SOPInstanceUID="5.1")
    status, body = _post_chunked(server, "/instances", data)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["Status"] == "Success"
    conn = http.client.HTTPConnection(*_address(server), timeout=60)
    conn.request("GET", f"/instances/{answer['ID']}/file")
    assert conn.getresponse().read() == data
    conn.close()
    # a chunked JSON body too (any route that reads its body)
    status, body = _post_chunked(server, "/tools/find", json.dumps({"Level": "Patient", "Query": {}}).encode())
    assert status == 200 and len(json.loads(body)) == 1


def test_body_over_maximum_request_body_size_is_refused_before_it_is_read(server):
    # Content-Length of 2 MB against MaximumRequestBodySizeMB 1: the answer comes without the body being sent
    sock = socket.create_connection(_address(server), timeout=30)
    try:
        sock.sendall(b"POST /instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/dicom\r\n"
                     b"Content-Length: 2097152\r\n\r\n" + b"\0" * 1000)
        start = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
        assert time.monotonic() - start < 10
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        error = json.loads(body)
        assert (error["HttpStatus"], error["HttpError"], error["OrthancStatus"]) == (413, "Request Entity Too Large", 8)
        assert "MaximumRequestBodySizeMB" in error["Details"]
        # The rest of the body is not waited for (gunicorn alone would read it, for up to 5 s): the server closes
        # the connection at once
        answered = time.monotonic()
        sock.settimeout(10)
        while sock.recv(65536):
            pass
        assert time.monotonic() - answered < 2
    finally:
        sock.close()


def test_chunked_body_over_the_limit_is_refused_and_nothing_stored(server):
    big = make_dicom(PatientID="TOO-BIG", SOPInstanceUID="5.2", Rows=1024, Columns=1024,
                     PixelData=bytes(2 * 1024 * 1024))
    status, body = _post_chunked(server, "/instances", big)
    assert status == 413 and json.loads(body)["OrthancStatus"] == 8
    conn = http.client.HTTPConnection(*_address(server), timeout=60)
    conn.request("POST", "/tools/lookup", body=b"TOO-BIG")
    assert json.loads(conn.getresponse().read()) == []
    # Within the limit, by Content-Length, on a kept-alive connection: stored
    small = make_dicom(PatientID="SMALL", SOPInstanceUID="5.3")
    for _ in range(2):
        conn.request("POST", "/instances", body=small, headers={"Content-Type": "application/dicom"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["Status"] in ("Success", "AlreadyStored")
    conn.close()
