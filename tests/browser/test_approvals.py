"""The Approvals page in a real browser: approve in place, at two widths."""

from __future__ import annotations

import pytest

from crm.models import EmailApproval
from tests.factories import QueueFactory, UserFactory

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_approver_approves_a_pending_queue_in_place(
    page, live_server, sign_in, watch, screenshot, approver
):
    applicant = UserFactory(
        username="pat",
        first_name="Pat",
        last_name="Pending",
        email_router_access_approval=EmailApproval.PENDING,
    )
    sales = QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[applicant],
    )
    sign_in(approver)
    page.goto("/mail/")
    page.get_by_role("link", name="Approvals").click()
    page.wait_for_url("**/approvals/")
    screenshot(page, "approvals")

    url_before = page.url
    page.get_by_role("button", name="Approve Sales").click()
    status = page.get_by_role("status").filter(has_text="Approved sales@example.com")
    status.wait_for()
    row = page.locator(f"#approval-queue-{sales.pk}")
    assert row.get_by_text("Approved", exact=True).is_visible()
    assert row.get_by_role("button", name="Reject Sales").is_visible()
    assert row.get_by_role("button", name="Approve Sales").count() == 0
    assert page.url == url_before  # swapped in place, no navigation
    sales.refresh_from_db()
    applicant.refresh_from_db()
    assert sales.email_router_access_approval == EmailApproval.APPROVED
    assert applicant.email_router_access_approval == EmailApproval.PENDING

    # The keyboard reaches the next decision; the page fits a phone.
    page.get_by_role("button", name="Reject Pat Pending").focus()
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="Rejected pat@staff.example.com").wait_for()
    applicant.refresh_from_db()
    assert applicant.email_router_access_approval == EmailApproval.REJECTED
    page.set_viewport_size(PHONE)
    page.goto("/approvals/?show=all")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "approvals-phone")
    assert watch.page_errors == [] and watch.console_errors == []
