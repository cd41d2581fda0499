"""Load the demo data of DESIGN.md. Idempotent: running it twice changes nothing."""

from __future__ import annotations

import os
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from activities.models import Email, Template
from activities.outbox import outbox_enabled
from activities.services.attachments import attachment_store, attachments_copy
from activities.services.delivery import (
    email_claim_for_delivery,
    email_deliver,
    email_record_failure,
)
from activities.services.emails import email_create, email_mark_as_sent, email_send
from activities.services.inbound import email_record_received
from crm.models import (
    Account,
    Contact,
    EmailApproval,
    Organization,
    OutgoingDelivery,
    Queue,
    Tag,
    User,
)

DOMAIN = "example.com"
CUSTOMERS = "customers.example.org"

# The demo mail, one for each tab of the mail list (see Command._demo_mail).
DRAFT_SUBJECT = "Meeting notes for Nordlys"
SCHEDULED_SUBJECT = "Your renewal is due next week"
FAILED_SUBJECT = "Invoice 2024-118"
FAILED_ERROR = (
    "550 5.1.1 <chen.wei@customers.example.org>: Recipient address rejected: "
    "User unknown in virtual mailbox table"
)
RECEIVED_SUBJECT = "Two more seats before the renewal"
REVIEW_CSV = b"month,orders,revenue\nJuly,41,182000\nAugust,38,171500\nSeptember,45,199250\n"

CONTACTS = [
    ("Ann", "Lee", "Oslo", "vip"),
    ("Bjorn", "Dahl", "Oslo", ""),
    ("Chen", "Wei", "Bergen", "vip"),
    ("Dina", "Haugen", "Bergen", ""),
    ("Erik", "Lund", "Oslo", "newsletter"),
    ("Fatima", "Khan", "Trondheim", ""),
    ("Gustav", "Berg", "Oslo", "vip"),
    ("Hanna", "Moe", "Stavanger", "newsletter"),
    ("Ivan", "Petrov", "Oslo", ""),
    ("Julia", "Nilsen", "Bergen", "vip"),
    ("Karl", "Olsen", "Oslo", ""),
    ("Lena", "Strand", "Tromso", "newsletter"),
    ("Mats", "Bakke", "Oslo", ""),
    ("Nora", "Vik", "Bergen", ""),
    ("Omar", "Ali", "Oslo", "vip"),
    ("Pia", "Holm", "Trondheim", ""),
    ("Quinn", "Ray", "Oslo", "newsletter"),
    ("Rita", "Sand", "Bergen", ""),
    ("Sven", "Aas", "Oslo", ""),
    ("Tora", "Lie", "Stavanger", "vip"),
]

TEMPLATES = [
    {
        "title": "Welcome",
        "record_type": "contact",
        "subject": "Welcome, {{ contact.first_name }}",
        "body_html": "<p>Dear {{ contact.full_name }},</p><p>Welcome to {{ account.name }}'s "
        "customer programme.</p><p>Kind regards,<br>{{ sender.name }}</p>",
        "body_text": "Dear {{ contact.full_name }},\n\nWelcome to {{ account.name }}'s customer "
        "programme.\n\nKind regards,\n{{ sender.name }}",
    },
    {
        "title": "Renewal with terms",
        "record_type": "contact",
        "subject": "Your renewal, {{ contact.first_name }}",
        "body_html": "<p>Hello {{ contact.first_name }},</p><p>Your contract is up for renewal. "
        "Our terms are attached.</p><p>{{ sender.name }} &lt;{{ sender.email }}&gt;</p>",
        "body_text": "Hello {{ contact.first_name }},\n\nYour contract is up for renewal. Our terms "
        "are attached.\n\n{{ sender.name }} <{{ sender.email }}>",
    },
    {
        "title": "Account review",
        "record_type": "account",
        "subject": "Quarterly review for {{ account.name }}",
        "body_html": "<p>Hello,</p><p>It is time for the quarterly review of {{ account.name }} "
        "in {{ account.city }}.</p>",
        "body_text": "Hello,\n\nIt is time for the quarterly review of {{ account.name }} in "
        "{{ account.city }}.",
    },
]

TERMS_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R>>endobj\n"
    b"4 0 obj<</Length 44>>stream\nBT /F1 18 Tf 72 720 Td (Terms of service) Tj ET\nendstream "
    b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


