"""The conventions every endpoint keeps (API.md "Conventions"), shown on the record endpoints."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.models import Account, Contact, Queue
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


def test_anonymous_requests_get_401_with_a_token_challenge():
    answer = APIClient().get("/api/v1/contacts/")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"
    assert answer.json()["code"] == "not_authenticated"


def test_a_wrong_token_gets_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    answer = client.get("/api/v1/contacts/")
    assert answer.status_code == 401
    assert answer.json()["code"] == "authentication_failed"


# --- Authentication ----------------------------------------------------------------


def test_the_token_endpoint_answers_a_token_that_authenticates(owner):
    answer = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "demo"}, format="json"
    )
    assert answer.status_code == 200
    key = answer.json()["token"]
    assert Token.objects.get(user=owner).key == key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/contacts/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "demo"},
        {"username": "alice"},
    ],
)
def test_the_token_endpoint_refuses_wrong_credentials_without_making_a_token(owner, body):
    answer = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert answer.status_code == 400
    assert not Token.objects.exists()


def test_the_token_endpoint_refuses_an_inactive_user(owner):
    owner.is_active = False
    owner.save()
    answer = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "demo"}, format="json"
    )
    assert answer.status_code == 400
    assert not Token.objects.exists()


def test_the_browser_session_authenticates_and_needs_the_csrf_token_for_writes(owner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get("/api/v1/accounts/").status_code == 200
    refused = client.post("/api/v1/accounts/", {"name": "Nordlys"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Account.objects.exists()

    client.get("/admin/login/")  # any page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        "/api/v1/accounts/", {"name": "Nordlys"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201, accepted.content
    assert Account.objects.get().name == "Nordlys"


def test_a_token_request_needs_no_csrf_token(owner):
    client = client_for(owner)
    client.handler.enforce_csrf_checks = True
    assert client.post("/api/v1/accounts/", {"name": "Nordlys"}).status_code == 201


# --- Lists -----------------------------------------------------------------------


def test_lists_are_paginated_with_count_next_previous_and_results(owner):
    ContactFactory.create_batch(3)
    body = client_for(owner).get("/api/v1/contacts/?page_size=2").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["previous"] is None
    assert "page=2" in body["next"]
    second = client_for(owner).get(body["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [c["id"] for c in body["results"] + second["results"]]
    assert sorted(ids) == sorted(Contact.objects.values_list("pk", flat=True))


def test_a_page_size_over_200_is_capped_at_200(owner):
    account = AccountFactory()
    Contact.objects.bulk_create(
        Contact(last_name=f"Lee {i:03d}", account=account) for i in range(205)
    )
    body = client_for(owner).get("/api/v1/contacts/?page_size=1000").json()
    assert body["count"] == 205
    assert len(body["results"]) == 200


@pytest.mark.parametrize("page", ["99", "0", "abc"])
def test_an_unknown_page_is_a_404(owner, page):
    ContactFactory()
    answer = client_for(owner).get(f"/api/v1/contacts/?page={page}")
    assert answer.status_code == 404
    assert answer.json()["detail"]


def test_an_invalid_filter_value_is_a_400_naming_the_parameter(owner):
    answer = client_for(owner).get("/api/v1/queues/?email_router_access_approval=sometimes")
    assert answer.status_code == 400
    assert "email_router_access_approval" in answer.json()


# --- Errors ----------------------------------------------------------------------


def test_a_post_that_is_not_json_is_a_415(owner):
    answer = client_for(owner).post(
        "/api/v1/accounts/", data="name=Nordlys", content_type="text/plain"
    )
    assert answer.status_code == 415
    assert "text/plain" in answer.json()["detail"]
    assert not Account.objects.exists()


def test_malformed_json_is_a_400_with_detail(owner):
    answer = client_for(owner).post(
        "/api/v1/accounts/", data='{"name": "Nordlys",', content_type="application/json"
    )
    assert answer.status_code == 400
    assert "JSON" in answer.json()["detail"]
    assert answer.json()["code"] == "parse_error"
    assert not Account.objects.exists()


def test_a_json_body_that_is_not_an_object_is_a_400(owner):
    answer = client_for(owner).post(
        "/api/v1/accounts/", data="[1, 2]", content_type="application/json"
    )
    assert answer.status_code == 400
    assert not Account.objects.exists()


def test_requests_over_the_user_rate_are_throttled_with_429(settings, owner, outsider):
    settings.CRM_API_THROTTLE_USER = "3/minute"
    client = client_for(owner)
    assert [client.get("/api/v1/contacts/").status_code for _ in range(3)] == [200, 200, 200]
    answer = client.get("/api/v1/contacts/")
    assert answer.status_code == 429
    assert answer.json()["code"] == "throttled"
    assert int(answer["Retry-After"]) > 0
    # Another user has a budget of their own.
    assert client_for(outsider).get("/api/v1/contacts/").status_code == 200


def test_an_unsupported_method_is_a_405(owner):
    answer = client_for(owner).put("/api/v1/accounts/", {"name": "X"})
    assert answer.status_code == 405
    assert answer.json()["detail"]


# --- Representation ----------------------------------------------------------------


def test_ids_are_integers_and_times_iso_8601_with_time_zone(owner):
    contact = ContactFactory()
    queue = QueueFactory(members=[owner])
    client = client_for(owner)
    contact_body = client.get(f"/api/v1/contacts/{contact.pk}/").json()
    queue_body = client.get(f"/api/v1/queues/{queue.pk}/").json()
    for body, id_fields in ((contact_body, ["id", "account"]), (queue_body, ["id"])):
        for field in id_fields:
            assert type(body[field]) is int
        created = datetime.fromisoformat(body["created_at"])
        assert created.tzinfo is not None and created.utcoffset() is not None
    assert all(type(member) is int for member in queue_body["members"])
    modified = client.get("/api/v1/organization/").json()["modified_at"]
    assert datetime.fromisoformat(modified).tzinfo is not None
    assert Queue.objects.count() == 1


@pytest.mark.django_db
def test_token_endpoint_is_throttled_per_client_address(settings):
    from django.core.cache import cache

    cache.clear()
    settings.CRM_API_THROTTLE_LOGIN = "3/minute"
    UserFactory(username="guess-me")
    client = APIClient()
    answers = [
        client.post(
            "/api/v1/auth/token/", {"username": "guess-me", "password": f"try{i}"}
        ).status_code
        for i in range(5)
    ]
    assert answers == [400, 400, 400, 429, 429]
    cache.clear()
