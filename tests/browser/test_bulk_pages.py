"""The bulk send pages in a real browser: the wizard end to end into the SMTP test
server, and the progress page following a job until it is done."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from activities.models import BulkSend, BulkSendStatus, Email, EmailStatus
from activities.services.bulk import bulk_send_run, bulk_send_start
from tests.factories import (
    AccountFactory,
    ContactFactory,
    TemplateFactory,
)

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIRST_NAMES = ["Ann", "Ben", "Cleo", "Dan", "Eve"]


@pytest.fixture
def northwind(db):
    """A demo-like account: five contacts who get mail and one who asked for none."""
    account = AccountFactory(name="Northwind Traders")
    for name in FIRST_NAMES:
        ContactFactory(account=account, first_name=name, email=f"{name.lower()}@northwind.example")
    ContactFactory(
        account=account, first_name="Fay", email="fay@northwind.example", do_not_bulk_email=True
    )
    AccountFactory(name="Contoso")
    return account


@pytest.fixture
def welcome(db):
    return TemplateFactory(
        title="Welcome",
        subject="Welcome, {{ contact.first_name }}",
        body_html="<p>Dear {{ contact.full_name }} of {{ account.name }},</p><p>welcome aboard.</p>",
        body_text="Dear {{ contact.full_name }}, welcome aboard.",
    )


def test_the_wizard_sends_a_template_to_an_accounts_contacts_and_shows_it_done(
    page, live_server, sign_in, watch, screenshot, smtp_settings, eager_celery,
    owner, team_queue, northwind, welcome,
):  # fmt: skip
    sign_in(owner)
    page.goto("/bulk/")
    expect(page.get_by_text("No bulk sends yet.")).to_be_visible()
    page.get_by_role("link", name="New bulk send").click()
    page.wait_for_url("**/bulk/new/")

    page.get_by_label("Template", exact=True).select_option(label="Welcome")
    page.get_by_label("Support").check()
    page.get_by_label("Account", exact=True).select_option(label="Northwind Traders")
    start = page.get_by_role("button", name="Send to 5 contacts")
    expect(start).to_be_visible()
    expect(page.get_by_text("1 do not bulk email")).to_be_visible()
    expect(page.locator("#audience-status")).to_have_text("5 contacts will get this email.")
    sample = page.frame_locator("iframe.sample-frame").first
    expect(sample.get_by_text("Dear Ann")).to_contain_text("of Northwind Traders")
    expect(page.get_by_text("Welcome, Ben")).to_be_visible()
    screenshot(page, "bulk-new")

    start.dblclick()  # the second click must not start a second job
    page.wait_for_url("**/bulk/*/")
    expect(page.locator(".job-status")).to_contain_text("Completed")
    expect(page.locator(".job-status")).to_contain_text("Done: 5 sent, 1 skipped.")
    expect(page.locator(".counter-sent dd")).to_have_text("5")
    expect(page.get_by_role("button", name="Cancel this bulk send")).to_have_count(0)
    screenshot(page, "bulk-detail")

    job = BulkSend.objects.get()
    assert job.status == BulkSendStatus.COMPLETED and job.sender_queue == team_queue
    assert (job.total, job.created, job.skipped) == (6, 5, 1)
    assert set(Email.objects.values_list("status", flat=True)) == {EmailStatus.SENT}
    received = sorted(m.rcpt_tos[0] for m in smtp_settings.messages)
    assert received == sorted(f"{n.lower()}@northwind.example" for n in FIRST_NAMES)
    message = next(
        m.message for m in smtp_settings.messages if m.rcpt_tos == ["ann@northwind.example"]
    )
    assert message["Subject"].startswith("Welcome, Ann")
    assert message["List-Unsubscribe"]

    page.get_by_role("link", name="Its sent emails").click()
    expect(page.get_by_text("Welcome, Eve")).to_be_visible()
    page.goto("/bulk/")
    expect(page.get_by_role("link", name=f"Bulk send #{job.pk}")).to_be_visible()
    expect(page.get_by_text("5 sent of 6")).to_be_visible()
    screenshot(page, "bulk-list")
    assert watch.page_errors == [] and watch.console_errors == []


def test_the_progress_page_follows_a_job_until_it_is_done_then_stops_asking(
    page, live_server, sign_in, watch, screenshot, owner, team_queue, northwind, welcome
):
    job = bulk_send_start(
        template=welcome, sender=team_queue, query={"account": northwind.pk}, actor=owner
    )
    sign_in(owner)
    page.goto(f"/bulk/{job.pk}/")
    expect(page.locator(".job-status")).to_contain_text("Waiting for a worker")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if f"/bulk/{job.pk}/?v=" in r.url else None)

    bulk_send_run(job_id=job.pk)  # a worker writes the emails...
    expect(page.locator(".job-status")).to_contain_text("5 still to deliver", timeout=8_000)
    expect(page.get_by_role("button", name="Cancel this bulk send")).to_be_visible()
    Email.objects.filter(bulk_send=job).update(status=EmailStatus.SENT)  # ...and sends them
    expect(page.locator(".job-status")).to_contain_text("Done: 5 sent", timeout=8_000)
    expect(page.get_by_role("button", name="Cancel this bulk send")).to_have_count(0)
    asked = len(polls)
    time.sleep(4.5)
    assert len(polls) == asked, "the page kept polling a finished job"

    page.set_viewport_size(PHONE)
    page.goto(f"/bulk/{job.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "bulk-detail-phone")
    page.goto("/bulk/new/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "bulk-new-phone")
    assert watch.page_errors == [] and watch.console_errors == []
