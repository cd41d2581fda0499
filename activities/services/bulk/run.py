"""Running a bulk job: contacts in id order, one transaction per chunk, resumable."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from crm.models import Organization, OutgoingDelivery, Queue, User

from ... import conf, dispatch
from ...addresses import check_address, check_display_name
from ...errors import ApplicationError, InvalidAddress
from ...eventlog import email_events_logged
from ...models import (
    ActivityMimeAttachment,
    BulkSend,
    BulkSendStatus,
    Direction,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    EventKind,
    PartyRole,
    SkipReason,
)
from ...selectors import contacts_matching
from ..rows import RowWriter, allocate_ids
from ..suppression import suppressed_among
from ..templates import CompiledTemplate, merge_context_of, sender_fields
from ..webhooks import (
    webhook_bulk_send_progress,
    webhook_email_status_changed,
    webhook_endpoints_active,
)

logger = logging.getLogger(__name__)

# A contact as ``contacts_matching`` reads it, and a row as ``RowWriter`` writes it.
Row = tuple[Any, ...]


def bulk_send_run(
    *, job_id: int, chunk_size: int | None = None, slice_seconds: float | None = None
) -> BulkSend:
    """Write the job's emails chunk by chunk; resumes after ``last_contact_id``.

    A run works for one slice (``CRM_TASK_SLICE_SECONDS``; at least one chunk), then
    publishes a new run for the rest and returns with the job still ``running``: no task
    runs near its time limit, or long enough for the broker to give it to another worker.
    Safe to call again for the same job (a redelivered task, a restarted worker): it
    continues where the last committed chunk ended.
    """
    chunk_size = chunk_size or conf.bulk_chunk_size()
    deadline = time.monotonic() + (
        conf.task_slice_seconds() if slice_seconds is None else slice_seconds
    )
    now = timezone.now()
    BulkSend.objects.filter(pk=job_id, status=BulkSendStatus.QUEUED).update(
        status=BulkSendStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    job = BulkSend.objects.select_related("template", "sender_user", "sender_queue").get(pk=job_id)
    if job.status != BulkSendStatus.RUNNING:
        return job
    try:
        run = _Run(job)
        while True:
            written = run.chunk(chunk_size)
            if written is None:  # canceled meanwhile
                break
            if written == 0:
                with transaction.atomic():
                    if BulkSend.objects.filter(pk=job_id, status=BulkSendStatus.RUNNING).update(
                        status=BulkSendStatus.COMPLETED, finished_at=timezone.now()
                    ):
                        webhook_bulk_send_progress(job_id=job_id)
                break
            if time.monotonic() >= deadline:
                # The slice is spent: the rest in a new run. Should the broker not take
                # it, the sweep resumes the job once its heartbeat is a lease old.
                dispatch.run_bulk_send_now(job_id)
                break
    except ApplicationError as exc:
        # The template or the sender went bad after the start: stop with the reason;
        # the emails already written stay and are delivered.
        logger.warning("bulk job %s failed: %s", job_id, exc.message)
        with transaction.atomic():
            if BulkSend.objects.filter(pk=job_id, status=BulkSendStatus.RUNNING).update(
                status=BulkSendStatus.FAILED, finished_at=timezone.now(), error=exc.message[:2000]
            ):
                webhook_bulk_send_progress(job_id=job_id)
    return BulkSend.objects.get(pk=job_id)


# The columns of a contact (and its account) that a chunk reads: rows, not instances.
_CONTACT_COLUMNS = (
    "pk",
    "first_name",
    "last_name",
    "email",
    "city",
    "do_not_bulk_email",
    "do_not_email",
    "account_id",
    "account__name",
    "account__city",
    "account__email",
)


class _Run:
    """The state of one run of a job: the compiled template, sender, attachments."""

    def __init__(self, job: BulkSend):
        self.job = job
        template = job.template
        self.compiled = CompiledTemplate(
            subject=template.subject, body_html=template.body_html, body_text=template.body_text
        )
        self.sender = job.sender
        self.org = Organization.get()
        self.sender_fields = sender_fields(self.sender)
        self.sender_name = check_display_name(self.sender.display_name)
        self.attachments = list(
            template.attachments.order_by("position", "pk").values_list(
                "blob_id", "filename", "mime_type", "subject", "position"
            )
        )
        self.worker_delivery = self.sender.outgoing_delivery == OutgoingDelivery.WORKER
        self.domain = conf.message_id_domain()

    def chunk(self, size: int) -> int | None:
        """Write one chunk; the number of contacts it covered, or ``None`` if canceled."""
        job = self.job
        now = timezone.now()
        with transaction.atomic():
            # A write first: it serializes with cancel and with a second run of the same
            # job (a row lock on PostgreSQL, the write lock on SQLite); the cursor is read
            # after it, so two runs never take the same contacts.
            if not BulkSend.objects.filter(pk=job.pk, status=BulkSendStatus.RUNNING).update(
                heartbeat_at=now
            ):
                return None
            cursor, by_reason = BulkSend.objects.values_list(
                "last_contact_id", "skipped_by_reason"
            ).get(pk=job.pk)
            contacts = list(
                contacts_matching(job.query)
                .filter(pk__gt=cursor)
                .values_list(*_CONTACT_COLUMNS)[:size]
            )
            if not contacts:
                return 0
            recipients, skips = self._eligible(contacts)
            ids = self._write(recipients, now)
            by_reason = dict(by_reason)
            for reason, count in skips.items():
                by_reason[reason] = by_reason.get(reason, 0) + count
            BulkSend.objects.filter(pk=job.pk).update(
                last_contact_id=contacts[-1][0],
                created=models.F("created") + len(ids),
                skipped=models.F("skipped") + sum(skips.values()),
                skipped_by_reason=by_reason,
            )
            # The chunk's new emails and the job's counters, to the endpoints read once.
            hooks = webhook_endpoints_active()
            if ids:
                webhook_email_status_changed(
                    email_ids=ids,
                    from_status="",
                    to_status=EmailStatus.PENDING_SEND,
                    reason=f"written by bulk job {job.pk} and accepted for delivery",
                    at=now,
                    endpoints=hooks,
                )
            webhook_bulk_send_progress(job_id=job.pk, endpoints=hooks)
            if self.worker_delivery and ids:
                dispatch.deliver_chunk_after_commit(ids)
        return len(contacts)

    def _eligible(self, contacts: list[Row]) -> tuple[list[Row], dict[str, int]]:
        skips: dict[str, int] = {}
        addresses = {row[3].strip().lower() for row in contacts if row[3]}
        taken = {
            a.lower()
            for a in EmailParty.objects.filter(
                email__bulk_send=self.job, role=PartyRole.TO, address__in=addresses
            ).values_list("address", flat=True)
        }
        suppressed = suppressed_among(addresses)
        recipients = []
        for row in contacts:
            _, _, _, email, _, do_not_bulk_email, do_not_email = row[:7]
            address = email.strip().lower()
            reason = None
            if not address:
                reason = SkipReason.NO_ADDRESS
            elif do_not_bulk_email or do_not_email:
                reason = SkipReason.DO_NOT_BULK_EMAIL
            elif address in suppressed:
                reason = SkipReason.SUPPRESSED
            elif address in taken:
                reason = SkipReason.DUPLICATE_ADDRESS
            else:
                try:
                    check_address(email)
                except InvalidAddress:
                    reason = SkipReason.NO_ADDRESS
            if reason:
                skips[reason] = skips.get(reason, 0) + 1
                continue
            taken.add(address)
            recipients.append(row)
        return recipients, skips

    def _write(self, recipients: list[Row], now: datetime) -> list[int]:
        """Render and write the chunk's emails: one statement per table."""
        if not recipients:
            return []
        job, sender = self.job, self.sender
        ids = allocate_ids(Email, len(recipients))
        org = self.org
        emails: list[Row] = []
        parties: list[Row] = []
        links: list[Row] = []
        events: list[Row] = []
        for email_id, row in zip(ids, recipients, strict=True):
            contact_id, first, last, address, city, _, _, account_id = row[:8]
            full_name = f"{first} {last}".strip()
            subject, html, text = self.compiled.render(
                merge_context_of(
                    contact={
                        "first_name": first,
                        "last_name": last,
                        "full_name": full_name,
                        "email": address,
                        "city": city,
                    },
                    account=(
                        {"name": row[8], "city": row[9], "email": row[10]} if account_id else None
                    ),
                    sender=self.sender_fields,
                )
            )
            token = ""
            if org.use_tracking_token:
                token = f"{org.tracking_token_prefix}:{email_id:0{org.tracking_token_digits}d}"
                subject = f"{subject[: 399 - len(token)]} {token}".strip()
            emails.append(
                (
                    email_id,
                    subject[:400],
                    html,
                    text,
                    make_msgid(domain=self.domain),
                    token,
                    contact_id,
                )
            )
            parties.append(
                (email_id, PartyRole.TO, address.strip(), _header_safe(full_name)[:200], contact_id)
            )
            links.extend((email_id, *spec) for spec in self.attachments)
            events.append((email_id,))
        RowWriter(
            Email,
            [
                "id",
                "subject",
                "body_html",
                "body_text",
                "message_id",
                "tracking_token",
                "bulk_contact_id",
            ],
            direction=Direction.OUTGOING,
            status=EmailStatus.PENDING_SEND,
            state="completed",
            sender_user_id=job.sender_user_id,
            sender_queue_id=job.sender_queue_id,
            from_address=sender.email,
            from_name=sender.display_name,
            regarding_type_id=job.regarding_type_id,
            regarding_id=job.regarding_id,
            template_id=job.template_id,
            bulk_send_id=job.pk,
            created_by_id=job.created_by_id,
            queued_at=now,
            next_attempt_at=now,
        ).insert(emails)
        party_writer = RowWriter(
            EmailParty, ["email_id", "role", "address", "name", "contact_id", "queue_id", "user_id"]
        )
        queue_id = sender.pk if isinstance(sender, Queue) else None
        user_id = sender.pk if isinstance(sender, User) else None
        party_writer.insert(
            [
                (email_id, PartyRole.FROM, sender.email, self.sender_name, None, queue_id, user_id)
                for email_id in ids
            ]
            + [(*party, None, None) for party in parties]
        )
        if links:
            RowWriter(
                ActivityMimeAttachment,
                ["email_id", "blob_id", "filename", "mime_type", "subject", "position"],
            ).insert(links)
        # The same event for every email of the chunk: written, then logged.
        event = {
            "kind": EventKind.STATUS,
            "to_status": EmailStatus.PENDING_SEND,
            "actor_label": f"bulk job {job.pk}",
            "reason": f"written by bulk job {job.pk} and accepted for delivery",
        }
        RowWriter(EmailEvent, ["email_id"], actor_id=job.created_by_id, **event).insert(events)
        email_events_logged(ids, **event)
        return ids


def _header_safe(text: str) -> str:
    """A name for a header: line breaks and NUL become spaces (a contact's data)."""
    return " ".join(text.replace("\x00", " ").split())


def bulk_sends_to_resume() -> list[int]:
    """Jobs whose run seems lost: queued and never started, or running without a
    heartbeat for a lease period (the worker died). Running them again is safe."""
    now = timezone.now()
    not_started = now - timedelta(seconds=conf.sweep_pending_after_seconds())
    silent = now - timedelta(seconds=conf.lease_seconds())
    return list(
        BulkSend.objects.filter(
            models.Q(status=BulkSendStatus.QUEUED, created_at__lt=not_started)
            | models.Q(status=BulkSendStatus.RUNNING, heartbeat_at__lt=silent)
        ).values_list("pk", flat=True)
    )
