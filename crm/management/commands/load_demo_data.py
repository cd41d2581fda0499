"""Load the demo data of DESIGN.md. Idempotent: running it twice changes nothing."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from activities.models import Template
from activities.services.attachments import attachment_store
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
    help = "Load the demo users, queues, accounts, contacts and templates (idempotent)."

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
            self._queue("Support", "support", EmailApproval.APPROVED, [alice])
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
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: users admin, alice, bob (password {password!r}); "
                f"queues support@, sales@, relay@{DOMAIN}; {Contact.objects.count()} contacts"
            )
        )

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
