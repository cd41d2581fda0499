"""The API's throttles when their counters cannot be read: the request goes through."""

from __future__ import annotations

import logging

import pytest

from tests.api import client_for
from tests.smtp import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_down(settings):
    """The cache on a Redis that is not there (nothing listens on the port)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }


def test_a_cache_that_is_down_lets_api_requests_through_with_a_warning(owner, cache_down, caplog):
    caplog.set_level(logging.WARNING, logger="common.api.throttling")

    response = client_for(owner).get("/api/v1/emails/")

    assert response.status_code == 200, response.content
    [record] = [r for r in caplog.records if r.name == "common.api.throttling"]
    assert "throttle counters unavailable (ConnectionError" in record.getMessage()


def test_the_token_endpoint_too(owner, cache_down, caplog):
    """``auth/token/`` is throttled per address (anonymous): still answered."""
    caplog.set_level(logging.WARNING, logger="common.api.throttling")

    response = client_for(None).post(
        "/api/v1/auth/token/", {"username": owner.username, "password": "demo"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["token"]
    assert any("request let through" in r.getMessage() for r in caplog.records)
