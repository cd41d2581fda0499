"""factory_boy factories for every model; tests build their data with these."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Permission
from factory.django import DjangoModelFactory

from activities.models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Direction,
    Email,
    EmailParty,
    EmailStatus,
    PartyRole,
    PolledMailbox,
    Template,
    WebhookEndpoint,
    WebhookEventType,
)
from activities.secrets import seal
from activities.services.webhooks import new_secret
from crm.models import Account, Contact, EmailApproval, Queue, Tag, User


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@staff.example.com")
    email_router_access_approval = EmailApproval.APPROVED
    # Not staff: staff see every email, so a test about who may see what would pass by
    # accident. Ask for the ``staff`` persona, or ``is_staff=True``, where staff is meant.
    is_staff = False
    password = factory.PostGenerationMethodCall("set_password", "demo")

    @factory.post_generation
    def permissions(self, create, extracted, **kwargs):
        if create:
            grant(self, extracted or [])
            self.save()


class ApproverFactory(UserFactory):
    """A user holding crm.approve_email_address (plus any ``permissions`` given)."""

    @factory.post_generation
    def permissions(self, create, extracted, **kwargs):
        if create:
            grant(self, ["crm.approve_email_address", *(extracted or [])])
            self.save()


def grant(user: User, codenames: list[str]) -> None:
    for codename in codenames:
        app_label, code = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=code)
        )


class QueueFactory(DjangoModelFactory):
    class Meta:
        model = Queue
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Queue {n}")
    email = factory.Sequence(lambda n: f"queue{n}@example.com")
    email_router_access_approval = EmailApproval.APPROVED

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            self.members.set(extracted)


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class AccountFactory(DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Faker("company")
    city = "Oslo"


class ContactFactory(DjangoModelFactory):
    class Meta:
        model = Contact

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"contact{n}@customers.example.org")
    account = factory.SubFactory(AccountFactory)
    city = "Oslo"


class EmailFactory(DjangoModelFactory):
    """A draft from a user; add parties with ``EmailPartyFactory`` or ``with_to``."""

    class Meta:
        model = Email
        skip_postgeneration_save = True

    subject = factory.Sequence(lambda n: f"Subject {n}")
    body_html = "<p>Hello</p>"
    body_text = "Hello"
    direction = Direction.OUTGOING
    status = EmailStatus.DRAFT
    sender_user = factory.SubFactory(UserFactory)

    @factory.post_generation
    def with_to(self, create, extracted, **kwargs):
        if create and extracted:
            for i, address in enumerate([extracted] if isinstance(extracted, str) else extracted):
                EmailParty.objects.create(
                    email=self, role=PartyRole.TO, address=address, position=i
                )


def pending_queue_emails(queue: Queue, count: int, *, tag: str) -> list[int]:
    """``count`` emails waiting to be sent from ``queue`` (``pending_send``), Message-IDs
    ``<tag-N@test.example>``, in bulk inserts; the queue's email ids, in order."""
    Email.objects.bulk_create(
        (
            EmailFactory.build(
                sender_user=None,
                sender_queue=queue,
                status=EmailStatus.PENDING_SEND,
                state="completed",
                message_id=f"<{tag}-{i}@test.example>",
            )
            for i in range(count)
        ),
        batch_size=1000,
    )
    return list(
        Email.objects.filter(sender_queue=queue).order_by("pk").values_list("pk", flat=True)
    )


def sent_email(*, to: list[str], provider_ids: dict[str, str] | None = None, **fields) -> Email:
    """An email that went out (``sent``) with its Message-ID, each recipient with the
    provider's message id it got at send (``provider_ids``, else the Message-ID)."""
    fields.setdefault("message_id", f"<sent-{EmailFactory._meta.next_sequence()}@crm.test>")
    email = EmailFactory(status=EmailStatus.SENT, state="completed", **fields)
    provider_ids = provider_ids or {}
    for position, address in enumerate(to):
        EmailParty.objects.create(
            email=email,
            role=PartyRole.TO,
            address=address,
            position=position,
            provider_message_id=provider_ids.get(address, email.message_id),
            delivery_state="sent",
        )
    return email


class EmailPartyFactory(DjangoModelFactory):
    class Meta:
        model = EmailParty

    email = factory.SubFactory(EmailFactory)
    role = PartyRole.TO
    address = factory.Sequence(lambda n: f"recipient{n}@example.net")


class TemplateFactory(DjangoModelFactory):
    class Meta:
        model = Template

    title = factory.Sequence(lambda n: f"Template {n}")
    record_type = "contact"
    subject = "Hello {{ contact.first_name }}"
    body_html = "<p>Dear {{ contact.full_name }}, from {{ sender.name }}</p>"
    body_text = "Dear {{ contact.full_name }}, from {{ sender.name }}"


