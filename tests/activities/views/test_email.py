"""The email page: who may see it, what it shows, its body frame, downloads, cancel,
and the mail list's links to it and its "regarding" filter."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from activities.models import Direction, Email, EmailEvent, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.emails import email_create, email_send
from activities.services.transitions import record_event
from tests.factories import (
    ContactFactory,
    EmailFactory,
    EmailPartyFactory,
)
from tests.pages import signed_in

pytestmark = pytest.mark.django_db


def read(response) -> bytes:
    return b"".join(response.streaming_content)


def page_of(email) -> str:
    return f"/mail/{email.pk}/"


def test_an_email_is_shown_to_its_sender_and_teammates_and_is_404_for_others(
    org, owner, teammate, outsider, team_queue
):
    mine = EmailFactory(sender_user=owner, subject="her own")
    team = EmailFactory(sender_queue=team_queue, sender_user=None, subject="the team's")

    assert signed_in(owner).get(page_of(mine)).status_code == 200
    assert signed_in(teammate).get(page_of(team)).status_code == 200
    for email in (mine, team):
        assert signed_in(outsider).get(page_of(email)).status_code == 404
        assert signed_in(outsider).get(f"/mail/{email.pk}/body/").status_code == 404
    assert signed_in(teammate).get(page_of(mine)).status_code == 404
    assert signed_in(owner).get("/mail/999999/").status_code == 404
    assert Client().get(page_of(mine)).status_code == 302  # sign in first


def test_the_page_lists_sender_parties_regarding_details_attachments_and_timeline(
    org, owner, team_queue
):
    contact = ContactFactory(first_name="Zoe", last_name="Zed", email="zoe@customer.example")
    email = email_create(
        actor=owner,
        sender=team_queue,
        subject="Your renewal",
        to=[contact],
        cc=["cc.person@example.org"],
        bcc=["audit@example.com"],
        regarding=contact,
        body_html="<p>Hello Zoe</p>",
    )
    attachment_store(owner=email, source=b"%PDF-1.7 quote", filename="quote.pdf", actor=owner)
    email = email_send(email=email, actor=owner)
    record_event(
        email_id=email.pk, kind="status", from_status="pending_send", to_status="sending",
        actor_label="worker celery@host1", reason="claimed by the worker",
    )  # fmt: skip

    answer = signed_in(owner).get(page_of(email))

    assert answer.status_code == 200
    html = answer.content.decode()
    assert "Your renewal" in html and "badge-pending_send" in html
    assert "Support" in html and "support@example.com" in html
    assert "Zoe Zed" in html and "zoe@customer.example" in html
    assert "cc.person@example.org" in html and "audit@example.com" in html
    assert "Mail about Zoe Zed" in html
    assert f"regarding_type=contact&amp;regarding_id={contact.pk}" in html
    email.refresh_from_db()
    assert email.message_id and email.message_id in html.replace("&lt;", "<").replace("&gt;", ">")
    assert "quote.pdf" in html and "application/pdf" in html
    attachment = email.attachments.get()
    assert f"/mail/{email.pk}/attachments/{attachment.pk}/" in html
    # The timeline, oldest first, with who and why.
    events = answer.context["timeline"]
    assert [row["event"].to_status for row in events] == ["draft", "pending_send", "sending"]
    assert [row["who"] for row in events] == ["Alice Archer", "Alice Archer", "worker celery@host1"]
    assert "claimed by the worker" in html
    assert 'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in html
    assert f'src="/mail/{email.pk}/body/"' in html
    assert "Cancel sending" in html  # pending and the owner is a member of the queue
    assert "{# email actions #}" not in html


def test_the_page_costs_a_bounded_number_of_queries(
    org, owner, team_queue, django_assert_max_num_queries
):
    email = EmailFactory(sender_queue=team_queue, sender_user=None, status=EmailStatus.SENT)
    for n in range(8):
        EmailPartyFactory(email=email, role="to")
        record_event(email_id=email.pk, kind="note", actor=owner, reason=f"note {n}")
        attachment_store(owner=EmailFactory(sender_user=owner), source=b"x%d" % n, filename="a.txt")
    client = signed_in(owner)
    with django_assert_max_num_queries(16):
        assert client.get(page_of(email)).status_code == 200


def test_a_failed_email_shows_its_last_error_and_a_possible_duplicate_is_flagged(org, owner):
    email = EmailFactory(
        sender_user=owner,
        status=EmailStatus.FAILED,
        last_error="550 5.1.1 no such user",
        attempts=3,
        possible_duplicate=True,
    )
    html = signed_in(owner).get(page_of(email)).content.decode()
    assert "550 5.1.1 no such user" in html and "after 3 attempts" in html
    assert "Possible duplicate" in html
    assert "Cancel sending" not in html  # failed is not cancelable


def test_a_text_only_email_shows_its_text_escaped_without_a_frame(org, owner):
    email = EmailFactory(sender_user=owner, body_html="", body_text="Hi <b>there</b>\n  indented")
    html = signed_in(owner).get(page_of(email)).content.decode()
    assert "Hi &lt;b&gt;there&lt;/b&gt;\n  indented" in html
    assert "<iframe" not in html


def test_the_body_frame_is_sanitised_under_its_own_policy(org, owner):
    email = EmailFactory(
        sender_user=owner,
        direction=Direction.INCOMING,
        status=EmailStatus.RECEIVED,
        body_html='<p onclick="x()">Hi<script>alert(1)</script></p>'
        '<img src="https://images.example/pixel.gif"><a href="javascript:alert(2)">go</a>'
        '<img src="/sign-out/" alt="relative"><img src="x" onerror="alert(3)">',
    )
    client = signed_in(owner)

    page = client.get(page_of(email)).content.decode()
    assert "1 remote image was blocked" in page and "Load remote images" in page

    frame = client.get(f"/mail/{email.pk}/body/")
    body = frame.content.decode()
    assert frame.status_code == 200
    assert "script-src 'none'" in frame["Content-Security-Policy"]
    assert "img-src data: cid:;" in frame["Content-Security-Policy"]
    assert "sandbox allow-same-origin" in frame["Content-Security-Policy"]
    assert frame["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in body and "onclick" not in body and "javascript:" not in body
    assert "images.example" not in body and "Hi" in body

    loaded = client.get(f"/mail/{email.pk}/body/", {"images": "1"})
    assert 'src="https://images.example/pixel.gif"' in loaded.content.decode()
    # A relative source would be a request to this site: never kept, images or not.
    assert "sign-out" not in loaded.content.decode() and 'src="x"' not in loaded.content.decode()
    assert "https:" in loaded["Content-Security-Policy"]
    with_images = client.get(page_of(email), {"images": "1"}).content.decode()
    assert f'src="/mail/{email.pk}/body/?images=1"' in with_images
    assert "Remote images are shown" in with_images


def test_download_gives_the_exact_bytes_as_an_attachment(org, owner, outsider):
    data = b"<html><script>alert(1)</script></html>\x00\xff"
    email = EmailFactory(sender_user=owner)
    attachment, _ = attachment_store(
        owner=email, source=data, filename="Årsrapport.html", mime_type="text/html", actor=owner
    )
    url = f"/mail/{email.pk}/attachments/{attachment.pk}/"

    answer = signed_in(owner).get(url)

    assert answer.status_code == 200
    assert read(answer) == data
    assert answer["Content-Type"] == "text/html"
    assert answer["Content-Disposition"].startswith('attachment; filename="Arsrapport.html"')
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in answer["Content-Security-Policy"]
    assert answer["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert signed_in(outsider).get(url).status_code == 404
    other = EmailFactory(sender_user=owner)
    assert signed_in(owner).get(f"/mail/{other.pk}/attachments/{attachment.pk}/").status_code == 404


def test_download_of_missing_bytes_is_a_404(org, owner):
    email = EmailFactory(sender_user=owner)
    attachment, _ = attachment_store(owner=email, source=b"gone", filename="gone.txt", actor=owner)
    default_storage.delete(attachment.blob.file.name)
    answer = signed_in(owner).get(f"/mail/{email.pk}/attachments/{attachment.pk}/")
    assert answer.status_code == 404


def test_cancel_withdraws_a_draft_and_records_who(org, owner):
    email = EmailFactory(sender_user=owner, subject="not yet")
    client = signed_in(owner)

    answer = client.post(f"/mail/{email.pk}/cancel/")

    assert answer.status_code == 302 and answer["Location"] == page_of(email)
    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED and email.canceled_at is not None
    event = EmailEvent.objects.get(email=email)
    assert (event.from_status, event.to_status, event.actor) == ("draft", "canceled", owner)
    shown = client.get(page_of(email)).content.decode()
    assert "Sending canceled" in shown and "Cancel sending" not in shown


def test_cancel_of_a_sent_email_is_refused_with_409_and_nothing_changes(org, owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.SENT)

    answer = signed_in(owner).post(f"/mail/{email.pk}/cancel/")

    assert answer.status_code == 409
    html = answer.content.decode()
    assert 'role="alert"' in html and "cannot cancel an email whose status is sent" in html
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert not EmailEvent.objects.filter(email=email).exists()


def test_cancel_by_a_party_who_may_not_act_for_the_sender_is_refused(org, owner, outsider):
    email = EmailFactory(sender_user=owner)
    EmailPartyFactory(email=email, role="cc", address=outsider.email, user=outsider)
    client = signed_in(outsider)
    assert "Cancel sending" not in client.get(page_of(email)).content.decode()

    answer = client.post(f"/mail/{email.pk}/cancel/")

    assert answer.status_code == 403 and "may not send as the user alice" in answer.content.decode()
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT and not email.events.exists()
    assert signed_in(outsider).get(f"/mail/{email.pk}/cancel/").status_code == 405


def test_the_mail_list_links_each_subject_to_its_page(org, owner):
    email = EmailFactory(sender_user=owner, subject="open me")
    html = signed_in(owner).get("/mail/drafts/").content.decode()
    assert f'href="/mail/{email.pk}/"' in html


def test_the_mail_list_filtered_by_a_record_names_it_and_can_clear_it(org, owner):
    zoe = ContactFactory(first_name="Zoe", last_name="Zed")
    other = ContactFactory()
    about = email_create(
        actor=owner, sender=owner, subject="about zoe", regarding=zoe, to=["a@b.example"]
    )
    email_create(
        actor=owner, sender=owner, subject="about other", regarding=other, to=["a@b.example"]
    )
    client = signed_in(owner)

    answer = client.get("/mail/drafts/", {"regarding_type": "contact", "regarding_id": zoe.pk})

    assert [email.subject for email, _ in answer.context["rows"]] == ["about zoe"]
    html = answer.content.decode()
    assert "About" in html and "Zoe Zed" in html
    assert 'href="/mail/drafts/" class="regarding-clear"' in html  # clears the filter
    # Filtering further keeps the record.
    assert f'name="regarding_id" value="{zoe.pk}"' in html
    assert Email.objects.filter(pk=about.pk, status=EmailStatus.DRAFT).exists()
    unfiltered = client.get("/mail/drafts/").content.decode()
    assert "About" not in unfiltered
