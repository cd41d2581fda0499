"""The benchmark's data: contacts, senders, the BENCH.md template, bulk jobs (untimed).

Runs inside a child process with Django set up on the bench database. Every setup
starts from empty tables (``reset``), so each measurement sees the same state.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connection, transaction

SKIP_TABLES = {"django_migrations", "django_content_type", "auth_permission"}
CONTACTS_PER_ACCOUNT = 50
ATTACHMENT_BYTES = 100 * 1024
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-not-secret"  # noqa: S105

SUBJECT = "Hello {{ contact.first_name }}"

# About 2 KB of HTML with five merge fields: first name, last name, account name,
# sender name and a URL.
BODY_HTML = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Our autumn update</title>"
    "<style>body{font-family:Helvetica,Arial,sans-serif;color:#222;line-height:1.5}"
    "h1{font-size:20px;color:#0b4f6c}.box{border:1px solid #ddd;padding:12px;margin:12px 0}"
    "a.button{display:inline-block;background:#0b4f6c;color:#fff;padding:8px 14px;"
    "text-decoration:none;border-radius:4px}.foot{font-size:11px;color:#888}</style></head>"
    "<body><h1>Dear {{ contact.first_name }} {{ contact.last_name }},</h1>"
    "<p>Thank you for the trust that {{ account.name }} has placed in us over the past year. "
    "We are writing to tell you about the changes to our service that take effect next "
    "month, and about the new terms that come with them. The attached document sets out "
    "the terms in full; the summary below covers what most customers ask about.</p>"
    "<div class='box'><p><strong>What changes.</strong> Support hours are extended to "
    "evenings and weekends, invoices arrive as PDF and in the portal, and every account "
    "gets a named contact person. Prices stay as they are for the rest of the year.</p>"
    "<p><strong>What you need to do.</strong> Nothing, unless you want to change the "
    "address we send invoices to: you can do that in the portal at any time, or reply "
    "to this message and we will do it for you.</p></div>"
    "<p>Review your account and the new terms here:</p>"
    "<p><a class='button' href='https://portal.example.com/review?who="
    "{{ contact.email|urlencode }}'>Review my account</a></p>"
    "<p>If you have questions about the changes, or would like to talk them through, "
    "reply to this email or call us on weekdays between 8 and 18. We read every reply "
    "and answer within one working day.</p>"
    "<p>Kind regards,<br>{{ sender.name }}<br>Customer care</p>"
    "<p class='foot'>You receive this message because you are a registered contact of a "
    "customer account. We process your data according to our privacy notice, which you "
    "can read at https://portal.example.com/privacy. To stop receiving service updates, "
    "use the link in the portal or reply with the word unsubscribe.</p>"
    "</body></html>"
)

BODY_TEXT = (
    "Dear {{ contact.first_name }} {{ contact.last_name }},\n\n"
    "Thank you for the trust that {{ account.name }} has placed in us over the past year. "
    "The attached document sets out the new terms that take effect next month.\n\n"
    "Review your account: https://portal.example.com/review?who={{ contact.email|urlencode }}\n\n"
    "Kind regards,\n{{ sender.name }}\nCustomer care\n"
)


def attachment_bytes() -> bytes:
    """100 KB that do not compress: a PDF-like header then a hash stream."""
    out = bytearray(b"%PDF-1.4\n% bench attachment\n")
    seed = b"bench"
    while len(out) < ATTACHMENT_BYTES:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:ATTACHMENT_BYTES])


def reset() -> None:
    """Empty every table but the schema's own bookkeeping."""
    tables = [t for t in connection.introspection.table_names() if t not in SKIP_TABLES]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(connection.ops.quote_name(t) for t in tables)
            cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            cursor.execute("PRAGMA defer_foreign_keys = ON")
            for table in tables:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
            if "sqlite_sequence" in {
                r[0] for r in cursor.execute("SELECT name FROM sqlite_master").fetchall()
            }:
                cursor.execute("DELETE FROM sqlite_sequence")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("VACUUM")
    from activities.mail import encoded_blobs

    encoded_blobs.clear()