class AttachmentBlobFactory(DjangoModelFactory):
    class Meta:
        model = AttachmentBlob


class ActivityMimeAttachmentFactory(DjangoModelFactory):
    class Meta:
        model = ActivityMimeAttachment


# --- bounce messages, as mail servers write them (flufl.bounce's test data shapes) ---


def dsn_bounce(
    *,
    message_id: str,
    recipient: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
    to: str = "crm@example.com",
    dsn_id: str = "<20261203100501.9F2B3C@mx.customers.example.org>",
    headers_only: bool = False,
) -> bytes:
    """An RFC 3464 DSN from Postfix: multipart/report with the human part, the
    message/delivery-status part, and the original (``message/rfc822``) or only its
    headers (``text/rfc822-headers``)."""
    copy_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    copy_body = "" if headers_only else "\nHello Ann\n"
    text = f"""\
Return-Path: <>
Received: by mx.customers.example.org (Postfix) id 9F2B3C; Thu,  3 Dec 2026 10:05:01 +0000
Date: Thu,  3 Dec 2026 10:05:01 +0000 (UTC)
From: MAILER-DAEMON@mx.customers.example.org (Mail Delivery System)
Subject: {"Delayed Mail (still being retried)" if action == "delayed" else "Undelivered Mail Returned to Sender"}
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="9F2B3C.1764756301/mx.customers.example.org"
Message-Id: {dsn_id}

This is a MIME-encapsulated message.

--9F2B3C.1764756301/mx.customers.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.customers.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{recipient}>: host mx.customers.example.org[192.0.2.25] said: 550 5.1.1
    User unknown (in reply to RCPT TO command)

--9F2B3C.1764756301/mx.customers.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customers.example.org
X-Postfix-Queue-ID: 9F2B3C
Arrival-Date: Thu,  3 Dec 2026 10:05:00 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.customers.example.org
Diagnostic-Code: {diagnostic.format(recipient=recipient)}

--9F2B3C.1764756301/mx.customers.example.org
Content-Description: Undelivered Message
Content-Type: {copy_type}

From: Alice <alice@example.com>
To: {recipient}
Subject: Renewal
Message-ID: {message_id}
Date: Thu, 3 Dec 2026 10:04:59 +0000
{copy_body}
--9F2B3C.1764756301/mx.customers.example.org--
"""
    return text.replace("\n", "\r\n").encode()


def exim_bounce(*, message_id: str, recipient: str, to: str = "crm@example.com") -> bytes:
    """Exim's own bounce: plain text, the failed addresses in X-Failed-Recipients, the
    original quoted below."""
    return f"""\
Return-path: <>
Envelope-to: {to}
Date: Thu, 03 Dec 2026 10:06:00 +0000
From: Mail Delivery System <Mailer-Daemon@mail.customers.example.org>
To: {to}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1vQx7c-0004Xy-2K@mail.customers.example.org>
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

Return-path: <alice@example.com>
From: Alice <alice@example.com>
To: {recipient}
Subject: Renewal
Message-ID: {message_id}

Hello Ann
""".replace("\n", "\r\n").encode()


def qmail_bounce(*, message_id: str, recipient: str, to: str = "crm@example.com") -> bytes:
    """qmail's QSBMF bounce (http://cr.yp.to/proto/qsbmf.txt)."""
    return f"""\
Return-Path: <>
Date: 3 Dec 2026 10:07:00 -0000
From: MAILER-DAEMON@qmail.customers.example.org
To: {to}
Subject: failure notice
Message-ID: <20261203100700.4711.qmail@qmail.customers.example.org>

Hi. This is the qmail-send program at qmail.customers.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <alice@example.com>
From: Alice <alice@example.com>
To: {recipient}
Subject: Renewal
Message-ID: {message_id}

Hello Ann
""".replace("\n", "\r\n").encode()


class PolledMailboxFactory(DjangoModelFactory):
    """An IMAP mailbox of a queue, plain text on loopback (tests point it at Dovecot)."""

    class Meta:
        model = PolledMailbox

    queue = factory.SubFactory(QueueFactory)
    protocol = "imap"
    host = "127.0.0.1"
    port = 143
    security = "none"
    username = "support"
    secret_sealed = factory.LazyFunction(lambda: seal("s3cret-pass"))
    after_store = "mark_seen"


class WebhookEndpointFactory(DjangoModelFactory):
    """An active endpoint for email status changes, with a fresh Standard Webhooks secret."""

    class Meta:
        model = WebhookEndpoint

    url = factory.Sequence(lambda n: f"http://127.0.0.1:9/hook/{n}")
    event_types = factory.LazyFunction(lambda: [WebhookEventType.EMAIL_STATUS_CHANGED.value])
    secret = factory.LazyFunction(lambda: new_secret())