class Command(BaseCommand):
    help = "Load the demo users, queues, accounts, contacts, templates and mail (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="load even when DEBUG is off")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("demo data is for development: DEBUG is off (use --force)")
        password = os.environ.get("DEMO_PASSWORD", "demo")
        with transaction.atomic():
            Organization.get()
            admin = self._user(
                "admin", "Ada", "Admin", EmailApproval.APPROVED, password, superuser=True
            )
            alice = self._user("alice", "Alice", "Andersen", EmailApproval.APPROVED, password)
            bob = self._user("bob", "Bob", "Berg", EmailApproval.PENDING, password)
            approve = Permission.objects.get(
                content_type__app_label="crm", codename="approve_email_address"
            )
            admin.user_permissions.add(approve)
            support = self._queue("Support", "support", EmailApproval.APPROVED, [alice])
            self._queue("Sales", "sales", EmailApproval.PENDING, [alice, bob])
            self._queue(
                "Relay",
                "relay",
                EmailApproval.APPROVED,
                [alice],
                delivery=OutgoingDelivery.EXTERNAL,
            )
            accounts = [
                Account.objects.get_or_create(
                    name=name, defaults={"city": city, "email": f"info@{slug}.example.org"}
                )[0]
                for name, city, slug in (
                    ("Nordlys AS", "Oslo", "nordlys"),
                    ("Fjord Freight", "Bergen", "fjordfreight"),
                )
            ]
            for i, (first, last, city, tag) in enumerate(CONTACTS):
                contact, created = Contact.objects.get_or_create(
                    email=f"{first.lower()}.{last.lower()}@customers.example.org",
                    defaults={
                        "first_name": first,
                        "last_name": last,
                        "city": city,
                        "account": accounts[i % 2],
                    },
                )
                if created and tag:
                    contact.tags.add(Tag.objects.get_or_create(name=tag)[0])
            for spec in TEMPLATES:
                template, created = Template.objects.get_or_create(
                    title=spec["title"], defaults={**spec, "created_by": admin}
                )
                if created and spec["title"] == "Renewal with terms":
                    attachment_store(
                        owner=template,
                        source=TERMS_PDF,
                        filename="terms.pdf",
                        mime_type="application/pdf",
                        actor=admin,
                    )
            to_deliver = self._demo_mail(alice, support)
        # After the commit, outside any transaction: delivery writes files (or talks to a
        # mail server), and the worker's own task for these emails then finds them sent.
        for email_id in to_deliver:
            email_deliver(email_id=email_id, owner="load_demo_data")
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: users admin, alice, bob (password {password!r}); "
                f"queues support@, sales@, relay@{DOMAIN}; {Contact.objects.count()} contacts; "
                f"{Email.objects.count()} emails"
            )
        )

    def _demo_mail(self, alice: User, support: Queue) -> list[int]:
        """One email for every tab of the mail list, made through the services.

        Each is made once: an email whose subject starts with the demo subject is
        taken as already there. The sent ones go through the real delivery path when
        mail goes to the outbox folder (so the outbox viewer shows them); otherwise
        they are marked as sent, so demo data never mails anyone. Returns the ids of
        the emails to deliver after the commit.
        """
        contacts = {
            c.email.split("@")[0]: c for c in Contact.objects.filter(email__endswith=CUSTOMERS)
        }
        now = timezone.now()
        deliver_for_real = outbox_enabled()
        to_deliver: list[int] = []

        def missing(subject: str) -> bool:
            return not Email.objects.filter(subject__startswith=subject).exists()

        ann, bjorn, chen = contacts["ann.lee"], contacts["bjorn.dahl"], contacts["chen.wei"]
        dina, erik = contacts["dina.haugen"], contacts["erik.lund"]
        if missing(DRAFT_SUBJECT):
            email_create(
                actor=alice,
                sender=support,
                to=[ann],
                regarding=ann,
                subject=DRAFT_SUBJECT,
                body_html="<p>Hello Ann,</p><p>Thank you for your time today. My notes:</p>"
                "<ul><li>Renewal in March</li><li>Two more seats</li></ul>",
                body_text="Hello Ann,\n\nThank you for your time today. My notes:\n"
                "- Renewal in March\n- Two more seats",
            )
        if missing(SCHEDULED_SUBJECT):
            scheduled = email_create(
                actor=alice,
                sender=support,
                to=[bjorn],
                regarding=bjorn,
                subject=SCHEDULED_SUBJECT,
                body_text="Hello Bjorn,\n\nYour contract renews next week. Nothing to do "
                "if you want to keep it.\n\nSupport",
                scheduled_at=now + timedelta(days=3),
            )
            email_send(email=scheduled, actor=alice)
        if missing(FAILED_SUBJECT):
            failing = email_create(
                actor=alice,
                to=[chen],
                regarding=chen,
                subject=FAILED_SUBJECT,
                body_text="Hello Chen,\n\nThe invoice is attached to our portal.\n\nAlice",
            )
            email_send(email=failing, actor=alice)
            # As a worker records a refused recipient: claimed, tried, failed at once.
            claimed = email_claim_for_delivery(email_id=failing.pk, owner="load_demo_data")
            if claimed is not None:
                email_record_failure(
                    email=claimed,
                    lease_token=claimed.lease_token,
                    owner="load_demo_data",
                    error=FAILED_ERROR,
                    permanent=True,
                )
        renewal = Template.objects.get(title="Renewal with terms")
        for subject, sender, contact, cc, html, files in (
            (
                f"Your renewal, {dina.first_name}",
                support,
                dina,
                [],
                "<p>Hello Dina,</p><p>Your contract is up for renewal. Our terms are "
                "attached.</p><p>Support</p>",
                "template",
            ),
            (
                "Quarterly review for Fjord Freight",
                alice,
                dina,
                [contacts["julia.nilsen"]],
                "<p>Hello Dina,</p><p>The figures for the quarter are attached; see you "
                "on Thursday.</p><p>Alice</p>",
                [("review-q3.csv", REVIEW_CSV, "text/csv")],
            ),
            (
                f"Welcome, {erik.first_name}",
                support,
                erik,
                [],
                "<p>Dear Erik Lund,</p><p>Welcome to Nordlys AS's customer programme.</p>"
                "<p>Kind regards,<br>Support</p>",
                [],
            ),
        ):
            if not missing(subject):
                continue
            draft = email_create(
                actor=alice,
                sender=sender,
                to=[contact],
                cc=cc,
                regarding=contact,
                subject=subject,
                body_html=html,
                template=renewal if files == "template" else None,
            )
            if files == "template":
                attachments_copy(source=renewal, target=draft)
            else:
                for filename, data, mime_type in files:
                    attachment_store(
                        owner=draft,
                        source=data,
                        filename=filename,
                        mime_type=mime_type,
                        actor=alice,
                    )
            if deliver_for_real:
                to_deliver.append(email_send(email=draft, actor=alice).pk)
            else:
                email_mark_as_sent(email=draft, actor=alice)
        if missing(RECEIVED_SUBJECT):
            email_record_received(
                from_address=f"{ann.full_name} <{ann.email}>",
                to=[f"Support <{support.email}>"],
                subject=RECEIVED_SUBJECT,
                body_html="<p>Hello,</p><p>We would like to add two seats before the "
                "renewal. Our new logo is below, for the invoices.</p>"
                '<p><img src="https://images.example.org/nordlys/logo.png" alt="Nordlys logo" '
                'width="160"></p><p>Best regards,<br>Ann Lee, Nordlys AS</p>',
                body_text="Hello,\n\nWe would like to add two seats before the renewal.\n\n"
                "Best regards,\nAnn Lee, Nordlys AS",
                message_id=f"<demo-received-1@{CUSTOMERS}>",
                received_at=now - timedelta(hours=2),
            )
        return to_deliver

    def _user(self, username, first, last, approval, password, superuser=False) -> User:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "email": f"{username}@{DOMAIN}",
                "is_staff": True,
                "is_superuser": superuser,
                "email_router_access_approval": approval,
            },
        )
        if created:
            user.set_password(password)
            user.save()
        return user

    def _queue(self, name, local, approval, members, delivery=OutgoingDelivery.WORKER) -> Queue:
        queue, _ = Queue.objects.get_or_create(
            email=f"{local}@{DOMAIN}",
            defaults={
                "name": name,
                "email_router_access_approval": approval,
                "outgoing_delivery": delivery,
            },
        )
        queue.members.add(*members)
        return queue
