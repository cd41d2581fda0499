"""The suppression list: addresses that never get bulk mail, and the unsubscribe link.

Bulk jobs skip a contact whose address is listed (``SkipReason.SUPPRESSED``), and a
contact with ``do_not_bulk_email``. The unsubscribe link of a bulk email (RFC 2369
``List-Unsubscribe`` with RFC 8058 one-click) sets that flag on every contact with
the recipient's address; a link works once, and its token is signed, so it cannot be
forged or pointed at another email.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.models import Contact, User
from crm.services import require_staff

from ..addresses import check_address
from ..errors import ApplicationError, Conflict, InvalidUnsubscribeLink
from ..links import email_id_of_unsubscribe_token
from ..models import Email, EmailParty, EventKind, PartyRole, SuppressedAddress, SuppressionReason
from .transitions import record_event


def normalized_address(address: str) -> str:
    return address.strip().lower()


def suppression_add(
    *,
    address: str,
    actor: User | None,
    reason: str = SuppressionReason.MANUAL,
    note: str = "",
) -> SuppressedAddress:
    """List an address; a second listing of the same address (any case) is a 409."""
    require_staff(actor, "changing the suppression list")
    address = normalized_address(check_address(address, label="the address to suppress"))
    if reason not in SuppressionReason.values:
        raise ApplicationError(
            f"unknown suppression reason {reason!r} (known: {', '.join(SuppressionReason.values)})",
            code="invalid",
        )
    try:
        with transaction.atomic():
            return SuppressedAddress.objects.create(
                address=address, reason=reason, note=note, created_by=actor
            )
    except IntegrityError:
        raise Conflict(f"{address} is already on the suppression list") from None


def suppression_remove(*, entry: SuppressedAddress, actor: User | None) -> None:
    require_staff(actor, "changing the suppression list")
    entry.delete()


def suppressed_among(addresses: Iterable[str]) -> set[str]:
    """The (lower-cased) addresses of ``addresses`` that are on the suppression list."""
    wanted = {normalized_address(a) for a in addresses if a}
    if not wanted:
        return set()
    return set(
        SuppressedAddress.objects.filter(address__in=wanted).values_list("address", flat=True)
    )


def email_for_unsubscribe_token(token: str) -> Email:
    """The bulk email a token was made for; ``InvalidUnsubscribeLink`` if it was not made
    here (forged, altered, truncated) or its email no longer exists."""
    email_id = email_id_of_unsubscribe_token(token)
    email = Email.objects.filter(pk=email_id, bulk_send__isnull=False).first()
    if email is None:
        raise InvalidUnsubscribeLink("this unsubscribe link belongs to an email that was deleted")
    return email


@dataclass(frozen=True)
class UnsubscribeResult:
    address: str
    first_time: bool  # False: the link had been used already, nothing changed
    contacts: int  # contacts set to do_not_bulk_email


def unsubscribe(*, token: str, how: str = "link") -> UnsubscribeResult:
    """Follow an unsubscribe link: every contact with the recipient's address gets
    ``do_not_bulk_email``. Once per email: a second use changes nothing (so a contact
    who was subscribed again by staff is not unsubscribed by an old link)."""
    email = email_for_unsubscribe_token(token)
    address = (
        EmailParty.objects.filter(email=email, role=PartyRole.TO)
        .values_list("address", flat=True)
        .first()
        or ""
    )
    now = timezone.now()
    with transaction.atomic():
        if not Email.objects.filter(pk=email.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now
        ):
            return UnsubscribeResult(address=address, first_time=False, contacts=0)
        contacts = Contact.objects.filter(email__iexact=address.strip()) if address else None
        changed = contacts.update(do_not_bulk_email=True) if contacts is not None else 0
        record_event(
            email_id=email.pk,
            kind=EventKind.NOTE,
            actor_label="recipient",
            reason=(
                f"the recipient {address} unsubscribed from bulk mail ({how}); "
                f"{changed} contact(s) set to do not bulk email"
            ),
            data={"unsubscribed": address, "how": how, "contacts": changed},
        )
    return UnsubscribeResult(address=address, first_time=True, contacts=changed)
