"""systemusers, queues and organizations: address approval through crm's services."""

from __future__ import annotations

import pytest

from compat.dynamics.ids import guid_of
from crm.models import EmailApproval, Organization
from crm.signals import email_address_approved
from tests.api import client_for
from tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = "/api/data/v9.2"


@pytest.fixture
def pending_user(db):
    return UserFactory(
        username="dora", email="dora@staff.example.com",
        email_router_access_approval=EmailApproval.PENDING,
    )  # fmt: skip


@pytest.fixture
def approvals():
    seen = []

    def receiver(sender, mailbox, **kwargs):
        seen.append(mailbox.pk)

    email_address_approved.connect(receiver)
    yield seen
    email_address_approved.disconnect(receiver)


def test_a_systemuser_shows_its_address_and_approval_as_dataverse_codes(owner, pending_user):
    response = client_for(owner).get(f"{ROOT}/systemusers({guid_of(pending_user.pk)})")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("/$metadata#systemusers/$entity")
    assert body["systemuserid"] == guid_of(pending_user.pk)
    assert body["internalemailaddress"] == "dora@staff.example.com"
    assert body["emailrouteraccessapproval"] == 2
    assert body["domainname"] == "dora"


def test_systemusers_list_takes_select_and_refuses_an_unknown_property(owner, approver):
    client = client_for(owner)
    body = client.get(f"{ROOT}/systemusers?$select=fullname").json()
    assert [set(row) for row in body["value"]] == [{"systemuserid", "fullname"}] * 2
    response = client.get(f"{ROOT}/systemusers?$select=nickname")
    assert response.status_code == 400
    assert "nickname" in response.json()["error"]["message"]
    response = client.get(f"{ROOT}/systemusers?$orderby=fullname")
    assert response.status_code == 400
    assert "$orderby" in response.json()["error"]["message"]


def test_pending_users_and_queues_are_found_by_filter_as_an_approver_lists_them(
    approver, pending_user, team_queue
):
    client = client_for(approver)
    body = client.get(f"{ROOT}/systemusers?$filter=emailrouteraccessapproval eq 2").json()
    assert [row["domainname"] for row in body["value"]] == ["dora"]
    QueueFactory(
        name="Sales", email="sales@example.com", email_router_access_approval="pending_approval"
    )
    body = client.get(
        f"{ROOT}/queues?$filter=emailrouteraccessapproval eq 2 or emailaddress eq 'SUPPORT@example.com'"
        "&$select=name"
    ).json()
    assert [row["name"] for row in body["value"]] == ["Sales", "Support"]
    for bad in ("emailrouteraccessapproval eq 7", "nickname eq 'x'", "contains(name,'S')"):
        response = client.get(f"{ROOT}/queues?$filter={bad}")
        assert response.status_code == 400
        assert set(response.json()) == {"error"}


def test_an_approver_approves_a_user_by_patching_emailrouteraccessapproval(
    approver, pending_user, approvals
):
    response = client_for(approver).patch(
        f"{ROOT}/systemusers({guid_of(pending_user.pk)})",
        {"emailrouteraccessapproval": 1},
        format="json",
    )
    assert response.status_code == 204
    assert response["OData-EntityId"].endswith(f"/systemusers({guid_of(pending_user.pk)})")
    pending_user.refresh_from_db()
    assert pending_user.email_router_access_approval == EmailApproval.APPROVED
    assert pending_user.email_approval_decided_by == approver
    assert approvals == [pending_user.pk]


def test_an_approver_rejects_a_queue_and_asks_for_the_record_back(approver):
    queue = QueueFactory(email="sales@example.com", email_router_access_approval="pending_approval")
    response = client_for(approver).patch(
        f"{ROOT}/queues({guid_of(queue.pk)})",
        {"emailrouteraccessapproval": 3},
        format="json",
        HTTP_PREFER="return=representation",
    )
    assert response.status_code == 200
    assert response.json()["emailrouteraccessapproval"] == 3
    assert response.json()["emailaddress"] == "sales@example.com"
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.REJECTED


