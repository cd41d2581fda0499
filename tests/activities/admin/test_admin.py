"""The admin, driven through its real views with the test client."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailStatus, Template
from crm.models import EmailApproval, Organization, Queue
from tests.factories import (
    ContactFactory,
    EmailFactory,
    QueueFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db


def email_form(
    *,
    sender_queue=None,
    sender_user=None,
    contact=None,
    address="",
    subject="Hi",
    upload=None,
    action="_send",
):
    data = {
        "sender_user": sender_user.pk if sender_user else "",
        "sender_queue": sender_queue.pk if sender_queue else "",
        "subject": subject,
        "body_text": "Hello there",
        "body_html": "<p>Hello there</p>",
        "priority": "normal",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "regarding_type": "",
        "regarding_id": "",
        "parties-TOTAL_FORMS": "1",
        "parties-INITIAL_FORMS": "0",
        "parties-MIN_NUM_FORMS": "0",
        "parties-MAX_NUM_FORMS": "1000",
        "parties-0-role": "to",
        "parties-0-contact": contact.pk if contact else "",
        "parties-0-address": address,
        "parties-0-name": "",
        "attachments-TOTAL_FORMS": "1" if upload else "0",
        "attachments-INITIAL_FORMS": "0",
        "attachments-MIN_NUM_FORMS": "0",
        "attachments-MAX_NUM_FORMS": "1000",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "0",
    }
    if upload:
        data["attachments-0-upload"] = upload
    if action:
        data[action] = "1"
    return data


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_done_when_flow_send_from_approved_queue_ends_in_outbox(
    superuser_client, superuser, settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "activities.mail.OutboxBackend"
    queue = QueueFactory(name="Support", email="support@example.com")
    contact = ContactFactory(email="ann.lee@customers.example.org")
    upload = SimpleUploadedFile("terms.pdf", b"%PDF-1.4 terms", content_type="application/pdf")
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            reverse("admin:activities_email_add"),
            email_form(sender_queue=queue, contact=contact, subject="Renewal", upload=upload),
            follow=True,
        )
    assert response.status_code == 200
    email = Email.objects.get()
    assert email.status == EmailStatus.SENT, messages_of(response)
    assert email.sender_queue == queue and email.sender_user is None
    assert email.from_address == "support@example.com"
    files = list(settings.OUTBOX_DIR.glob("*.eml"))
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["To"] == f"{contact.full_name} <ann.lee@customers.example.org>"
    assert message["Subject"] == f"Renewal CRM:{email.pk:07d}"
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "terms.pdf"
    assert attachment.get_content() == b"%PDF-1.4 terms"
    # The email page shows the timeline.
    page = superuser_client.get(reverse("admin:activities_email_change", args=[email.pk]))
    assert page.status_code == 200
    assert b"pending_send" in page.content and b"sent" in page.content


def test_send_from_pending_queue_is_refused_with_the_reason_and_draft_kept(
    superuser_client, django_capture_on_commit_callbacks
):
    queue = QueueFactory(name="Sales", email_router_access_approval=EmailApproval.PENDING)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = superuser_client.post(
            reverse("admin:activities_email_add"),
            email_form(sender_queue=queue, address="ann@example.com"),
            follow=True,
        )
    assert response.status_code == 200
    email = Email.objects.get()
    assert email.status == EmailStatus.DRAFT
    assert any("sender address is not approved" in m for m in messages_of(response))
    assert callbacks == []


def test_bad_recipient_address_is_a_form_error_and_nothing_is_written(superuser_client):
    response = superuser_client.post(
        reverse("admin:activities_email_add"),
        email_form(address="ann@example.com\r\nBcc: victim@example.com"),
    )
    assert response.status_code == 200
    assert b"line breaks" in response.content
    assert Email.objects.count() == 0


def test_crlf_in_subject_is_a_form_error(superuser_client):
    response = superuser_client.post(
        reverse("admin:activities_email_add"),
        email_form(address="ann@example.com", subject="Hi\r\nBcc: x@example.com"),
    )
    assert response.status_code == 200
    assert b"line breaks" in response.content
    assert Email.objects.count() == 0


def test_attachment_over_the_limit_is_a_form_error_and_nothing_is_stored(superuser_client):
    org = Organization.get()
    org.max_attachment_bytes = 10
    org.save()
    upload = SimpleUploadedFile("big.bin", b"x" * 11)
    response = superuser_client.post(
        reverse("admin:activities_email_add"),
        email_form(address="ann@example.com", upload=upload, action=None),
    )
    assert response.status_code == 200
    assert b"over the limit of 10 bytes" in response.content
    assert Email.objects.count() == 0
    assert AttachmentBlob.objects.count() == 0


def test_actions_send_mark_as_sent_cancel_report_each_refusal(superuser_client, superuser):
    ok = EmailFactory(sender_user=superuser, with_to="a@example.com")
    no_recipients = EmailFactory(sender_user=superuser)
    sent = EmailFactory(sender_user=superuser, status=EmailStatus.SENT, with_to="a@example.com")
    url = reverse("admin:activities_email_changelist")
    response = superuser_client.post(
        url,
        {"action": "send", "_selected_action": [ok.pk, no_recipients.pk, sent.pk]},
        follow=True,
    )
    texts = messages_of(response)
    assert any("1 email(s) queued for delivery" in t for t in texts)
    assert any("no recipients" in t for t in texts)
    assert any("cannot send an email whose status is sent" in t for t in texts)
    ok.refresh_from_db()
    no_recipients.refresh_from_db()
    assert ok.status == EmailStatus.PENDING_SEND
    assert no_recipients.status == EmailStatus.DRAFT

    response = superuser_client.post(
        url, {"action": "cancel", "_selected_action": [ok.pk]}, follow=True
    )
    ok.refresh_from_db()
    assert ok.status == EmailStatus.CANCELED

    response = superuser_client.post(
        url, {"action": "mark_as_sent", "_selected_action": [no_recipients.pk]}, follow=True
    )
    no_recipients.refresh_from_db()
    assert no_recipients.status == EmailStatus.SENT


def test_sent_email_page_is_read_only(superuser_client, superuser):
    sent = EmailFactory(sender_user=superuser, status=EmailStatus.SENT, with_to="a@example.com")
    page = superuser_client.get(reverse("admin:activities_email_change", args=[sent.pk]))
    assert page.status_code == 200
    assert b'name="_send"' not in page.content
    response = superuser_client.post(
        reverse("admin:activities_email_change", args=[sent.pk]),
        email_form(address="b@example.com", subject="changed"),
    )
    assert response.status_code == 403
    sent.refresh_from_db()
    assert sent.subject != "changed"


def test_template_with_syntax_error_is_refused_naming_the_line(superuser_client):
    response = superuser_client.post(
        reverse("admin:activities_template_add"),
        {
            "title": "Broken",
            "description": "",
            "record_type": "contact",
            "language": "en",
            "subject": "Hi",
            "body_html": "<p>\nline two\n{% load static %}</p>",
            "body_text": "",
            "attachments-TOTAL_FORMS": "0",
            "attachments-INITIAL_FORMS": "0",
            "attachments-MIN_NUM_FORMS": "0",
            "attachments-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 200
    assert b"line 3" in response.content
    assert not Template.objects.exists()


def test_blob_admin_shows_how_many_attachments_use_it(superuser_client):
    template = TemplateFactory()
    from activities.services.attachments import attachment_store

    attachment_store(owner=template, source=b"same", filename="a.txt")
    attachment_store(owner=template, source=b"same", filename="b.txt")
    page = superuser_client.get(reverse("admin:activities_attachmentblob_changelist"))
    assert page.status_code == 200
    blob = AttachmentBlob.objects.get()
    assert ActivityMimeAttachment.objects.filter(blob=blob).count() == 2
    assert b'<td class="field-used_by">2</td>' in page.content


@pytest.mark.parametrize(
    "name",
    [
        "user",
        "queue",
        "organization",
        "account",
        "contact",
        "tag",
        "email",
        "template",
        "attachmentblob",
        "activitymimeattachment",
        "emailevent",
        "emailparty",
    ],
)
def test_every_admin_changelist_renders(superuser_client, name):
    app = (
        "crm"
        if name in ("user", "queue", "organization", "account", "contact", "tag")
        else "activities"
    )
    response = superuser_client.get(reverse(f"admin:{app}_{name}_changelist"), follow=True)
    assert response.status_code == 200
    assert Queue.objects.count() >= 0
