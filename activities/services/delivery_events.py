"""Delivery events per recipient: from a provider's tracking webhook (anymail's
``tracking`` signal, ``delivery_event_from_anymail``) or a bounce message on the SMTP
path (``services.bounces``), into ``delivery_event_record``.

An event finds its email by the provider's message id kept on the recipient at send
(``EmailParty.provider_message_id``), else by our Message-ID; an event for a message
we did not send is logged and dropped (the provider is answered 200: it must not
retry). Each event is stored once per (provider, event id), also when the same event
is posted twice at the same time (the unique constraint decides; the loser adds
nothing). The recipient's state only moves up ``DELIVERY_RANK``, so events may come
in any order. A hard bounce or a complaint lists the address on the suppression list;
a provider's unsubscribe does what our unsubscribe link does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anymail.signals import AnymailTrackingEvent
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import (
    DeliveryEvent,
    DeliveryState,
    Direction,
    Email,
    EmailParty,
    EventKind,
    PartyRole,
    SuppressionReason,
    states_below,
)
from .suppression import suppression_record, unsubscribe_recipient
from .transitions import record_event
from .webhooks import webhook_delivery_event

logger = logging.getLogger(__name__)

# The provider's event as it came, kept for staff; bounded so a hostile or huge payload
# cannot fill the table.
MAX_RAW_CHARS = 16_000
TEXT_LIMIT = 2_000

# anymail event types that are recipient states; the others (failed, autoresponded,
# subscribed, unknown, inbound_failed) are recorded and shown, but change no state.
STATE_OF_EVENT: dict[str, str] = {
    "queued": DeliveryState.QUEUED,
    "sent": DeliveryState.SENT,
    "deferred": DeliveryState.DEFERRED,
    "delivered": DeliveryState.DELIVERED,
    "opened": DeliveryState.OPENED,
    "clicked": DeliveryState.CLICKED,
    "bounced": DeliveryState.BOUNCED,
    "rejected": DeliveryState.REJECTED,
    "complained": DeliveryState.COMPLAINED,
    "unsubscribed": DeliveryState.UNSUBSCRIBED,
}

# Bounces a provider reports with anymail's "bounced" type and reject reason that are
# temporary all the same (Postmark's Type, SparkPost's bounce class): kept as deferred,
# and never suppress.
SOFT_BOUNCES: dict[str, tuple[str, set[str]]] = {
    "Postmark": ("Type", {"SoftBounce", "Transient", "DnsError"}),
    # Soft bounce, DNS failure, mailbox full, too large, timeout, transient failure.
    "SparkPost": ("bounce_class", {"20", "21", "22", "23", "24", "70"}),
}


# anymail's reject reasons of a ``bounced`` event that make it permanent (a hard bounce):
# the mailbox does not take mail ("bounced"), or does not exist ("invalid", as
# SparkPost's bounce class 10 reports it). Others (timed_out, blocked, spam, other) may
# pass, or are the receiver's policy: recorded, not suppressed.
HARD_REJECT_REASONS = frozenset({"bounced", "invalid"})


@dataclass(frozen=True)
class RecordedEvent:
    event: DeliveryEvent
    created: bool  # False: the same event was stored before; nothing changed


def _bounded_raw(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if hasattr(raw, "lists"):  # a QueryDict (Mailgun's legacy form posts)
        raw = {key: values if len(values) > 1 else values[0] for key, values in raw.lists()}
    try:
        text = json.dumps(raw, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(raw)
    text = text.replace("\\u0000", "").replace("\x00", "")  # PostgreSQL stores no NUL
    if len(text) > MAX_RAW_CHARS:
        return {"truncated": True, "excerpt": text[:MAX_RAW_CHARS]}
    try:
        loaded = json.loads(text)
    except ValueError:  # the repr of something JSON cannot hold
        loaded = text
    return loaded if isinstance(loaded, dict) else {"event": loaded}


def _text(value: str, limit: int) -> str:
    return (value or "").replace("\x00", "")[:limit]


def _synthetic_event_id(*parts: object) -> str:
    """For providers that give some events no id (Postmark's opens and deliveries):
    the same event posted again has the same fields, so the same id."""
    return "sha256:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def _find(message_id: str, recipient: str) -> tuple[Email | None, EmailParty | None]:
    """The email a provider's message id belongs to, and the recipient the event is
    about: by the id kept at send, else by our Message-ID (with or without <>)."""
    address = recipient.strip().lower()
    parties = EmailParty.objects.exclude(role=PartyRole.FROM).select_related("email")
    if message_id:
        candidates = list(parties.filter(provider_message_id=message_id)[:50])
        party = next((p for p in candidates if p.address.lower() == address), None)
        if party is not None:
            return party.email, party
        email: Email | None = candidates[0].email if candidates else None
        if email is None:
            bare = message_id.strip().strip("<>")
            email = Email.objects.filter(
                message_id__in=[f"<{bare}>", bare], direction=Direction.OUTGOING
            ).first()
        if email is not None:
            return email, parties.filter(email=email, address__iexact=address).first()
    return None, None


def delivery_event_record(
    *,
    provider: str,
    event_type: str,
    message_id: str,
    recipient: str,
    occurred_at: datetime | None = None,
    event_id: str = "",
    reject_reason: str = "",
    permanent: bool | None = None,
    description: str = "",
    mta_response: str = "",
    raw: Any = None,
    email: Email | None = None,
) -> RecordedEvent | None:
    """Store one delivery event and apply it; ``None`` for a message not ours.

    ``permanent`` says, for a ``bounced`` event, whether the failure is final (a hard
    bounce: the recipient becomes ``bounced`` and the address is suppressed) or
    temporary (the recipient becomes ``deferred``); ``None`` means final for the reject
    reasons of ``HARD_REJECT_REASONS`` and temporary otherwise. ``email`` skips the look-up
    (a bounce message found it by VERP).
    """
    stamped = occurred_at is not None
    occurred_at = occurred_at or timezone.now()
    if timezone.is_naive(occurred_at):  # "-0000" in a Date header: a time in UTC
        occurred_at = occurred_at.replace(tzinfo=UTC)
    recipient = _text(recipient, 320).strip()
    message_id = _text(message_id, 255).strip()
    if email is None:
        email, party = _find(message_id, recipient)
    else:
        party = email.parties.exclude(role=PartyRole.FROM).filter(address__iexact=recipient).first()
    if email is None:
        logger.info(
            "ignored a %s %s event for %s: message %r is not one of ours",
            provider,
            event_type,
            recipient,
            message_id,
        )
        return None
    if event_type == "bounced" and permanent is None:
        permanent = reject_reason in HARD_REJECT_REASONS
    kept_raw = _bounded_raw(raw)
    event_id = _text(event_id, 255) or _synthetic_event_id(
        provider,
        event_type,
        message_id,
        recipient.lower(),
        occurred_at.isoformat() if stamped else "",
        json.dumps(kept_raw, sort_keys=True, default=str),
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = DeliveryEvent.objects.create(
                    email=email,
                    party=party,
                    provider=provider[:40],
                    event_id=event_id,
                    event_type=event_type[:20],
                    permanent=permanent if event_type == "bounced" else None,
                    occurred_at=occurred_at,
                    recipient=recipient,
                    message_id=message_id,
                    reject_reason=_text(reject_reason, 20),
                    description=_text(description, TEXT_LIMIT),
                    mta_response=_text(mta_response, TEXT_LIMIT),
                    raw=kept_raw,
                )
        except IntegrityError:  # stored before (a retry, or its twin racing us)
            existing = DeliveryEvent.objects.get(provider=provider[:40], event_id=event_id)
            return RecordedEvent(existing, created=False)
        state = STATE_OF_EVENT.get(event_type, "")
        if state == DeliveryState.BOUNCED and not permanent:
            state = DeliveryState.DEFERRED
        moved = False
        if party is not None and state:
            moved = bool(
                EmailParty.objects.filter(
                    pk=party.pk, delivery_state__in=states_below(state)
                ).update(delivery_state=state, delivery_updated_at=occurred_at)
            )
        suppressed = _consequences(event, email=email, state=state)
        soft = event_type == "bounced" and state == DeliveryState.DEFERRED
        what = "soft bounce" if soft else event_type
        record_event(
            email_id=email.pk,
            kind=EventKind.DELIVERY,
            actor_label=provider,
            reason=_describe(what, event, suppressed=suppressed),
            data={
                "delivery_event": event.pk,
                "event_type": event_type,
                "recipient": recipient,
                "provider": provider,
                "occurred_at": occurred_at.isoformat(),
                "state": state or None,
                "state_changed": moved,
                **({"permanent": permanent} if event_type == "bounced" else {}),
                **({"suppressed": suppressed} if suppressed else {}),
            },
        )
        # Integrators hear of it from the outbox, in this transaction (a soft bounce as
        # the ``deferred`` it is).
        webhook_delivery_event(
            email_id=email.pk,
            recipient=recipient,
            event=DeliveryState.DEFERRED if soft else event_type,
            at=occurred_at,
            provider=provider,
            provider_event_id=event_id,
            description=event.description,
        )
    return RecordedEvent(event, created=True)


def _consequences(event: DeliveryEvent, *, email: Email, state: str) -> str:
    """Suppress after a hard bounce or a complaint; unsubscribe as our link does.
    Returns the suppression reason written, if any."""
    address = event.recipient
    if not address:
        return ""
    if state in (DeliveryState.BOUNCED, DeliveryState.COMPLAINED):
        reason = (
            SuppressionReason.BOUNCE
            if state == DeliveryState.BOUNCED
            else SuppressionReason.COMPLAINT
        )
        detail = event.description or event.mta_response or event.reject_reason or "no detail"
        suppression_record(
            address=address,
            reason=reason,
            note=(
                f"{event.event_type} reported by {event.provider} for email #{email.pk} "
                f"({email.subject[:80] or 'no subject'}): {detail[:300]}"
            ),
        )
        return str(reason)
    if state == DeliveryState.UNSUBSCRIBED:
        unsubscribe_recipient(email=email, address=address, how=f"reported by {event.provider}")
    return ""


def _describe(what: str, event: DeliveryEvent, *, suppressed: str) -> str:
    text = f"{what}: {event.recipient or 'a recipient'} ({event.provider})"
    detail = event.description or event.mta_response
    if detail:
        text += f": {detail[:300]}"
    if suppressed:
        text += f"; the address is now on the suppression list ({suppressed})"
    return text


def _is_soft(esp_name: str, esp_event: Any) -> bool:
    field, soft = SOFT_BOUNCES.get(esp_name, ("", set()))
    if not field or not hasattr(esp_event, "get"):
        return False
    value = esp_event.get(field)
    if value is None and esp_name == "SparkPost":  # the event inside msys.*_event
        for inner in (esp_event.get("msys") or {}).values():
            if hasattr(inner, "get"):
                value = inner.get(field)
    return str(value) in soft


def delivery_event_from_anymail(
    *, event: AnymailTrackingEvent, esp_name: str
) -> RecordedEvent | None:
    """anymail's normalised tracking event, into ``delivery_event_record``."""
    permanent: bool | None = None
    if event.event_type == "bounced":
        permanent = event.reject_reason in HARD_REJECT_REASONS and not _is_soft(
            esp_name, event.esp_event
        )
    return delivery_event_record(
        provider=esp_name,
        event_type=str(event.event_type or "unknown"),
        message_id=str(event.message_id or ""),
        recipient=str(event.recipient or ""),
        occurred_at=event.timestamp,
        event_id=str(event.event_id or ""),
        reject_reason=str(event.reject_reason or ""),
        permanent=permanent,
        description=str(event.description or ""),
        mta_response=str(event.mta_response or ""),
        raw=event.esp_event,
    )
