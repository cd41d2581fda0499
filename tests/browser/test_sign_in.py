"""Signing in with the form, and the mail list in a real browser at two widths."""

from __future__ import annotations

import pytest

from activities.models import EmailStatus
from tests.factories import EmailFactory, EmailPartyFactory, UserFactory

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_with_the_form_opens_the_mail_list(page, live_server, watch, screenshot, owner):
    sent = EmailFactory(sender_user=owner, subject="Quarterly figures", status=EmailStatus.SENT)
    EmailPartyFactory(email=sent, role="to", address="ann@example.com")

    page.goto("/")
    assert page.url.endswith("/sign-in/?next=/mail/")
    screenshot(page, "sign-in")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Your username and password")

    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/mail/")
    assert page.get_by_text("Alice Archer").is_visible()
    page.get_by_role("link", name="Sent").click()
    assert page.get_by_text("ann@example.com").is_visible()
    assert watch.page_errors == [] and watch.console_errors == []


def test_the_mail_list_fits_a_phone_and_names_failures(
    page, live_server, sign_in, watch, screenshot
):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Archer", is_staff=True)
    for n, who in enumerate(["Ann Lee", "Bjorn Dahl", "Chen Wei"]):
        sent = EmailFactory(
            sender_user=alice, subject=f"Renewal quote {n}", status=EmailStatus.SENT
        )
        EmailPartyFactory(email=sent, role="to", name=who, address=f"c{n}@customers.example")
    failed = EmailFactory(
        sender_user=alice,
        subject="Quarterly figures",
        status=EmailStatus.FAILED,
        last_error="550 5.1.1 no such user",
    )
    EmailPartyFactory(email=failed, role="to", address="nobody@customers.example")
    sign_in(alice)
    page.goto("/mail/outbox/")
    assert page.get_by_text("550 5.1.1 no such user").is_visible()
    screenshot(page, "mail-list")

    page.goto("/mail/sent/")
    assert page.get_by_role("cell", name="Bjorn Dahl").is_visible()
    screenshot(page, "mail-list-sent")
    page.set_viewport_size(PHONE)
    page.goto("/mail/sent/")
    # The table folds into cards: nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "mail-list-phone")
    response = page.request.get("/mail/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert watch.page_errors == [] and watch.console_errors == []
