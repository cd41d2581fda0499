"""The staff pages of received mail (issue 12): inline cid: images on the email page
for whoever may see the email, and only images; hostile attachments only as downloads;
the Blocked list with Release for approvers, the Unreadable list with the raw .eml for
staff; and the conversation, in order, on each email's page."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from django.test import Client

from activities.models import Email, InboundMessage
from activities.services.emails import email_create, email_send
from activities.services.inbound import inbound_message_receive, inbound_message_store
from crm.models import EmailApproval
from tests.factories import ContactFactory, QueueFactory
from tests.pages import signed_in

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 512


def read(response) -> bytes:
    return b"".join(response.streaming_content)


def received(*, to: str = "support@example.com", message_id: str = "<in-1@x.org>", **headers):
    msg = EmailMessage()
    msg["From"] = "Ann Lee <ann@customers.example.org>"
    msg["To"] = to
    msg["Subject"] = headers.pop("subject", "With a logo")
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello")
    return msg


@pytest.fixture
def with_images(org, team_queue) -> Email:
    msg = received()
    msg.add_alternative(
        '<p>Logo <img src="cid:logo@x.org"> svg <img src="cid:evil">'
        ' tracker <img src="https://tracker.example/p.png"></p>',
        subtype="html",
    )
    html = msg.get_payload()[1]
    html.add_related(PNG, "image", "png", cid="<logo@x.org>")
    html.add_related(SVG, "image", "svg+xml", cid="<evil>")
    msg.add_attachment(EXE, maintype="application", subtype="pdf", filename="invoice.pdf")
    return inbound_message_store(raw=msg.as_bytes())


def test_a_cid_image_shows_on_the_page_of_who_may_see_the_email_and_nothing_else_loads(
    with_images, owner, outsider
):
    logo = with_images.attachments.get(content_id="logo@x.org")
    svg = with_images.attachments.get(content_id="evil")
    inline_url = f"/mail/{with_images.pk}/inline/{logo.pk}/"

    body = signed_in(owner).get(f"/mail/{with_images.pk}/body/")
    html = body.content.decode()
    assert f'src="{inline_url}"' in html
    assert 'src="cid:evil"' in html  # an SVG is not served inline: it stays cid: (nothing)
    assert "tracker.example" not in html
    assert "img-src 'self' data: cid:;" in body["Content-Security-Policy"]

    image = signed_in(owner).get(inline_url)
    assert image.status_code == 200 and read(image) == PNG
    assert image["Content-Type"] == "image/png"
    assert image["Content-Disposition"].startswith("inline;")
    assert image["X-Content-Type-Options"] == "nosniff"
    assert signed_in(owner).get(f"/mail/{with_images.pk}/inline/{svg.pk}/").status_code == 404

    for url in (inline_url, f"/mail/{with_images.pk}/body/"):
        assert signed_in(outsider).get(url).status_code == 404
    assert Client().get(inline_url).status_code == 302


def test_a_body_without_inline_images_loads_nothing_from_this_site(org, team_queue, owner):
    email = inbound_message_store(raw=received(message_id="<plain@x.org>").as_bytes())
    body = signed_in(owner).get(f"/mail/{email.pk}/body/")
    assert "'self'" not in body["Content-Security-Policy"].split("img-src")[1].split(";")[0]


def test_an_executable_named_invoice_pdf_is_only_ever_a_download(with_images, owner):
    exe = with_images.attachments.get(filename="invoice.pdf")
    answer = signed_in(owner).get(f"/mail/{with_images.pk}/attachments/{exe.pk}/")
    assert read(answer) == EXE
    assert answer["Content-Type"] == "application/octet-stream"
    assert answer["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert signed_in(owner).get(f"/mail/{with_images.pk}/inline/{exe.pk}/").status_code == 404


# --- blocked and unreadable ------------------------------------------------------------------


@pytest.fixture
def blocked(org, teammate) -> InboundMessage:
    QueueFactory(
        name="Sales",
        email="sales@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        members=[teammate],
    )
    msg = received(to="sales@example.com", message_id="<held@x.org>", subject="Price list")
    msg.add_attachment(b"%PDF-1.4 list", maintype="application", subtype="pdf", filename="l.pdf")
    return inbound_message_receive(raw=msg.as_bytes(), route="smtp")


def test_approvers_see_blocked_mail_with_the_reason_and_others_may_not(
    blocked, approver, teammate, staff
):
    page = signed_in(approver).get("/inbound/blocked/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Price list" in text and "sales@example.com (the queue Sales, pending approval)" in text
    assert f'action="/inbound/{blocked.pk}/release/"' in text
    staff_page = signed_in(staff).get("/inbound/blocked/").content.decode()
    assert "Price list" in staff_page and "/release/" not in staff_page  # staff: no Release
    assert signed_in(teammate).get("/inbound/blocked/").status_code == 403
    # The teammate's Received tab does not show it either.
    assert "Price list" not in signed_in(teammate).get("/mail/received/").content.decode()


def test_release_is_refused_in_words_until_the_address_may_receive_then_routes_it_once(
    blocked, approver, teammate, org
):
    client = signed_in(approver)
    refused = client.post(f"/inbound/{blocked.pk}/release/")
    assert refused.status_code == 409
    assert "still held for approval" in refused.content.decode()
    assert "Approve the address on the Approvals page first" in refused.content.decode()
    assert signed_in(teammate).post(f"/inbound/{blocked.pk}/release/").status_code == 403
    assert not Email.objects.exists()

    org.require_approval_for_queue_email = False
    org.save()
    done = client.post(f"/inbound/{blocked.pk}/release/", follow=True)
    blocked.refresh_from_db()
    assert (blocked.status, blocked.released_by) == ("stored", approver)
    assert f"Released: the message is email #{blocked.email_id} now." in done.content.decode()
    received_tab = signed_in(teammate).get("/mail/received/").content.decode()
    assert "Price list" in received_tab
    assert list(blocked.email.attachments.values_list("filename", flat=True)) == ["l.pdf"]
    assert client.post(f"/inbound/{blocked.pk}/release/").status_code == 409  # not twice
    assert Email.objects.count() == 1


def test_release_needs_the_csrf_token(blocked, approver):
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver)
    assert client.post(f"/inbound/{blocked.pk}/release/").status_code == 403
    assert client.get(f"/inbound/{blocked.pk}/release/").status_code == 405


def test_staff_see_unreadable_mail_and_download_it_raw_others_may_not(
    org, team_queue, staff, approver, outsider
):
    msg = received(message_id="<nofrom@x.org>")
    del msg["From"]
    raw = msg.as_bytes()
    kept = inbound_message_receive(raw=raw, route="webhook:postmark")
    page = signed_in(staff).get("/inbound/unreadable/").content.decode()
    assert "the message has no readable From address" in page and "webhook:postmark" in page
    download = signed_in(staff).get(f"/inbound/{kept.pk}/raw/")
    assert read(download) == raw
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"] == f'attachment; filename="inbound-{kept.pk}.eml"'
    for user in (approver, outsider):
        assert signed_in(user).get("/inbound/unreadable/").status_code == 403
        assert signed_in(user).get(f"/inbound/{kept.pk}/raw/").status_code == 403


def test_the_email_page_shows_the_whole_conversation_in_order(org, owner, team_queue, outsider):
    ann = ContactFactory(email="ann@customers.example.org")
    sent = email_send(
        email=email_create(actor=owner, to=[ann], subject="Offer", regarding=ann), actor=owner
    )
    reply = inbound_message_store(
        raw=received(
            to="alice@staff.example.com",
            message_id="<reply@x.org>",
            subject="Re: Offer",
            In_Reply_To=sent.message_id,
        ).as_bytes()
    )
    answer = email_create(actor=owner, to=[ann], subject="Re: Re: Offer", parent=reply)
    unrelated = email_create(actor=owner, to=[ann], subject="Something else")

    page = signed_in(owner).get(f"/mail/{reply.pk}/").content.decode()
    section = page.split('id="email-conversation-title"')[1].split("</section>")[0]
    assert "Conversation (3)" in section
    positions = [section.index(s) for s in (f"/mail/{sent.pk}/", "(this email)",
                                            f"/mail/{answer.pk}/")]  # fmt: skip
    assert positions == sorted(positions)
    assert "Ann Lee" in section and "Alice Archer" in section
    assert f"/mail/{unrelated.pk}/" not in section
    alone = signed_in(owner).get(f"/mail/{unrelated.pk}/").content.decode()
    assert 'id="email-conversation-title"' not in alone
