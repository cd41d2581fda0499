"""Claiming pending emails for external send components (Dynamics' BackgroundSendEmail).

The claim and the outcome records are the leases of ``services.leases``, the same that
our workers take; this module adds who may claim what and how callers report back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm.models import OutgoingDelivery, User

from .. import conf
from ..errors import ApplicationError, LeaseConflict, ValidationFailed
from ..models import DeliveryState, Email, EmailStatus, EventKind, PartyRole
from ..selectors import delivery_by, emails_visible_to
from .leases import claim_emails, email_record_failure, email_record_sent
from .transitions import record_event

MAX_CLAIM_BATCH = 500


MAX_LEASE_SECONDS = 24 * 3600


def email_claim_batch(
    *, actor: User, max_count: int = 50, lease_seconds: int | None = None
) -> list[Email]:
    """Claim pending emails for an external send component (Dynamics' BackgroundSendEmail).

    Only emails the actor may see, whose sender has ``outgoing_delivery: external``.
    """
    if not 1 <= max_count <= MAX_CLAIM_BATCH:
        raise ValidationFailed(f"max must be between 1 and {MAX_CLAIM_BATCH}", code="invalid")
    lease = conf.lease_seconds() if lease_seconds is None else lease_seconds
    if not 1 <= lease <= MAX_LEASE_SECONDS:
        raise ValidationFailed(
            f"lease_seconds must be between 1 and {MAX_LEASE_SECONDS}", code="invalid"
        )
    candidates = emails_visible_to(actor).filter(delivery_by(OutgoingDelivery.EXTERNAL))
    return claim_emails(candidates, owner=f"api:{actor.pk}", lease_seconds=lease, limit=max_count)


def _parse_token(lease_token: str | int | None, *, status: str) -> int:
    try:
        return int(str(lease_token))
    except (TypeError, ValueError):
        raise LeaseConflict(
            "a lease_token from the claim is required", extra={"status": status}
        ) from None


def email_report_delivery(
    *,
    email: Email,
    actor: User,
    lease_token: str | int | None,
    outcome: str,
    message_id: str = "",
    error: str = "",
    permanent: bool = True,
) -> Email:
    """Record what an external sender did with an email it claimed.

    The lease token must be the current one and the lease must be the actor's own;
    a missing, stale or foreign token is a ``LeaseConflict`` and changes nothing.
    ``outcome`` is ``sent`` or ``failed``; a failure is final unless ``permanent`` is
    false, in which case the email waits for another claim after a backoff.
    """
    current = Email.objects.get(pk=email.pk)
    token = _parse_token(lease_token, status=current.status)
    if current.lease_token != token or current.status != EmailStatus.SENDING:
        raise LeaseConflict(
            "the lease token is stale: the email was claimed again or already reported",
            extra={"status": current.status},
        )
    if not current.lease_owner.startswith(f"api:{actor.pk}:"):
        raise LeaseConflict(
            "the lease belongs to another claimer", extra={"status": current.status}
        )
    owner = current.lease_owner
    if outcome == "sent":
        # Each recipient keeps the sender's message id (else ours), so that a provider's
        # event or a DSN about it finds the email.
        sent_as = (message_id or current.message_id)[:255]
        updated = email_record_sent(
            email=current,
            lease_token=token,
            owner=owner,
            recipients={
                party.address: (sent_as, DeliveryState.SENT)
                for party in current.parties.all()
                if party.role != PartyRole.FROM
            },
        )
        if message_id and message_id != updated.message_id:
            record_event(
                email_id=updated.pk,
                kind=EventKind.NOTE,
                actor=actor,
                actor_label=owner,
                reason=f"sender's message id {message_id}",
                data={"provider_message_id": message_id[:255]},
            )
        return updated
    if outcome == "failed":
        return email_record_failure(
            email=current,
            lease_token=token,
            owner=owner,
            error=error or "reported as failed by the external sender",
            permanent=permanent,
        )
    raise ValidationFailed("outcome must be 'sent' or 'failed'", code="invalid")


MAX_REPORT_BATCH = 500


@dataclass(frozen=True)
class ReportOutcome:
    """What became of one report of a batch: recorded, or refused with the reason."""

    id: int
    recorded: bool
    status: str | None = None  # the email's status now (None: not found)
    code: str = ""
    detail: str = ""


def email_report_deliveries(*, actor: User, reports: list[dict[str, Any]]) -> list[ReportOutcome]:
    """Record many outcomes in one call (an external sender reports a batch at once).

    Each report is recorded on its own, as ``email_report_delivery`` does, so a stale
    token refuses that email only. An email the actor may not see is ``not_found``.
    """
    if not 1 <= len(reports) <= MAX_REPORT_BATCH:
        raise ValidationFailed(f"give between 1 and {MAX_REPORT_BATCH} results", code="invalid")
    ids = [report["id"] for report in reports]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("each email may be reported once per call", code="invalid")
    visible = emails_visible_to(actor).in_bulk(ids)
    outcomes = []
    for report in reports:
        email = visible.get(report["id"])
        if email is None:
            outcomes.append(
                ReportOutcome(report["id"], False, code="not_found", detail="no such email")
            )
            continue
        try:
            updated = email_report_delivery(
                email=email,
                actor=actor,
                lease_token=report.get("lease_token"),
                outcome=report["outcome"],
                message_id=report.get("message_id", ""),
                error=report.get("error", ""),
                permanent=report.get("permanent", True),
            )
        except ApplicationError as exc:
            status = exc.extra.get("status") if exc.extra else None
            outcomes.append(ReportOutcome(email.pk, False, status, exc.code, exc.message))
            continue
        outcomes.append(ReportOutcome(email.pk, True, updated.status))
    return outcomes
