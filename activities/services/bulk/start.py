"""Starting a bulk job: the sender rules of a single send, then a run after commit."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from common.models import IdempotencyRecord
from crm.models import Organization, Queue, User

from ... import dispatch
from ...addresses import check_address
from ...errors import Conflict, ValidationFailed
from ...models import BulkSend, RecordType, SkipReason, Template
from ...policies import Sender, check_may_send_as, check_sender_approved
from ...selectors import bulk_audience, contacts_matching
from ..templates import CompiledTemplate
from .query import bulk_query_clean


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
    check_address(sender.email or "", label=f"the sender's address ({sender.display_name})")
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
        dispatch.run_bulk_send_after_commit(job.pk)
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
