"""The tokens of /api/v1/ are also accepted as ``Authorization: Bearer <key>``."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_bearer_token_authenticates_like_token(owner):
    key = Token.objects.create(user=owner).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/emails/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/emails/").status_code == 200


def test_bearer_with_an_unknown_token_is_refused(owner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = client.get("/api/v1/emails/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
