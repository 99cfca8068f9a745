"""Boolean fields of JSON request bodies, as every route that takes one checks them."""

from __future__ import annotations

import json

import pytest

from archive.body_fields import boolean_field, unsigned_field
from archive.errors import BadFileFormat


def test_present_absent_and_wrong():
    assert boolean_field({"Permissive": True}, "Permissive", False) is True
    assert boolean_field({"Permissive": False}, "Permissive", True) is False
    assert boolean_field({}, "Permissive", True) is True
    for wrong in ("true", 1, 0, None, [], {}):
        with pytest.raises(BadFileFormat) as caught:
            boolean_field({"Permissive": wrong}, "Permissive", False)
        assert caught.value.details == "Boolean value expected in field: Permissive"


@pytest.mark.django_db
def test_a_modality_with_a_wrong_boolean_is_refused_over_rest(client):
    response = client.put("/modalities/pacs", {"AET": "PACS", "Host": "127.0.0.1", "Port": 104, "AllowEcho": "yes"},
                          content_type="application/json")
    assert response.status_code == 400
    assert response.json()["Details"] == "Boolean value expected in field: AllowEcho"
    assert client.get("/modalities").json() == []


@pytest.mark.parametrize(("value", "details"), [
    (2**31 - 1, None), (0, None), ("5", "Integer value expected in field: Timeout"),
    (True, "Integer value expected in field: Timeout"), (1.5, "Integer value expected in field: Timeout"),
    (-1, "Unsigned integer value expected in field: Timeout"),
    (-2**31, "Unsigned integer value expected in field: Timeout"),
    (-2**31 - 1, ""), (2**31, ""), (2**63, ""), (2**64 - 1, ""),       # asInt() throws: a bare Bad file format
    (2**64, "Integer value expected in field: Timeout"), (-2**63 - 1, "Integer value expected in field: Timeout"),
])
def test_unsigned_field_as_orthanc_reads_it(value, details):
    """Compared with Orthanc 1.10.1's PUT /peers/{id} (its PUT /modalities/{id} answers the bare ones 500)."""
    if details is None:
        assert unsigned_field({"Timeout": value}, "Timeout", 7) == value
        return
    with pytest.raises(BadFileFormat) as caught:
        unsigned_field({"Timeout": value}, "Timeout", 7)
    assert (caught.value.details or "") == details


@pytest.mark.django_db
@pytest.mark.parametrize("uri", ["/modalities/m", "/peers/p", "/modalities/m/echo"])
def test_a_timeout_past_32_bits_is_refused_not_a_500(client, uri):
    client.put("/modalities/m", {"AET": "A", "Host": "127.0.0.1", "Port": 104}, content_type="application/json")
    body = {"AET": "A", "Host": "127.0.0.1", "Port": 104, "URL": "http://127.0.0.1:1/", "Timeout": 2**63}
    if uri.endswith("echo"):
        body = {"Timeout": 2**63}
    response = client.generic("POST" if uri.endswith("echo") else "PUT", uri, json.dumps(body),
                              content_type="application/json")
    assert response.status_code == 400 and response.json()["OrthancError"] == "Bad file format"
