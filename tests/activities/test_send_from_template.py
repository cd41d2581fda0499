from __future__ import annotations

import pytest

from activities.errors import SenderNotApproved, TemplateRenderError
from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.emails import email_create_from_template, email_send_from_template
from crm.models import EmailApproval
from tests.factories import (
    AccountFactory,
    ContactFactory,
    QueueFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_create_from_template_renders_for_the_contact_and_reuses_blobs(org, owner):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@example.org")
    template = TemplateFactory()
    attachment_store(owner=template, source=b"terms", filename="terms.pdf")
    email = email_create_from_template(template=template, actor=owner, regarding=contact)
    assert email.subject == "Hello Ann"
    assert email.body_text == "Dear Ann Lee, from Alice Archer"
    assert email.template == template and email.regarding == contact
    assert [p.address for p in email.parties.filter(role="to")] == ["ann@example.org"]
    assert AttachmentBlob.objects.count() == 1
    assert ActivityMimeAttachment.objects.filter(email=email).get().blob == (
        ActivityMimeAttachment.objects.get(template=template).blob
    )


def test_send_from_template_queues_the_email(org, owner):
    queue = QueueFactory(members=[owner])
    email = email_send_from_template(
        template=TemplateFactory(), actor=owner, sender=queue, regarding=ContactFactory()
    )
    assert email.status == EmailStatus.PENDING_SEND
    assert email.from_address == queue.email


def test_send_from_template_refused_leaves_nothing(org, owner):
    queue = QueueFactory(members=[owner], email_router_access_approval=EmailApproval.PENDING)
    template = TemplateFactory()
    attachment_store(owner=template, source=b"terms", filename="terms.pdf")
    with pytest.raises(SenderNotApproved):
        email_send_from_template(
            template=template, actor=owner, sender=queue, regarding=ContactFactory()
        )
    assert Email.objects.count() == 0
    assert ActivityMimeAttachment.objects.filter(email__isnull=False).count() == 0


def test_template_for_contacts_refuses_an_account(org):
    with pytest.raises(TemplateRenderError, match="contact"):
        email_create_from_template(
            template=TemplateFactory(), actor=UserFactory(), regarding=AccountFactory()
        )
    assert Email.objects.count() == 0
