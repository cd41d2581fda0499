"""The outbox viewer in a real browser: a message sent through OutboxBackend, as it arrives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.services.attachments import attachment_store
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from crm.models import Organization

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n"


def test_a_sent_message_opens_in_the_outbox_viewer_as_it_would_arrive(
    page, live_server, sign_in, watch, screenshot, settings, owner, staff
):
    settings.EMAIL_BACKEND = "activities.mail.OutboxBackend"
    Organization.get()
    draft = email_create(
        actor=owner,
        to=["Ann Lee <ann.lee@customers.example.org>"],
        subject="Your renewal",
        body_text="Hello Ann, our terms are attached.",
        body_html="<h2>Hello Ann</h2><p>Our <b>terms</b> are attached.</p>"
        '<p><img src="https://images.example.com/logo.png" alt="Logo"></p>',
    )
    attachment_store(owner=draft, source=PDF, filename="terms.pdf", mime_type="application/pdf")
    email = email_send(email=draft, actor=owner)
    assert email_deliver(email_id=email.pk, owner="browser-test").outcome == "sent"
    email.refresh_from_db()

    sign_in(staff)  # the outbox folder holds everyone's mail: staff only
    page.goto("/mail/")
    page.get_by_role("link", name="Outbox folder").click()
    page.wait_for_url("**/outbox/")
    link = page.get_by_role("link", name=email.subject)
    assert link.is_visible()
    assert page.get_by_text("Ann Lee <ann.lee@customers.example.org>").is_visible()
    screenshot(page, "outbox")

    link.click()
    page.get_by_role("heading", name=email.subject).wait_for()
    assert page.locator(".outbox-headers").get_by_text(email.message_id).is_visible()
    assert page.get_by_text("1 remote image was blocked").is_visible()
    frame = page.frame_locator("iframe.outbox-frame")
    frame.get_by_role("heading", name="Hello Ann").wait_for()
    assert frame.locator("img").get_attribute("src") is None
    # The frame grew to its content instead of scrolling inside.
    height = "document.querySelector('iframe.outbox-frame').getBoundingClientRect().height"
    for _ in range(50):
        if page.evaluate(height) < 400:
            break
        page.wait_for_timeout(100)
    assert page.evaluate(height) < 400
    screenshot(page, "outbox-message")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="terms.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "terms.pdf"
    assert Path(download.path()).read_bytes() == PDF

    source = page.request.get(page.get_by_role("link", name="View source").get_attribute("href"))
    assert source.headers["content-type"] == "text/plain; charset=utf-8"
    assert "Subject: Your renewal" in source.text()

    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "outbox-message-phone")
    assert watch.foreign_requests(live_server.url) == []
    assert watch.page_errors == [] and watch.console_errors == []
