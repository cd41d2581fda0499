"""Refusals Django makes before a view runs answer in the API's JSON shape under /api/:
a body over DATA_UPLOAD_MAX_MEMORY_SIZE was an HTML 400 page (issue 11)."""

from __future__ import annotations

import json

import pytest

from activities.models import Email
from tests.api import client_for
from tests.pages import signed_in

pytestmark = pytest.mark.django_db


def test_a_body_over_the_limit_is_a_json_413_that_names_it(owner):
    body = json.dumps({"subject": "Hi", "to": ["a@x.org"], "body_text": "x" * (6 * 1024 * 1024)})
    answer = client_for(owner).post("/api/v1/emails/", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["code"] == "request_too_large"
    assert answer.json()["detail"].startswith(
        "the request body is over the limit of 5,242,880 bytes (5 MB)"
    )
    assert not Email.objects.exists()


def test_the_limit_is_the_setting(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    small = json.dumps({"subject": "Hi", "body_text": "x" * 500})
    assert (
        client_for(owner)
        .post("/api/v1/emails/", data=small, content_type="application/json")
        .status_code
        == 201
    )
    big = json.dumps({"subject": "Hi", "body_text": "x" * 1500})
    assert (
        client_for(owner)
        .post("/api/v1/emails/", data=big, content_type="application/json")
        .status_code
        == 413
    )


def test_the_staff_pages_keep_djangos_page(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    page = signed_in(owner).post("/mail/new/", {"subject": "x" * 2000})
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")
