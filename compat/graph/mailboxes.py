"""Graph's mailboxes: ``users/{id | userPrincipalName}`` and ``from`` addresses, as our
users and queues (a queue is a shared mailbox). Who may send as which is the
services' rule (``check_may_send_as``), not decided here."""

from __future__ import annotations

from crm.models import Queue, User

from .errors import GraphError

Mailbox = User | Queue


def mailbox_named(name: str) -> Mailbox:
    """The user whose id, username or address is ``name``, else the queue with that
    address; Graph's ``ErrorInvalidUser`` (404) when there is none."""
    text = name.strip()
    found: Mailbox | None = None
    if text.isdigit() and len(text) < 19:
        found = User.objects.filter(pk=int(text)).first()
    else:
        found = (
            User.objects.filter(username__iexact=text).first()
            or User.objects.filter(email__iexact=text).order_by("pk").first()
            or Queue.objects.filter(email__iexact=text).order_by("pk").first()
        )
    if found is None:
        raise GraphError(
            f"The requested user '{text}' is invalid.", code="ErrorInvalidUser", status=404
        )
    return found


def mailbox_with_address(address: str, *, default: Mailbox) -> Mailbox:
    """The mailbox a message's ``from`` names: ``default`` (the path's mailbox) when it
    is its address, else the user or queue with that address."""
    if (default.email or "").strip().lower() == address.strip().lower():
        return default
    found = (
        User.objects.filter(email__iexact=address).order_by("pk").first()
        or Queue.objects.filter(email__iexact=address).order_by("pk").first()
    )
    if found is None:
        raise GraphError(
            f"No user or queue has the address {address}, so no message can be sent as it (from).",
            code="ErrorSendAsDenied",
            status=403,
        )
    return found
