"""The one stable ordering of every list in the API: the primary key breaks ties, in the
direction of the key before it, so pages never overlap or skip rows."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from common.api.filters import StableOrderingFilter
from crm.models import Account
from tests.factories import AccountFactory


class _View:
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name"]


def _ordering(query: dict[str, str]) -> list[str]:
    request = Request(APIRequestFactory().get("/accounts/", query))
    return StableOrderingFilter().get_ordering(request, Account.objects.all(), _View())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["name", "pk"]),
        ({"ordering": "name"}, ["name", "pk"]),
        ({"ordering": "-name"}, ["-name", "-pk"]),
        ({"ordering": "-created_at,name"}, ["-created_at", "name", "pk"]),
        ({"ordering": "-id"}, ["-id"]),
        ({"ordering": "name,id"}, ["name", "id"]),
    ],
)
def test_the_primary_key_breaks_ties_in_the_direction_of_the_last_key(query, expected):
    assert _ordering(query) == expected


@pytest.mark.django_db
def test_pages_of_tied_rows_in_descending_order_neither_overlap_nor_skip(client, staff):
    accounts = [AccountFactory(name="Same") for _ in range(5)]
    client.force_login(staff)
    seen = []
    for page in (1, 2, 3):
        answer = client.get(
            "/api/v1/accounts/", {"ordering": "-name", "page_size": 2, "page": page}
        )
        assert answer.status_code == 200
        seen += [row["id"] for row in answer.json()["results"]]
    assert seen == sorted((a.pk for a in accounts), reverse=True)
