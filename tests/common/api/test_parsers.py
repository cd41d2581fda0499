"""JSON nested thousands of levels deep was a RecursionError (a 500 with the debug page)
on emails/, emails/claim/ and auth/token/ (issue 11). Every JSON body of the API is now
held to CRM_API_MAX_JSON_DEPTH levels: deeper is a 400 that says so, and writes nothing."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from activities.models import BulkSend, Email, Template
from common.api.parsers import json_depth_at_most
from tests.api import client_for

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"to": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"


def nested(levels: int) -> str:
    """A body ``levels`` deep: an object holding lists."""
    return json.dumps({"subject": "Hi", "x": json.loads("[" * (levels - 1) + "]" * (levels - 1))})


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/emails/",
        "/api/v1/emails/claim/",
        "/api/v1/auth/token/",
        "/api/v1/templates/",
        "/api/v1/bulk-sends/",
        "/api/v1/contacts/",
    ],
)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["lists", "objects"])
def test_a_body_nested_thousands_deep_is_a_400_that_says_so(staff, path, body):
    client = APIClient() if path.endswith("token/") else client_for(staff)
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"] == (
        "JSON parse error - the body is nested deeper than 32 levels"
    )
    assert not Email.objects.exists()
    assert not Template.objects.exists()
    assert not BulkSend.objects.exists()


def test_the_limit_is_the_setting(owner, settings):
    settings.CRM_API_MAX_JSON_DEPTH = 4
    client = client_for(owner)
    # Within: parsed, then refused by the serializer for what it is ("x" is unknown to it,
    # or accepted and dropped), never for its depth.
    within = client.post("/api/v1/emails/", data=nested(4), content_type="application/json")
    assert "nested deeper" not in within.content.decode()
    over = client.post("/api/v1/emails/", data=nested(5), content_type="application/json")
    assert over.status_code == 400
    assert over.json()["detail"].endswith("nested deeper than 4 levels")


def test_depth_is_counted_without_recursion():
    assert json_depth_at_most([], 1)
    assert json_depth_at_most({"a": [1, 2]}, 2)
    assert not json_depth_at_most({"a": [[1]]}, 2)
    assert json_depth_at_most("scalar", 0) is True
    deep: list = []
    inner = deep
    for _ in range(100_000):  # far past the interpreter's recursion limit
        inner.append([])
        inner = inner[0]
    assert not json_depth_at_most(deep, 32)
