"""Bulk email (Dynamics' SendBulkMail): one template to every contact a query selects.

A job is checked when it starts (the sender rules of a single send), then a task walks
the contacts in id order, one chunk at a time. Each chunk is one transaction that
writes its emails, parties, attachment links and events with one statement per table,
advances the job's cursor (``last_contact_id``) and counters, and re-checks that the
job is still running; delivery is queued after it commits. A run that dies resumes
after the cursor, and the unique (job, contact) constraint makes a second email for a
contact impossible. Cancel stops creation (the next chunk sees it) and withdraws the
emails no sender has claimed yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime, time, timedelta
from email.utils import make_msgid
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from common.models import IdempotencyRecord
from crm.models import Account, Organization, OutgoingDelivery, Queue, User

from .. import conf
from ..errors import (
    ApplicationError,
    Conflict,
    InvalidAddress,
    InvalidTransition,
    ValidationFailed,
)
from ..models import (
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
    RecordType,
    SkipReason,
    Template,
)
from ..selectors import BULK_QUERY_KEYS, bulk_audience, contacts_matching
from .addresses import check_address, check_display_name
from .emails import check_may_send_as, check_sender_approved
from .rows import RowWriter, allocate_ids
from .suppression import suppressed_among
from .templates import CompiledTemplate, merge_context_of, sender_fields

logger = logging.getLogger(__name__)

Sender = User | Queue


def _moment(value: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    else:
        try:  # parse_* answer None for another shape and raise for an impossible date
            parsed = (
                (parse_datetime(value) or parse_date(value)) if isinstance(value, str) else None
            )
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValidationFailed(
                f"query {key}: expected an ISO date or date-time, got {value!r}"
            ) from None
        moment = parsed if isinstance(parsed, datetime) else datetime.combine(parsed, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def bulk_query_clean(query: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a job's contact query; returns it in a form ``contacts_matching`` reads."""
    query = dict(query or {})
    unknown = sorted(set(query) - set(BULK_QUERY_KEYS))
    if unknown:
        raise ValidationFailed(
            f"unknown query keys: {', '.join(unknown)} (known: {', '.join(BULK_QUERY_KEYS)})"
        )
    clean: dict[str, Any] = {}
    if query.get("account") is not None:
        account = query["account"]
        if isinstance(account, bool) or not isinstance(account, int):
            raise ValidationFailed("query account: expected an account id")
        if not Account.objects.filter(pk=account).exists():
            raise ValidationFailed(f"query account: there is no account with id {account}")
        clean["account"] = account
    for key in ("city", "tag"):
        if query.get(key) not in (None, ""):
            if not isinstance(query[key], str) or len(query[key]) > 100:
                raise ValidationFailed(f"query {key}: expected a text of at most 100 characters")
            clean[key] = query[key]
    for key in ("created_after", "created_before"):
        if query.get(key) not in (None, ""):
            clean[key] = _moment(query[key], key).isoformat()
    return clean


def bulk_send_start(
    *,
    template: Template,
    sender: Sender,
    query: dict[str, Any] | None,
    actor: User,
    regarding: models.Model | None = None,
    require_recipients: bool = False,
) -> BulkSend:
    """Check and queue a bulk job; its run starts once the transaction commits.

    The sender must pass the rules of a single send: the actor may send as it, it has a
    valid address, and it is approved where the organisation requires it. With
    ``require_recipients`` a query that leaves no contact to write to is refused
    (``empty_audience``) instead of starting a job that writes nothing.
    """
    if template.record_type not in (RecordType.CONTACT, RecordType.GLOBAL):
        raise ValidationFailed(
            f"bulk mail goes to contacts: the template {template.title!r} is for "
            f"{template.record_type} records"
        )
    clean = bulk_query_clean(query)
    check_address(sender.email or "", field=f"the sender's address ({sender.display_name})")
    check_may_send_as(actor, sender)
    check_sender_approved(sender, Organization.get())
    CompiledTemplate(
        subject=template.subject, body_html=template.body_html, body_text=template.body_text
    )
    if require_recipients:
        audience = bulk_audience(clean, sample_size=0)
        if not audience.eligible:
            raise ValidationFailed(
                _empty_audience_message(audience.total, audience.skipped), code="empty_audience"
            )
    with transaction.atomic():
        job = BulkSend.objects.create(
            template=template,
            sender_user=sender if isinstance(sender, User) else None,
            sender_queue=sender if isinstance(sender, Queue) else None,
            query=clean,
            regarding_type=ContentType.objects.get_for_model(regarding) if regarding else None,
            regarding_id=regarding.pk if regarding else None,
            total=contacts_matching(clean).count(),
            created_by=actor,
        )
        transaction.on_commit(lambda: _enqueue_run(job.pk))
    return job


