"""Kept inbound messages after the first read: releasing blocked mail once its
mailbox's address is approved (the approval itself, an approver's Release, the sweep)
and reading again what a crash left ``kept``.

crm's approval service (``crm.services.email_address_approve``) sends
``crm.signals.email_address_approved``; ``activities.receivers`` answers it with
``inbound_release_after_approval``, which publishes the release after the approval
commits (crm never imports activities: the layers run one way). The sweep
(``inbound_sweep``) releases whatever that publish missed, and what was blocked for a
rule that has since been switched off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.errors import PermissionDeniedError
from crm.models import Organization, Queue, User

from .. import dispatch
from ..errors import Conflict
from ..models import (
    Direction,
    EmailEvent,
    EmailParty,
    EventKind,
    InboundMessage,
    InboundStatus,
    PartyRole,
)
from ..policies import mailbox_blocked
from .inbound import INBOUND_ACTOR, READ_CLAIM_SECONDS, inbound_message_read

logger = logging.getLogger(__name__)

APPROVE_PERMISSION = "crm.approve_email_address"
Mailbox = User | Queue
# Kept messages read per sweep, and how long a new one is left to its first read.
SWEEP_LIMIT = 25
SWEEP_KEPT_AFTER_SECONDS = 300


def _owned_by(mailbox: Mailbox) -> Q:
    if isinstance(mailbox, Queue):
        return Q(owner_queue=mailbox)
    return Q(owner_user=mailbox)


def inbound_release(*, message: InboundMessage, actor: User) -> InboundMessage:
    """An approver's Release of one blocked message (needs crm.approve_email_address).

    The message is read again under the rules as they are now: it becomes an email only
    if a mailbox it is for may receive it (its address approved, or approval no longer
    required); there is no override, since routing mail to an address nobody approved is
    what blocking prevents. Refused in words (``Conflict``): a message that is not
    blocked (``not_blocked``), or one still blocked (``mailbox_not_approved``, naming the
    address to approve first).
    """
    if not actor.has_perm(APPROVE_PERMISSION):
        raise PermissionDeniedError(
            f"releasing blocked mail needs the permission {APPROVE_PERMISSION}",
            code="permission_denied",
        )
    if message.status != InboundStatus.BLOCKED:
        raise Conflict(
            f"inbound message #{message.pk} is not blocked (it is {message.status}): there is "
            "nothing to release",
            code="not_blocked",
        )
    released = inbound_message_read(message=message, release=True)
    if released.status == InboundStatus.BLOCKED:
        raise Conflict(
            f"inbound message #{message.pk} is still {released.reason[:1].lower()}"
            f"{released.reason[1:]} Approve the address on the Approvals page first.",
            code="mailbox_not_approved",
        )
    InboundMessage.objects.filter(pk=released.pk).update(released_by=actor)
    released.released_by = actor
    return released


@dataclass
class Released:
    """What one release or sweep did: messages recorded (by status), parties routed."""

    statuses: dict[str, int] = field(default_factory=dict)
    parties_routed: int = 0

    def count(self, message: InboundMessage) -> None:
        self.statuses[message.status] = self.statuses.get(message.status, 0) + 1


def inbound_release_for_mailbox(*, mailbox: Mailbox, limit: int = SWEEP_LIMIT) -> Released:
    """Release what ``mailbox`` blocked, now that it may receive mail: each of its blocked
    messages (oldest first, so a reply threads to its original) is read again and
    becomes a received email; and the recipients of mail it shared with an approved
    mailbox (recorded, but kept from this one) are linked to it, each with a note. At
    most ``limit`` messages: the sweep takes the rest. Nothing is done while it is still
    blocked."""
    done = Released()
    if mailbox_blocked(mailbox, Organization.get()):
        return done
    blocked = InboundMessage.objects.filter(_owned_by(mailbox), status=InboundStatus.BLOCKED)
    for message in blocked.order_by("received_at", "pk")[:limit]:
        done.count(inbound_message_read(message=message, release=True))
    done.parties_routed = _route_parties(mailbox)
    return done


def _route_parties(mailbox: Mailbox) -> int:
    """Link the recipients of received mail at ``mailbox``'s address that were kept
    from it (no record linked) to it, with a note event on each email."""
    if not mailbox.email:
        return 0
    link: dict[str, Mailbox] = (
        {"queue": mailbox} if isinstance(mailbox, Queue) else {"user": mailbox}
    )
    with transaction.atomic():
        parties = EmailParty.objects.filter(
            address__iexact=mailbox.email,
            role__in=[PartyRole.TO, PartyRole.CC, PartyRole.BCC],
            email__direction=Direction.INCOMING,
            user__isnull=True,
            queue__isnull=True,
            contact__isnull=True,
        )
        email_ids = sorted(set(parties.values_list("email_id", flat=True)))
        routed = parties.update(**link)
        EmailEvent.objects.bulk_create(
            EmailEvent(
                email_id=email_id,
                kind=EventKind.NOTE,
                actor_label=INBOUND_ACTOR,
                reason=f"routed to {mailbox.email} ({mailbox.display_name}): its address "
                "is approved now",
            )
            for email_id in email_ids
        )
    return routed


def inbound_release_after_approval(*, mailbox: Mailbox) -> None:
    """Release ``mailbox``'s blocked mail once the approval commits (a task; the sweep
    if the broker cannot take it)."""
    kind = "queue" if isinstance(mailbox, Queue) else "user"
    dispatch.release_inbound_after_commit(kind, mailbox.pk)


def inbound_release_for(*, kind: str, pk: int) -> Released:
    """``inbound_release_for_mailbox`` by the ids a task carries (a mailbox gone since:
    nothing)."""
    model: type[Queue] | type[User] = Queue if kind == "queue" else User
    mailbox = model.objects.filter(pk=pk).first()
    if mailbox is None:
        return Released()
    return inbound_release_for_mailbox(mailbox=mailbox)


def inbound_sweep(*, limit: int = SWEEP_LIMIT) -> Released:
    """Read again what a crash or a lost publish left: ``kept`` messages whose first
    read did not finish, and blocked ones whose mailbox may receive mail now. At most
    ``limit`` of each per run."""
    done = Released()
    now = timezone.now()
    stale = now - timedelta(seconds=READ_CLAIM_SECONDS)
    kept = InboundMessage.objects.filter(
        status=InboundStatus.KEPT,
        received_at__lt=now - timedelta(seconds=SWEEP_KEPT_AFTER_SECONDS),
    ).filter(Q(reading_since__isnull=True) | Q(reading_since__lt=stale))
    for message in kept.order_by("received_at", "pk")[:limit]:
        done.count(inbound_message_read(message=message))
    org = Organization.get()
    blocked = InboundMessage.objects.filter(status=InboundStatus.BLOCKED).select_related(
        "owner_user", "owner_queue"
    )
    taken = 0
    for message in blocked.order_by("received_at", "pk").iterator():
        owner = message.owner
        if owner is not None and mailbox_blocked(owner, org):
            continue
        done.count(inbound_message_read(message=message, release=True))
        taken += 1
        if taken >= limit:
            break
    return done
