"""The one stable ordering of every list in the API: the primary key breaks ties, in the
direction of the key before it, so pages never overlap or skip rows."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from activities.filters import EmailFilter
from activities.models import Email
from common.api.filters import StableOrderingFilter
from crm.models import Account
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory


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


# --- empty values (issue 11, schemathesis) ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "parameter",
    ["account", "do_not_email", "created_after", "created_before"],
)
def test_an_empty_value_of_a_typed_filter_is_a_400_naming_it(owner, parameter):
    """django-filter reads ``?account=`` as "no filter": the list of everything answered
    what looked like a filtered request. Free text (``city=``) may still be empty."""
    ContactFactory()
    answer = client_for(owner).get("/api/v1/contacts/", {parameter: ""})
    assert answer.status_code == 400
    assert list(answer.json()) == [parameter]
    assert client_for(owner).get("/api/v1/contacts/", {"city": ""}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/emails/", {"status": ""}),
        ("/api/v1/emails/", {"sender_queue": ""}),
        ("/api/v1/bulk-sends/", {"template": ""}),
        ("/api/v1/queues/", {"email_router_access_approval": ""}),
        ("/api/v1/templates/", {"record_type": ""}),
        ("/api/v1/attachments/", {"object_type": ""}),
    ],
)
def test_every_list_refuses_an_empty_typed_filter(owner, path, query):
    answer = client_for(owner).get(path, query)
    assert answer.status_code == 400
    assert list(answer.json()) == list(query)


@pytest.mark.django_db
def test_the_staff_pages_still_read_an_empty_filter_as_none(owner):
    """The mail list's form sends its blank fields: the filter set itself is unchanged."""
    filterset = EmailFilter({"status": "", "sender_queue": ""}, queryset=Email.objects.all())
    assert filterset.is_valid()


# --- offsets PostgreSQL cannot take (schemathesis, issue 12) ----------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/emails/", "sent_after"),
        ("/api/v1/emails/", "created_before"),
        ("/api/v1/contacts/", "created_after"),
    ],
)
def test_a_time_with_an_offset_beyond_postgresqls_range_is_the_same_instant_in_utc(
    owner, path, parameter
):
    """Python reads offsets up to ±23:59, PostgreSQL only ±15:59: ``+21:58`` was a 500
    (DataError) on PostgreSQL. The filter gives the database the instant in UTC."""
    answer = client_for(owner).get(path, {parameter: "2026-09-15T19:55:42+21:58"})
    assert answer.status_code == 200, answer.content


@pytest.mark.django_db
@pytest.mark.parametrize("moment", ["0001-01-01T00:30:00+21:58", "9999-12-31T23:30:00-21:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_a_400_naming_the_filter(owner, moment):
    answer = client_for(owner).get("/api/v1/emails/", {"sent_after": moment})
    assert answer.status_code == 400
    assert "out of range" in str(answer.json()["sent_after"])