@pytest.mark.parametrize("who", ["owner", "outsider", "staff"])
def test_approving_needs_the_approve_permission_and_changes_nothing_without_it(
    request, who, pending_user, approvals
):
    actor = request.getfixturevalue(who)
    response = client_for(actor).patch(
        f"{ROOT}/systemusers({guid_of(pending_user.pk)})",
        {"emailrouteraccessapproval": 1},
        format="json",
    )
    assert response.status_code == 403
    assert "crm.approve_email_address" in response.json()["error"]["message"]
    pending_user.refresh_from_db()
    assert pending_user.email_router_access_approval == EmailApproval.PENDING
    assert approvals == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"emailrouteraccessapproval": 2}, "Pending Approval"),
        ({"emailrouteraccessapproval": 0}, "cannot be set"),
        ({"emailrouteraccessapproval": "1"}, "expected 1 (Approved) or 3 (Rejected)"),
        ({"emailrouteraccessapproval": True}, "expected 1 (Approved) or 3 (Rejected)"),
        ({"emailrouteraccessapproval": 9}, "expected 1 (Approved) or 3 (Rejected)"),
        ({"fullname": "Dora"}, "only emailrouteraccessapproval"),
        ({}, "nothing to change"),
        ([1], "JSON object"),
    ],
)
def test_a_patch_the_approval_cannot_take_is_a_400_naming_why(approver, pending_user, body, words):
    response = client_for(approver).patch(
        f"{ROOT}/systemusers({guid_of(pending_user.pk)})", body, format="json"
    )
    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
    pending_user.refresh_from_db()
    assert pending_user.email_router_access_approval == EmailApproval.PENDING


@pytest.mark.parametrize("key", ["not-a-guid", "00000000-0000-0000-0000-0000000f4240", "'x'"])
def test_an_unknown_or_malformed_id_is_a_404_in_odata_words(approver, key):
    response = client_for(approver).get(f"{ROOT}/queues({key})")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"


def test_malformed_json_is_a_400_not_a_500(approver, pending_user):
    response = client_for(approver).generic(
        "PATCH",
        f"{ROOT}/systemusers({guid_of(pending_user.pk)})",
        b'{"emailrouteraccessapproval": ',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_the_organization_shows_its_approval_settings(outsider, org):
    response = client_for(outsider).get(f"{ROOT}/organizations")
    assert response.status_code == 200
    [row] = response.json()["value"]
    assert row["organizationid"] == guid_of(Organization.SINGLETON_ID)
    assert row["requireapprovalforuseremail"] is True
    assert row["requireapprovalforqueueemail"] is True


def test_staff_change_the_organizations_approval_settings_others_may_not(staff, owner, org):
    url = f"{ROOT}/organizations({guid_of(org.pk)})"
    refused = client_for(owner).patch(url, {"requireapprovalforqueueemail": False}, format="json")
    assert refused.status_code == 403
    assert "staff" in refused.json()["error"]["message"]
    org.refresh_from_db()
    assert org.require_approval_for_queue_email is True

    done = client_for(staff).patch(url, {"requireapprovalforqueueemail": False}, format="json")
    assert done.status_code == 204
    org.refresh_from_db()
    assert org.require_approval_for_queue_email is False
    assert org.require_approval_for_user_email is True


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Other"},
        {"requireapprovalforuseremail": "no"},
        {"requireapprovalforuseremail": None},
    ],
)
def test_an_organization_patch_beyond_the_two_settings_is_refused(staff, org, body):
    response = client_for(staff).patch(
        f"{ROOT}/organizations({guid_of(org.pk)})", body, format="json"
    )
    assert response.status_code == 400
    org.refresh_from_db()
    assert (org.name, org.require_approval_for_user_email) == ("Example Organisation", True)


def test_another_organization_id_is_a_404(staff, org):
    response = client_for(staff).get(f"{ROOT}/organizations({guid_of(2)})")
    assert response.status_code == 404
