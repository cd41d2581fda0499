"""Compose, reply, forward in the test client: saving, sending and every refusal in words,
with the draft kept; prefills of replies and forwards; suggestions, templates, uploads."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Direction,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    PartyRole,
)
from activities.services.attachments import attachment_store
from crm.models import EmailApproval
from tests.factories import (
    AccountFactory,
    ContactFactory,
    EmailFactory,
    EmailPartyFactory,
    QueueFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(owner):
    """A queue of the owner's whose address awaits approval."""
    return QueueFactory(
        name="Sales",
        email="sales@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )


@pytest.fixture
def owner_client(owner) -> Client:
    """The owner, signed in."""
    owner_client = Client()
    owner_client.force_login(owner)
    return owner_client


@pytest.fixture
def ann(db):
    # Her account named here: a made-up company name may hold "ann" ("Hermann Inc").
    return ContactFactory(
        first_name="Ann",
        last_name="Lee",
        email="ann.lee@customers.example.org",
        account=AccountFactory(name="Lee Household"),
    )


def form(**fields) -> dict:
    data = {
        "sender": "",
        "to": "",
        "cc": "",
        "bcc": "",
        "subject": "Renewal",
        "body_text": "Hello Ann",
        "body_html": "",
        "priority": "normal",
        "regarding_type": "",
        "regarding_id": "",
        "template": "",
        "action": "save",
    }
    data.update(fields)
    return data


def text(response) -> str:
    return response.content.decode()


def test_the_compose_page_offers_the_user_and_their_queues_with_approval_states(
    owner_client, owner, team_queue, sales, org
):
    QueueFactory(name="Elsewhere", email="elsewhere@example.com")
    page = owner_client.get("/mail/new/")
    assert page.status_code == 200
    senders = [option.label for option in page.context["sender_options"]]
    assert senders == [
        f"Alice Archer <{owner.email}> · approved",
        "Sales <sales@example.com> · pending approval",
        "Support <support@example.com> · approved",
    ]
    assert "an administrator must approve it before mail can be sent from it" in text(page)
    assert page.context["chosen_sender"] == f"user:{owner.pk}"

    org.require_approval_for_queue_email = False
    org.save()
    labels = [o.label for o in owner_client.get("/mail/new/").context["sender_options"]]
    assert "Sales <sales@example.com> · not required" in labels


def test_save_creates_a_draft_linked_to_the_contact_and_opens_its_edit_page(
    owner_client, owner, team_queue, ann
):
    response = owner_client.post(
        "/mail/new/",
        form(
            sender=f"queue:{team_queue.pk}",
            to="Ann Lee <ann.lee@customers.example.org>, bo@example.net",
            cc='"Lee, Cy" <cy@example.net>',
            regarding_type="contact",
            regarding_id=str(ann.pk),
            priority="high",
        ),
    )
    email = Email.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mail/{email.pk}/edit/"
    assert email.status == EmailStatus.DRAFT and email.sender_queue == team_queue
    assert email.subject == "Renewal" and email.body_text == "Hello Ann"
    assert email.priority == "high" and email.regarding == ann
    to = list(email.parties.filter(role=PartyRole.TO).order_by("position"))
    assert [(p.address, p.contact) for p in to] == [
        ("ann.lee@customers.example.org", ann),
        ("bo@example.net", None),
    ]
    assert email.parties.get(role=PartyRole.CC).name == "Lee, Cy"

    page = owner_client.get(f"/mail/{email.pk}/edit/")
    assert page.status_code == 200
    assert page.context["form"]["to"].value() == (
        "Ann Lee <ann.lee@customers.example.org>, bo@example.net"
    )
    assert page.context["regarding_label"] == "Contact: Ann Lee <ann.lee@customers.example.org>"

    again = owner_client.post(f"/mail/{email.pk}/edit/", form(sender=f"user:{owner.pk}", to=""))
    assert again.status_code == 302 and Email.objects.count() == 1
    email.refresh_from_db()
    assert email.sender_user == owner and not email.parties.filter(role=PartyRole.TO).exists()


def test_send_without_recipients_is_refused_in_words_and_the_draft_keeps_what_was_typed(
    owner_client, owner
):
    response = owner_client.post(
        "/mail/new/", form(sender=f"user:{owner.pk}", subject="No one", action="send")
    )
    assert response.status_code == 400
    email = Email.objects.get()
    assert email.status == EmailStatus.DRAFT and email.subject == "No one"
    body = text(response)
    assert "the email has no recipients: add at least one To, Cc or Bcc address" in body
    assert 'id="to-error"' in body and 'aria-invalid="true"' in body
    assert "The draft is saved" in body
    # The page now posts to the draft, so a second try does not write a second email.
    assert response.context["action_url"] == f"/mail/{email.pk}/edit/"
    assert not EmailEvent.objects.filter(email=email).exclude(reason="created").exists()


def test_an_invalid_address_is_refused_next_to_its_field_and_the_input_is_kept(owner_client, owner):
    response = owner_client.post(
        "/mail/new/",
        form(sender=f"user:{owner.pk}", to="ann@example.com", cc="not-an-address", action="send"),
    )
    assert response.status_code == 400
    assert Email.objects.count() == 0
    errors = {row["field"].name: row["error"] for row in response.context["recipient_fields"]}
    assert errors["cc"] == "cc address 'not-an-address' is not a valid email address"
    assert errors["to"] == ""
    assert 'value="not-an-address"' in text(response)
    assert 'value="Renewal"' in text(response)


def test_a_line_break_in_the_subject_is_refused_and_the_draft_is_unchanged(owner_client, owner):
    draft = EmailFactory(sender_user=owner, subject="Before")
    response = owner_client.post(
        f"/mail/{draft.pk}/edit/",
        form(sender=f"user:{owner.pk}", subject="Hi\r\nBcc: evil@example.com", to="a@example.com"),
    )
    assert response.status_code == 400
    assert response.context["errors"]["subject"] == (
        "subject must not contain line breaks (CR, LF) or NUL characters"
    )
    draft.refresh_from_db()
    assert draft.subject == "Before" and not draft.parties.exists()


def test_a_sender_the_user_may_not_use_is_refused_with_403(owner_client, owner):
    other = QueueFactory(name="Board", email="board@example.com")
    response = owner_client.post(
        "/mail/new/", form(sender=f"queue:{other.pk}", to="ann@example.com", action="send")
    )
    assert response.status_code == 403
    assert response.context["errors"]["sender"] == (
        "alice is not a member of the queue Board and may not send as it"
    )
    assert Email.objects.count() == 0


def test_an_unapproved_sender_keeps_the_draft_and_says_an_administrator_must_approve(
    owner_client, sales
):
    response = owner_client.post(
        "/mail/new/",
        form(sender=f"queue:{sales.pk}", to="ann@example.com", subject="Offer", action="send"),
    )
    assert response.status_code == 400
    email = Email.objects.get()
    assert email.status == EmailStatus.DRAFT and email.sender_queue == sales
    assert email.parties.get(role=PartyRole.TO).address == "ann@example.com"
    assert response.context["errors"]["sender"] == (
        "sender address is not approved: the queue address sales@example.com is pending "
        "approval; an administrator must approve it before mail can be sent from it"
    )
    assert "Not sent: sender address is not approved" in text(response)


def test_send_accepts_the_email_for_delivery_and_opens_its_page(
    owner_client, team_queue, ann, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(
            "/mail/new/",
            form(sender=f"queue:{team_queue.pk}", to=ann.email, subject="Renewal", action="send"),
        )
    email = Email.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mail/{email.pk}/"
    assert email.status == EmailStatus.PENDING_SEND and email.message_id
    assert len(callbacks) == 1  # the delivery task, after commit
    page = owner_client.get(response["Location"])
    assert "Sent: the email is on its way." in text(page)


def test_mark_as_sent_delivers_nothing_and_cancel_withdraws_the_draft(owner_client, owner):
    draft = EmailFactory(sender_user=owner, with_to="ann@example.com")
    response = owner_client.post(
        f"/mail/{draft.pk}/edit/",
        form(sender=f"user:{owner.pk}", to="ann@example.com", action="mark_sent"),
    )
    assert response.status_code == 302 and response["Location"] == f"/mail/{draft.pk}/"
    draft.refresh_from_db()
    assert draft.status == EmailStatus.SENT and not draft.message_id

    other = EmailFactory(sender_user=owner, subject="Throw away")
    response = owner_client.post(f"/mail/{other.pk}/edit/", {"action": "cancel"})
    assert response.status_code == 302 and response["Location"] == "/mail/drafts/"
    other.refresh_from_db()
    assert other.status == EmailStatus.CANCELED

    new = owner_client.post("/mail/new/", {"action": "cancel"})
    assert new.status_code == 302 and Email.objects.count() == 2


def test_only_open_outgoing_mail_of_ones_own_can_be_edited(owner_client, owner):
    sent = EmailFactory(sender_user=owner, status=EmailStatus.SENT)
    response = owner_client.get(f"/mail/{sent.pk}/edit/")
    assert response.status_code == 409
    assert "cannot edit" in text(response) or "edit" in response.context["blocked"]
    hidden = EmailFactory()  # another user's draft: not visible to the owner
    assert owner_client.get(f"/mail/{hidden.pk}/edit/").status_code == 404
    incoming = EmailFactory(
        sender_user=None, direction=Direction.INCOMING, status=EmailStatus.RECEIVED
    )
    EmailPartyFactory(email=incoming, role=PartyRole.TO, user=owner, address=owner.email)
    assert owner_client.get(f"/mail/{incoming.pk}/edit/").status_code == 409
    failed = EmailFactory(sender_user=owner, status=EmailStatus.FAILED, last_error="550")
    page = owner_client.get(f"/mail/{failed.pk}/edit/")
    # Issue 11 (API.md): a failed email takes attachment changes like a draft.
    assert page.status_code == 200 and page.context["can_attach"] is True


def incoming_to(queue, **fields) -> Email:
    fields.setdefault("status", EmailStatus.RECEIVED)
    email = EmailFactory(
        sender_user=None,
        direction=Direction.INCOMING,
        message_id="<abc@mail.example.org>",
        references="<root@mail.example.org>",
        subject="Question about my invoice",
        body_text="Line one\n\nLine three",
        **fields,
    )
    EmailParty.objects.create(
        email=email, role=PartyRole.FROM, address="ann.lee@customers.example.org", name="Ann Lee"
    )
    EmailParty.objects.create(email=email, role=PartyRole.TO, address=queue.email, queue=queue)
    EmailParty.objects.create(email=email, role=PartyRole.TO, address="bo@example.net")
    EmailParty.objects.create(email=email, role=PartyRole.CC, address="alice@staff.example.com")
    EmailParty.objects.create(email=email, role=PartyRole.CC, address="cy@example.net")
    return email


def test_reply_is_prefilled_and_saves_a_threaded_draft(owner_client, owner, team_queue, ann):
    original = incoming_to(team_queue, regarding_type=None)
    original.regarding = ann
    original.save()
    page = owner_client.get(f"/mail/{original.pk}/reply/")
    assert page.status_code == 200
    initial = page.context["form"].initial
    assert initial["to"] == "Ann Lee <ann.lee@customers.example.org>"
    assert initial["cc"] == ""
    assert initial["subject"] == "Re: Question about my invoice"
    assert initial["sender"] == f"queue:{team_queue.pk}"
    assert (
        "Ann Lee <ann.lee@customers.example.org> wrote:\n> Line one\n>\n> Line three"
        in (initial["body_text"])
    )
    assert (initial["regarding_type"], initial["regarding_id"]) == ("contact", ann.pk)

    everyone = owner_client.get(f"/mail/{original.pk}/reply/?all=1").context["form"].initial
    # the owner's own address and her queue's are left out.
    assert everyone["to"] == "Ann Lee <ann.lee@customers.example.org>, bo@example.net"
    assert everyone["cc"] == "cy@example.net"

    original.subject = "RE: already a reply"
    original.save()
    assert owner_client.get(f"/mail/{original.pk}/reply/").context["form"].initial["subject"] == (
        "RE: already a reply"
    )

    response = owner_client.post(
        f"/mail/{original.pk}/reply/",
        form(**{k: v for k, v in initial.items() if k != "priority"}),
    )
    reply = Email.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/mail/{reply.pk}/edit/"
    assert reply.in_reply_to == "<abc@mail.example.org>"
    assert reply.references == "<root@mail.example.org>" and reply.parent == original
    assert reply.sender_queue == team_queue and reply.regarding == ann


def test_forward_is_prefilled_and_links_the_chosen_attachments_to_the_same_blobs(
    owner_client, owner, team_queue
):
    original = incoming_to(team_queue, status=EmailStatus.DRAFT)  # to take files, then received
    kept, _ = attachment_store(owner=original, source=b"%PDF terms", filename="terms.pdf")
    dropped, _ = attachment_store(owner=original, source=b"other", filename="other.txt")
    Email.objects.filter(pk=original.pk).update(status=EmailStatus.RECEIVED)
    page = owner_client.get(f"/mail/{original.pk}/forward/")
    initial = page.context["form"].initial
    assert initial["subject"] == "Fwd: Question about my invoice"
    assert "---------- Forwarded message ----------\nFrom: Ann Lee" in initial["body_text"]
    assert "Subject: Question about my invoice" in initial["body_text"]
    assert "Line one" in initial["body_text"]
    assert [a.filename for a in page.context["forward_files"]] == ["terms.pdf", "other.txt"]

    response = owner_client.post(
        f"/mail/{original.pk}/forward/",
        form(
            sender=f"user:{owner.pk}",
            to="dan@example.net",
            subject=initial["subject"],
            forward_attachment=[str(kept.pk)],
        ),
    )
    forward = Email.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/mail/{forward.pk}/edit/"
    copies = list(forward.attachments.all())
    assert [(a.filename, a.blob_id) for a in copies] == [("terms.pdf", kept.blob_id)]
    assert AttachmentBlob.objects.count() == 2
    assert original.attachments.count() == 2 and dropped.pk


def test_recipient_suggestions_find_contacts_and_users_by_name_or_address(owner_client, ann, owner):
    ContactFactory(first_name="Bob", last_name="Stone", email="bob@customers.example.org")
    UserFactory(username="annika", first_name="Annika", last_name="Berg")
    response = owner_client.get(
        "/compose/recipients/", {"field": "cc", "cc": "bo@example.net, ann"}
    )
    assert response.status_code == 200
    values = [o["value"] for o in response.context["options"]]
    assert values == [
        "Ann Lee <ann.lee@customers.example.org>",
        "Annika Berg <annika@staff.example.com>",
    ]
    assert 'id="cc-option-1"' in text(response) and 'role="option"' in text(response)
    by_address = owner_client.get("/compose/recipients/", {"q": "bob@cust"}).context["options"]
    assert [o["address"] for o in by_address] == ["bob@customers.example.org"]
    assert owner_client.get("/compose/recipients/", {"q": ""}).context["options"] == []


def test_regarding_suggestions_find_contacts_and_accounts(owner_client, ann):
    AccountFactory(name="Annex Shipping")
    options = owner_client.get("/compose/regarding/", {"q": "ann"}).context["options"]
    assert [(o["type"], o["label"]) for o in options] == [
        ("contact", "Contact: Ann Lee <ann.lee@customers.example.org>"),
        ("account", "Account: Annex Shipping"),
    ]


def test_insert_template_fills_subject_and_body_for_the_contact_and_sender(
    owner_client, owner, team_queue, ann
):
    template = TemplateFactory(title="Welcome")
    response = owner_client.post(
        "/compose/template/",
        {
            "template_pick": str(template.pk),
            "sender": f"queue:{team_queue.pk}",
            "regarding_type": "contact",
            "regarding_id": str(ann.pk),
            "subject": "old",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = text(response)
    assert 'value="Hello Ann"' in body
    assert "Dear Ann Lee, from Support" in body
    assert f'name="template" value="{template.pk}"' in body
    assert "Inserted the template “Welcome”." in body


def test_insert_template_shows_the_error_with_its_line_and_keeps_the_text(owner_client, owner, ann):
    broken = TemplateFactory(
        title="Broken", body_text="Hi\n{{ contact.nickname }}", body_html="<p>x</p>"
    )
    response = owner_client.post(
        "/compose/template/",
        {
            "template_pick": str(broken.pk),
            "regarding_type": "contact",
            "regarding_id": str(ann.pk),
            "subject": "Kept subject",
            "body_text": "Kept body",
        },
    )
    assert response.status_code == 400
    error = response.context["errors"]["template"]
    assert "contact.nickname" in error and "line 2" in error
    assert 'value="Kept subject"' in text(response) and "Kept body" in text(response)

    wrong_record = owner_client.post(
        "/compose/template/", {"template_pick": str(TemplateFactory(title="For contacts").pk)}
    )
    assert wrong_record.status_code == 400
    assert "is for a contact record, not nothing" in wrong_record.context["errors"]["template"]


def test_upload_stores_a_file_on_the_draft_and_marks_bytes_already_stored(owner_client, owner):
    draft = EmailFactory(sender_user=owner)
    first = owner_client.post(
        f"/mail/{draft.pk}/attachments/",
        {"file": SimpleUploadedFile("terms.pdf", b"%PDF-1.4 terms", "application/pdf")},
    )
    assert first.status_code == 201
    assert "terms.pdf" in text(first) and "already stored" not in text(first)
    again = owner_client.post(
        f"/mail/{draft.pk}/attachments/",
        {"file": SimpleUploadedFile("copy.pdf", b"%PDF-1.4 terms", "application/octet-stream")},
    )
    assert again.status_code == 201 and "already stored" in text(again)
    files = list(draft.attachments.order_by("position"))
    assert [(a.filename, a.mime_type) for a in files] == [
        ("terms.pdf", "application/pdf"),
        ("copy.pdf", "application/pdf"),
    ]
    assert AttachmentBlob.objects.count() == 1

    removed = owner_client.post(
        f"/mail/{draft.pk}/attachments/{files[0].pk}/remove/", HTTP_HX_REQUEST="true"
    )
    assert removed.status_code == 200 and "Removed terms.pdf" in text(removed)
    assert list(draft.attachments.all()) == [files[1]]


def test_an_upload_over_the_limit_is_refused_with_413_naming_the_limit(owner_client, owner, org):
    org.max_attachment_bytes = 10
    org.save()
    draft = EmailFactory(sender_user=owner)
    response = owner_client.post(
        f"/mail/{draft.pk}/attachments/",
        {"file": SimpleUploadedFile("big.bin", b"x" * 11)},
    )
    assert response.status_code == 413
    assert text(response) == (
        "the file is larger than the limit of 10 bytes (Organization.max_attachment_bytes)"
    )
    assert not ActivityMimeAttachment.objects.exists() and not AttachmentBlob.objects.exists()


def test_uploads_need_a_draft_the_user_may_change_and_a_csrf_token(owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    draft = EmailFactory(sender_user=owner)
    refused = csrf_client.post(
        f"/mail/{draft.pk}/attachments/", {"file": SimpleUploadedFile("a.txt", b"a")}
    )
    assert refused.status_code == 403 and not draft.attachments.exists()

    client = Client()
    client.force_login(owner)
    sent = EmailFactory(sender_user=owner, status=EmailStatus.SENT)
    response = client.post(
        f"/mail/{sent.pk}/attachments/", {"file": SimpleUploadedFile("a.txt", b"a")}
    )
    assert response.status_code == 409
    assert text(response) == "only draft and failed emails take attachments; this email is sent"
    assert (
        client.post(
            f"/mail/{EmailFactory().pk}/attachments/", {"file": SimpleUploadedFile("a.txt", b"a")}
        ).status_code
        == 404
    )


def test_the_pages_own_save_before_an_upload_answers_where_the_draft_lives(owner_client, owner):
    response = owner_client.post(
        "/mail/new/", form(sender=f"user:{owner.pk}"), HTTP_X_COMPOSE_SAVE="1"
    )
    email = Email.objects.get()
    assert response.status_code == 200
    assert response.json()["edit_url"] == f"/mail/{email.pk}/edit/"
    assert response.json()["upload_url"] == f"/mail/{email.pk}/attachments/"
    refused = owner_client.post("/mail/new/", form(sender="", to="x"), HTTP_X_COMPOSE_SAVE="1")
    assert refused.status_code == 400 and "From" in refused.json()["error"]
    assert Email.objects.count() == 1


def test_the_email_page_links_to_edit_reply_and_forward(owner_client, owner, team_queue):
    draft = EmailFactory(sender_user=owner)
    page = text(owner_client.get(f"/mail/{draft.pk}/"))
    assert f'href="/mail/{draft.pk}/edit/"' in page and "/reply/" not in page
    received = incoming_to(team_queue)
    page = text(owner_client.get(f"/mail/{received.pk}/"))
    assert f'href="/mail/{received.pk}/reply/"' in page
    assert f'href="/mail/{received.pk}/reply/?all=1"' in page
    assert f'href="/mail/{received.pk}/forward/"' in page and "/edit/" not in page


def test_a_failed_email_takes_attachment_changes_on_its_edit_page(owner_client, owner):
    """API.md: failed emails are editable and take attachments like drafts (issue 11)."""
    failed = EmailFactory(sender_user=owner, status=EmailStatus.FAILED)
    added = owner_client.post(
        f"/mail/{failed.pk}/attachments/",
        {"file": SimpleUploadedFile("fixed.pdf", b"%PDF-1.4 fixed", "application/pdf")},
    )
    assert added.status_code == 201, text(added)
    page = owner_client.get(f"/mail/{failed.pk}/edit/")
    assert page.context["can_attach"] is True
    assert "Remove" in page.content.decode() and "fixed.pdf" in page.content.decode()
    [attachment] = failed.attachments.all()
    removed = owner_client.post(
        f"/mail/{failed.pk}/attachments/{attachment.pk}/remove/", HTTP_HX_REQUEST="true"
    )
    assert removed.status_code == 200
    assert not failed.attachments.exists()