def _empty_audience_message(total: int, skipped: dict[str, int]) -> str:
    if not total:
        return "no contact matches these filters: nobody would get this email"
    reasons = ", ".join(f"{n} {SkipReason(reason).label.lower()}" for reason, n in skipped.items())
    return f"none of the {total} matching contacts can get bulk email ({reasons})"


# The key of a start from the staff pages, in the table of the API's Idempotency-Key
# (unique per user and key), so that both guards share one rule and one clean-up.
_START_ONCE_PATH = "web:bulk_send_start"


def bulk_send_start_once(
    *,
    key: str,
    template: Template,
    sender: Sender,
    query: dict[str, Any] | None,
    actor: User,
    regarding: models.Model | None = None,
) -> tuple[BulkSend, bool]:
    """``bulk_send_start`` (with ``require_recipients``) at most once per actor and ``key``.

    A form carries a fresh ``key``; posting it twice (a double click, a reload) answers
    the job the first post started, with ``False``: ``(job, started)``. The key is
    stored in the same transaction as the job, so two concurrent posts cannot both
    start one (the unique key decides) and a refused start leaves no key behind. The
    same key with a different template, sender or query is a ``Conflict``.
    """
    if not key or len(key) > 200 or not key.isprintable():
        raise ValidationFailed("the form's start token is missing or malformed; review it again")
    clean = bulk_query_clean(query)
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "template": template.pk,
                "sender": [type(sender).__name__, sender.pk],
                "query": clean,
                "regarding": [type(regarding).__name__, regarding.pk] if regarding else None,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    stored_key = f"web:bulk:{key}"
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=actor,
                    key=stored_key,
                    method="POST",
                    path=_START_ONCE_PATH,
                    request_hash=fingerprint,
                )
        except IntegrityError:
            # A concurrent first post holds the key until it commits; this read comes
            # after that, so it sees the job the first post started.
            return _started_before(actor, stored_key, fingerprint), False
        job = bulk_send_start(
            template=template,
            sender=sender,
            query=clean,
            actor=actor,
            regarding=regarding,
            require_recipients=True,
        )
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=202, response_body=json.dumps({"id": job.pk}), completed_at=timezone.now()
        )
    return job, True


def _started_before(actor: User, stored_key: str, fingerprint: str) -> BulkSend:
    record = IdempotencyRecord.objects.filter(user=actor, key=stored_key).first()
    first_id = json.loads(record.response_body or "{}").get("id") if record else None
    if record is None or first_id is None or record.path != _START_ONCE_PATH:
        raise Conflict("this form was already used; review the bulk send again")
    if record.request_hash != fingerprint:
        raise Conflict(
            f"this form already started bulk send #{first_id} with other choices; "
            "review the bulk send again to start another"
        )
    return BulkSend.objects.get(pk=first_id)


def _enqueue_run(job_id: int) -> None:
    from ..tasks import enqueue_bulk_send_run

    enqueue_bulk_send_run(job_id)


