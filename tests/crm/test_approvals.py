"""The Approvals page: who may see it, what it lists, approve and reject in place."""

from __future__ import annotations

import pytest
from django.test import Client

from crm.models import EmailApproval, Queue, User
from tests.factories import QueueFactory, UserFactory
from tests.pages import signed_in

pytestmark = pytest.mark.django_db

PENDING = EmailApproval.PENDING


@pytest.fixture
def applicant(db) -> User:
    """A user whose address waits for approval (not a persona: no relation is tested)."""
    return UserFactory(
        username="pat", first_name="Pat", last_name="Pending", email_router_access_approval=PENDING
    )


@pytest.fixture
def sales(applicant) -> Queue:
    """A queue whose address waits for approval."""
    return QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=PENDING,
        members=[applicant],
    )


def approvals_of(*records) -> list[str]:
    return [type(r).objects.get(pk=r.pk).email_router_access_approval for r in records]


def test_the_page_lists_pending_users_and_queues_and_the_switch_shows_decided_ones(
    approver, applicant, sales, team_queue
):
    client = signed_in(approver)
    page = client.get("/approvals/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "sales@example.com" in html and "pat@staff.example.com" in html
    assert "support@example.com" not in html and "ada@staff.example.com" not in html
    assert 'aria-label="Approve Sales"' in html and 'aria-label="Reject Pat Pending"' in html
    assert 'href="/approvals/" aria-current="page"' in html  # the nav link, for approvers

    everything = client.get("/approvals/?show=all").content.decode()
    assert "support@example.com" in everything and "ada@staff.example.com" in everything
    # An approved address can still be rejected, but not approved again.
    assert 'aria-label="Reject Support"' in everything
    assert 'aria-label="Approve Support"' not in everything


def test_someone_without_the_permission_gets_a_403_in_words_and_no_link(applicant, sales):
    client = signed_in(applicant)
    page = client.get("/approvals/")
    assert page.status_code == 403
    html = page.content.decode()
    assert "crm.approve_email_address" in html and "sales@example.com" not in html
    assert 'href="/approvals/"' not in client.get("/mail/").content.decode()

    refused = client.post(f"/approvals/queue/{sales.pk}/approve/")
    assert refused.status_code == 403
    assert "needs the permission crm.approve_email_address" in refused.content.decode()
    assert approvals_of(sales, applicant) == [PENDING, PENDING]


def test_the_page_needs_a_sign_in(sales):
    client = Client()
    assert client.get("/approvals/")["Location"] == "/sign-in/?next=/approvals/"
    assert client.post(f"/approvals/queue/{sales.pk}/approve/").status_code == 302
    assert approvals_of(sales) == [PENDING]


def test_approving_without_javascript_redirects_back_with_a_confirmation(
    approver, applicant, sales, team_queue
):
    client = signed_in(approver)
    response = client.post(f"/approvals/queue/{sales.pk}/approve/")
    assert response.status_code == 302 and response["Location"] == "/approvals/"
    assert approvals_of(sales, applicant, team_queue) == [
        EmailApproval.APPROVED,
        PENDING,
        "approved",
    ]

    page = client.get(response["Location"]).content.decode()
    assert "Approved sales@example.com (Sales)." in page
    assert "sales@example.com</td>" not in page  # no longer pending

    back = client.post(f"/approvals/user/{applicant.pk}/reject/", {"show": "all"})
    assert back["Location"] == "/approvals/?show=all"
    assert approvals_of(sales, applicant) == [EmailApproval.APPROVED, EmailApproval.REJECTED]


def test_approving_with_htmx_swaps_the_row_and_announces_it(approver, applicant, sales):
    client = signed_in(approver)
    response = client.post(
        f"/approvals/user/{applicant.pk}/approve/", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<tr id="approval-user-{applicant.pk}"')
    assert "<html" not in html
    assert ">Approved</span>" in html and 'aria-label="Reject Pat Pending"' in html
    assert 'aria-label="Approve Pat Pending"' not in html
    assert '<p id="approvals-status" hx-swap-oob="innerHTML">Approved pat@staff.example.com' in html
    assert approvals_of(applicant, sales) == [EmailApproval.APPROVED, PENDING]


def test_a_refusal_from_the_service_is_shown_in_words_with_its_status(approver):
    nobody = UserFactory(username="noaddress", first_name="No", last_name="Address", email="")
    client = signed_in(approver)
    page = client.post(f"/approvals/user/{nobody.pk}/approve/")
    assert page.status_code == 400
    assert "there is no email address to approve or reject" in page.content.decode()
    assert page.context["error"].startswith("No Address <no address>:")

    row = client.post(f"/approvals/user/{nobody.pk}/reject/", headers={"HX-Request": "true"})
    assert row.status_code == 400 and row.content.decode().startswith("<tr")
    assert 'role="alert">No Address &lt;no address&gt;: there is no email address' in (
        row.content.decode()
    )
    nobody.refresh_from_db()
    assert nobody.email_router_access_approval == EmailApproval.APPROVED  # unchanged


def test_unknown_records_kinds_and_decisions_are_404_and_get_is_not_allowed(approver, sales):
    client = signed_in(approver)
    assert client.post("/approvals/queue/999999/approve/").status_code == 404
    assert client.post(f"/approvals/contact/{sales.pk}/approve/").status_code == 404
    assert client.post(f"/approvals/queue/{sales.pk}/delete/").status_code == 404
    assert client.get(f"/approvals/queue/{sales.pk}/approve/").status_code == 405
    assert approvals_of(sales) == [PENDING]


def test_the_page_says_when_nothing_waits(approver):
    html = signed_in(approver).get("/approvals/").content.decode()
    assert "No users wait for approval." in html and "No queues wait for approval." in html


def test_the_decision_is_about_the_address_shown_and_says_who_made_it(approver, sales):
    client = signed_in(approver)
    Queue.objects.filter(pk=sales.pk).update(email="changed@example.com")
    stale = client.post(
        f"/approvals/queue/{sales.pk}/approve/",
        {"address": "sales@example.com"},
        headers={"HX-Request": "true"},
    )
    assert stale.status_code == 409
    assert "now changed@example.com, not sales@example.com" in stale.content.decode()
    assert approvals_of(sales) == [PENDING]

    done = client.post(
        f"/approvals/queue/{sales.pk}/approve/",
        {"address": "changed@example.com"},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200 and approvals_of(sales) == [EmailApproval.APPROVED]
    assert "Approved by Ada Admin" in done.content.decode()
    assert "Approved by Ada Admin" in client.get("/approvals/?show=all").content.decode()
