"""Blocked inbound mail in a real browser: an approver sees it held with the reason,
approves the address, and the reply lands in its mailbox, on a page that shows the
conversation and its inline image (issue 12)."""

from __future__ import annotations

import struct
import zlib
from email.message import EmailMessage

import pytest

from activities.models import InboundMessage
from activities.services.emails import email_create, email_send
from activities.services.inbound import inbound_message_receive
from crm.models import EmailApproval
from tests.factories import ContactFactory, QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def png(width: int, height: int) -> bytes:
    """A real PNG (a browser decodes it: its naturalWidth is ``width``)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x20\x60\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_approving_an_address_releases_the_reply_into_its_conversation(
    page, live_server, sign_in, watch, screenshot, approver, teammate, eager_celery
):
    QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[teammate],
    )
    ann = ContactFactory(first_name="Ann", last_name="Lee", email="ann@customers.example.org")
    offer = email_send(
        email=email_create(actor=teammate, to=[ann], subject="Offer", regarding=ann),
        actor=teammate,
    )
    reply = EmailMessage()
    reply["From"] = "Ann Lee <ann@customers.example.org>"
    reply["To"] = "sales@example.com"
    reply["Subject"] = "Re: Offer"
    reply["Message-ID"] = "<reply-offer@customers.example.org>"
    reply["In-Reply-To"] = offer.message_id
    reply.set_content("Yes, with our logo")
    reply.add_alternative('<p>Yes, with <img alt="our logo" src="cid:logo"></p>', subtype="html")
    reply.get_payload()[1].add_related(png(7, 3), "image", "png", cid="<logo>")
    held = inbound_message_receive(raw=reply.as_bytes(), route="smtp")
    assert held.status == "blocked"

    sign_in(approver)
    page.goto("/inbound/blocked/")
    row = page.locator(f"#inbound-{held.pk}")
    assert row.get_by_text("Re: Offer").is_visible()
    assert row.get_by_text("sales@example.com (the queue Sales, pending approval)").is_visible()
    row.get_by_role("button", name="Release").click()  # not yet: the address waits
    page.get_by_role("alert").filter(
        has_text="Approve the address on the Approvals page"
    ).wait_for()
    screenshot(page, "inbound-blocked")

    page.goto("/approvals/")
    page.get_by_role("button", name="Approve Sales").click()
    page.get_by_role("status").filter(has_text="Approved sales@example.com").wait_for()
    held.refresh_from_db()
    assert held.status == "stored"
    page.goto("/inbound/blocked/")
    assert page.get_by_text("No mail is blocked.").is_visible()

    sign_in(teammate)
    page.goto("/mail/received/")
    page.get_by_role("link", name="Re: Offer").click()
    page.wait_for_url(f"**/mail/{held.email_id}/")
    thread = page.locator(".email-thread li")
    assert thread.count() == 2
    assert "Offer" in thread.nth(0).inner_text() and "(this email)" in thread.nth(1).inner_text()
    page.wait_for_function(
        "() => { const img = document.querySelector('iframe.email-frame').contentDocument"
        ".querySelector('img[alt=\"our logo\"]'); return img && img.naturalWidth === 7; }"
    )
    screenshot(page, "inbound-conversation")
    thread.nth(0).get_by_role("link").click()
    page.wait_for_url(f"**/mail/{offer.pk}/")
    assert watch.foreign_requests(live_server.url) == []
    assert watch.page_errors == []
    # The one refusal, the early Release: a 409 in words.
    assert watch.console_errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]
    assert InboundMessage.objects.get().email.parent_id == offer.pk