def bulk_send_cancel(*, job: BulkSend, actor: User, reason: str = "") -> BulkSend:
    """Stop a queued or running job (or a completed one whose emails are still being
    delivered) and withdraw its emails that nobody has claimed.

    Emails already claimed (``sending``) or sent are not touched. After this returns,
    the job writes no more emails: each chunk re-checks the status in its transaction.
    """
    if actor is not None and not actor.is_staff:
        sender = job.sender
        if job.created_by_id != actor.pk and sender is not None:
            check_may_send_as(actor, sender)
    now = timezone.now()
    still_delivering = models.Exists(
        Email.objects.filter(bulk_send=models.OuterRef("pk"), status=EmailStatus.PENDING_SEND)
    )
    with transaction.atomic():
        # A job whose emails are all written (completed) may still be delivering them,
        # for a long time at a send rate: canceling it withdraws what is still pending.
        changed = (
            BulkSend.objects.filter(pk=job.pk)
            .filter(
                models.Q(status__in=[BulkSendStatus.QUEUED, BulkSendStatus.RUNNING])
                | models.Q(still_delivering, status=BulkSendStatus.COMPLETED)
            )
            .update(status=BulkSendStatus.CANCELED, canceled_at=now, finished_at=now)
        )
        if not changed:
            current = BulkSend.objects.values_list("status", flat=True).get(pk=job.pk)
            raise InvalidTransition(f"cannot cancel a bulk job that is {current}", status=current)
        # Locked, so that a claimer (which skips locked rows) cannot take one meanwhile.
        withdrawn_ids = list(
            Email.objects.select_for_update()
            .filter(bulk_send=job, status=EmailStatus.PENDING_SEND)
            .values_list("pk", flat=True)
        )
        Email.objects.filter(pk__in=withdrawn_ids).update(
            status=EmailStatus.CANCELED,
            state="canceled",
            canceled_at=now,
            modified_at=now,
            next_attempt_at=None,
        )
        EmailEvent.objects.bulk_create(
            EmailEvent(
                email_id=email_id,
                kind=EventKind.STATUS,
                from_status=EmailStatus.PENDING_SEND,
                to_status=EmailStatus.CANCELED,
                actor=actor,
                actor_label=actor.get_username() if actor else "",
                reason=reason or f"bulk job {job.pk} canceled",
            )
            for email_id in withdrawn_ids
        )
    return BulkSend.objects.get(pk=job.pk)


def bulk_send_run(*, job_id: int, chunk_size: int | None = None) -> BulkSend:
    """Write the job's emails chunk by chunk; resumes after ``last_contact_id``.

    Safe to call again for the same job (a redelivered task, a restarted worker): it
    continues where the last committed chunk ended.
    """
    chunk_size = chunk_size or conf.bulk_chunk_size()
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
                BulkSend.objects.filter(pk=job_id, status=BulkSendStatus.RUNNING).update(
                    status=BulkSendStatus.COMPLETED, finished_at=timezone.now()
                )
                break
    except ApplicationError as exc:
        # The template or the sender went bad after the start: stop with the reason;
        # the emails already written stay and are delivered.
        logger.warning("bulk job %s failed: %s", job_id, exc.message)
        BulkSend.objects.filter(pk=job_id, status=BulkSendStatus.RUNNING).update(
            status=BulkSendStatus.FAILED, finished_at=timezone.now(), error=exc.message[:2000]
        )
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
            if self.worker_delivery and ids:
                transaction.on_commit(lambda: _enqueue_chunk(ids))
        return len(contacts)

    def _eligible(self, contacts: list[tuple]) -> tuple[list[tuple], dict[str, int]]:
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

    def _write(self, recipients: list[tuple], now: datetime) -> list[int]:
        """Render and write the chunk's emails: one statement per table."""
        if not recipients:
            return []
        job, sender = self.job, self.sender
        ids = allocate_ids(Email, len(recipients))
        org = self.org
        emails, parties, links, events = [], [], [], []
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
        RowWriter(
            EmailEvent,
            ["email_id"],
            kind=EventKind.STATUS,
            to_status=EmailStatus.PENDING_SEND,
            actor_id=job.created_by_id,
            actor_label=f"bulk job {job.pk}",
            reason=f"written by bulk job {job.pk} and accepted for delivery",
        ).insert(events)
        return ids


def _header_safe(text: str) -> str:
    """A name for a header: line breaks and NUL become spaces (a contact's data)."""
    return " ".join(text.replace("\x00", " ").split())


def _enqueue_chunk(ids: list[int]) -> None:
    from ..tasks import enqueue_deliver_email_chunk

    enqueue_deliver_email_chunk(ids)


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
