"""Under /api/ a 404 and a body over the limit answer in the API's JSON shape even with
DEBUG on, where Django would answer with its technical pages (issue 11)."""

from __future__ import annotations

import json

import pytest

from activities.models import Email
from tests.api import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    return settings


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing/", "/api/v1/emails/1/x/", "/api/nothing", "/api/v1/emails/0.5/"]
)
def test_an_unknown_api_url_is_a_json_404_with_debug_on(debug, owner, path):
    answer = client_for(owner).get(path)
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"detail": "Not found.", "code": "not_found"}
    assert b"URLconf" not in answer.content


def test_a_missing_slash_still_redirects_first(debug, owner):
    answer = client_for(owner).get("/api/v1/emails")
    assert answer.status_code == 301
    assert answer["Location"] == "/api/v1/emails/"


def test_a_missing_email_keeps_the_views_own_json_404(debug, owner):
    answer = client_for(owner).get("/api/v1/emails/999999/")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_a_body_over_the_limit_is_a_json_413_with_debug_on(debug, owner):
    debug.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"subject": "Hi", "to": ["a@x.org"], "body_text": "x" * 2000})
    answer = client_for(owner).post("/api/v1/emails/", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["code"] == "request_too_large"
    assert not Email.objects.exists()


def test_pages_outside_the_api_keep_djangos_debug_404(debug, client):
    answer = client.get("/no-such-page/")
    assert answer.status_code == 404
    assert answer["Content-Type"].startswith("text/html")
    assert b"URLconf" in answer.content