def make_contacts(n: int, *, city: str = "Oslo", start: int = 0) -> None:
    """``n`` contacts with unique addresses, one account per 50 of them (bulk_create)."""
    from crm.models import Account, Contact

    batch = 5000
    for first in range(start, start + n, batch):
        last = min(first + batch, start + n)
        accounts = Account.objects.bulk_create(
            Account(name=f"Customer {i // CONTACTS_PER_ACCOUNT} AS", city=city)
            for i in range(first, last, CONTACTS_PER_ACCOUNT)
        )
        Contact.objects.bulk_create(
            Contact(
                first_name=f"First{i}",
                last_name=f"Last{i}",
                email=f"contact{i}@customers.example.org",
                account=accounts[(i - first) // CONTACTS_PER_ACCOUNT],
                city=city,
            )
            for i in range(first, last)
        )


def make_world(*, delivery: str) -> dict[str, Any]:
    """The sender (an approved queue), its member, the template with its attachment."""
    from rest_framework.authtoken.models import Token

    from activities.models import Template
    from activities.services.attachments import attachment_store
    from crm.models import EmailApproval, Organization, Queue, User

    Organization.get()
    user = User.objects.create_user(
        username=BENCH_USER,
        password=BENCH_PASSWORD,
        email="bench.user@staff.example.com",
        first_name="Bea",
        last_name="Bench",
        email_router_access_approval=EmailApproval.APPROVED,
    )
    queue = Queue.objects.create(
        name="Customer care",
        email="care@example.com",
        email_router_access_approval=EmailApproval.APPROVED,
        outgoing_delivery=delivery,
    )
    queue.members.add(user)
    template = Template.objects.create(
        title="Autumn update",
        record_type="contact",
        subject=SUBJECT,
        body_html=BODY_HTML,
        body_text=BODY_TEXT,
        created_by=user,
    )
    attachment_store(
        owner=template,
        source=attachment_bytes(),
        filename="terms-2026.pdf",
        mime_type="application/pdf",
    )
    token = Token.objects.create(user=user)
    return {
        "user_id": user.pk,
        "queue_id": queue.pk,
        "template_id": template.pk,
        "token": token.key,
    }


def start_job(world: dict[str, Any], query: dict[str, Any] | None = None) -> int:
    """A queued bulk job; its run is left to the caller (no task is enqueued)."""
    from activities import dispatch
    from activities.models import Template
    from activities.services import bulk
    from crm.models import Queue, User

    enqueue = dispatch.run_bulk_send_after_commit
    dispatch.run_bulk_send_after_commit = lambda job_id: None
    try:
        job = bulk.bulk_send_start(
            template=Template.objects.get(pk=world["template_id"]),
            sender=Queue.objects.get(pk=world["queue_id"]),
            query=query or {},
            actor=User.objects.get(pk=world["user_id"]),
        )
    finally:
        dispatch.run_bulk_send_after_commit = enqueue
    return job.pk


def run_job(job_id: int) -> None:
    """Write the job's emails in process; delivery is left to the caller (not enqueued)."""
    from activities import dispatch
    from activities.models import BulkSendStatus
    from activities.services import bulk

    enqueue = dispatch.deliver_chunk_after_commit
    dispatch.deliver_chunk_after_commit = lambda ids: None
    try:
        job = bulk.bulk_send_run(job_id=job_id)
    finally:
        dispatch.deliver_chunk_after_commit = enqueue
    if job.status != BulkSendStatus.COMPLETED:
        raise RuntimeError(f"bulk job {job_id} ended {job.status}: {job.error}")


def setup(*, n: int, delivery: str, run: bool) -> dict[str, Any]:
    """Empty tables, then N contacts, the world and a job over them (written if ``run``)."""
    reset()
    world = make_world(delivery=delivery)
    make_contacts(n)
    job_id = start_job(world)
    if run:
        run_job(job_id)
    return {**world, "job_id": job_id, "n": n}
