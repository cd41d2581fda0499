"""The suppression list: addresses that never get bulk mail, and the unsubscribe link.

Bulk jobs skip a contact whose address is listed (``SkipReason.SUPPRESSED``), and a
contact with ``do_not_bulk_email``. An address listed for a hard bounce or a complaint
(``REFUSING_REASONS``, written by delivery events) also refuses single sends
(``check_recipients_not_suppressed``); one listed by hand or unsubscribed keeps only
bulk mail away, as DESIGN.md's bulk section has it: a person who unsubscribed from a
newsletter still gets the answer to their own question. The unsubscribe link of a bulk email (RFC 2369
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
from ..errors import ApplicationError, Conflict, InvalidUnsubscribeLink, RecipientSuppressed
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


# Reasons that refuse any send to the address, not only bulk mail.
REFUSING_REASONS = (SuppressionReason.BOUNCE, SuppressionReason.COMPLAINT)


def suppression_record(*, address: str, reason: str, note: str) -> SuppressedAddress:
    """List an address because of what its mail did (a hard bounce, a complaint): no
    actor, and an address listed already keeps its entry, which takes the stronger
    reason (a manual or unsubscribed entry becomes a bounce or complaint one) with the
    note added. Safe when two events for one address race (the unique address)."""
    address = normalized_address(address)
    with transaction.atomic():
        entry = SuppressedAddress.objects.select_for_update().filter(address=address).first()
        if entry is None:
            try:
                with transaction.atomic():
                    return SuppressedAddress.objects.create(
                        address=address, reason=reason, note=note[:2000]
                    )
            except IntegrityError:  # listed by a concurrent event: update that entry
                entry = SuppressedAddress.objects.select_for_update().get(address=address)
        if entry.reason not in REFUSING_REASONS or (
            reason == SuppressionReason.COMPLAINT and entry.reason != reason
        ):
            entry.reason = reason
        entry.note = f"{entry.note}\n{note}".strip()[-4000:]
        entry.save(update_fields=["reason", "note"])
        return entry


def check_recipients_not_suppressed(parties: Iterable[EmailParty]) -> None:
    """Refuse (``RecipientSuppressed``, naming the address and why) a send to an address
    listed for a hard bounce or a complaint."""
    by_address = {normalized_address(p.address): p for p in parties if p.address}
    if not by_address:
        return
    entry = (
        SuppressedAddress.objects.filter(address__in=by_address, reason__in=REFUSING_REASONS)
        .order_by("address")
        .first()
    )
    if entry is None:
        return
    party = by_address[entry.address]
    why = SuppressionReason(entry.reason).label.lower()
    raise RecipientSuppressed(
        f"{party.address} is on the suppression list ({why}"
        f"{': ' + entry.note.splitlines()[0] if entry.note else ''}); mail to it is "
        "not sent until staff take it off the list",
        field=party.role,
        extra={"address": party.address, "reason": entry.reason},
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
    return unsubscribe_recipient(email=email, address=address, how=how)


def unsubscribe_recipient(*, email: Email, address: str, how: str) -> UnsubscribeResult:
    """The recipient ``address`` of ``email`` unsubscribed (by our link, or as a
    provider reported): its contacts get ``do_not_bulk_email``, once per email."""
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
