"""Boolean fields of JSON request bodies, as every route that takes one checks them."""

from __future__ import annotations

import pytest

from archive.body_fields import boolean_field
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
