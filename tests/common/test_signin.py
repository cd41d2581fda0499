"""Sign-in attempts are limited per user and client address (django-axes, common.signin):
the sign-in page, the admin's and the API's token endpoint count alike, and a refusal is
a 429 that says why and for how long. API throttle counts live in the shared cache."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.core.cache import caches
from django.test import Client

from tests.services import need_network_broker

pytestmark = pytest.mark.django_db

SIGN_IN = "/sign-in/"
TOKEN = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.CRM_API_THROTTLE_LOGIN = ""  # the API's own rate limit is not what is tested


def fail(client: Client, username: str = "alice", path: str = SIGN_IN, **extra):
    return client.post(path, {"username": username, "password": "wrong"}, **extra)


def test_the_page_refuses_a_user_after_the_limit_with_the_reason(owner):
    client = Client()
    for _ in range(2):
        assert fail(client).status_code == 200  # the form again, "didn't match"
    locked = fail(client)
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed sign-in attempts for this user from this address" in text
    assert "refused for 15 minutes" in text
    assert locked["Retry-After"] == "900"
    assert 'value="alice"' in text  # the form again, with the name kept
    # Now even the right password is refused, in the same words.
    right = client.post(SIGN_IN, {"username": "alice", "password": "demo"})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lock_is_per_user_and_address(owner, teammate):
    client = Client()
    for _ in range(3):
        fail(client, REMOTE_ADDR="10.0.0.1")
    assert fail(client, REMOTE_ADDR="10.0.0.1").status_code == 429
    # The same user from another address, another user from the first: not locked.
    other_address = Client().post(
        SIGN_IN, {"username": "alice", "password": "demo"}, REMOTE_ADDR="10.0.0.2"
    )
    assert other_address.status_code == 302
    other_user = Client().post(
        SIGN_IN, {"username": "bob", "password": "demo"}, REMOTE_ADDR="10.0.0.1"
    )
    assert other_user.status_code == 302


def test_a_success_resets_the_count(owner):
    client = Client()
    for _ in range(2):
        fail(client)
    assert client.post(SIGN_IN, {"username": "alice", "password": "demo"}).status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()
    client = Client()
    for _ in range(2):
        assert fail(client).status_code == 200


def test_the_token_endpoint_counts_and_refuses_in_the_api_shape(owner):
    client = Client()
    for _ in range(2):
        response = client.post(TOKEN, {"username": "alice", "password": "wrong"})
        assert response.status_code == 400
    locked = client.post(TOKEN, {"username": "alice", "password": "wrong"})
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "sign_in_locked"
    assert body["detail"].startswith("Too many failed sign-in attempts for this user")
    # The page counts the same attempts: the user is locked there too.
    assert client.post(SIGN_IN, {"username": "alice", "password": "demo"}).status_code == 429
    right = client.post(TOKEN, {"username": "alice", "password": "demo"})
    assert right.status_code == 429


def test_the_admin_sign_in_is_limited_too(staff):
    client = Client()
    for _ in range(3):
        client.post("/admin/login/", {"username": "stella", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "stella", "password": "demo"})
    assert response.status_code == 429


def test_api_throttle_counts_are_in_the_shared_redis_cache(settings, owner):
    url = need_network_broker()
    if not url.startswith("redis"):
        pytest.skip("the broker is not Redis: the cache is the process's memory")
    from redis import Redis

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    cache = caches["default"]
    cache.clear()
    settings.CRM_API_THROTTLE_LOGIN = "100/minute"
    Client().post(TOKEN, {"username": "nobody", "password": "x"}, REMOTE_ADDR="10.9.9.9")
    # Another connection (as another web process would have) sees the count.
    keys = Redis.from_url(settings.CACHES["default"]["LOCATION"]).keys("crm:*throttle*")
    assert keys, "no throttle key in Redis"
