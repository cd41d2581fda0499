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
    Template,
    WebhookEndpoint,
    WebhookEventType,
)
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


class WebhookEndpointFactory(DjangoModelFactory):
    """An active endpoint for email status changes, with a fresh Standard Webhooks secret."""

    class Meta:
        model = WebhookEndpoint

    url = factory.Sequence(lambda n: f"http://127.0.0.1:9/hook/{n}")
    event_types = factory.LazyFunction(lambda: [WebhookEventType.EMAIL_STATUS_CHANGED.value])
    secret = factory.LazyFunction(lambda: new_secret())
