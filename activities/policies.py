"""The rules of the email activity, written once for selectors and services alike.

Who may send as whom, when a mailbox's address must be approved, and which statuses
allow which action. Selectors read them to offer only what would be accepted (the
compose page's senders); services apply them to refuse what is not. Nothing here
writes: the functions answer or raise the refusal in words.
"""

from __future__ import annotations

from collections.abc import Iterable

from crm.models import EmailApproval, Organization, Queue, User

from .errors import InvalidTransition, SenderNotAllowed, SenderNotApproved
from .models import Email, EmailStatus

SEND_AS_ANY_PERMISSION = "activities.send_as_any_sender"
DELETE_ANY_PERMISSION = "activities.delete_email"

EDITABLE_STATUSES = (EmailStatus.DRAFT, EmailStatus.FAILED)
CANCELABLE_STATUSES = (EmailStatus.DRAFT, EmailStatus.PENDING_SEND)
# A worker or an external sender may hold these: deleting would race the delivery.
UNDELETABLE_STATUSES = (EmailStatus.PENDING_SEND, EmailStatus.SENDING)

Sender = User | Queue


def require_status(status: str, allowed: Iterable[str], *, action: str) -> None:
    """Refuse ``action`` (409) unless ``status`` is one of ``allowed``."""
    if status not in {str(s) for s in allowed}:
        raise InvalidTransition(f"cannot {action} an email whose status is {status}", status=status)


def may_send_as(actor: User, sender: Sender) -> bool:
    """The sender itself, a member of the sending queue, or a holder of
    ``send_as_any_sender``."""
    if actor.has_perm(SEND_AS_ANY_PERMISSION):
        return True
    if isinstance(sender, Queue):
        return sender.members.filter(pk=actor.pk).exists()
    return sender.pk == actor.pk


def check_may_send_as(actor: User, sender: Sender) -> None:
    if not may_send_as(actor, sender):
        if isinstance(sender, Queue):
            raise SenderNotAllowed(
                f"{actor.get_username()} is not a member of the queue {sender.name} "
                "and may not send as it"
            )
        raise SenderNotAllowed(
            f"{actor.get_username()} may not send as the user {sender.get_username()}"
        )


def check_may_act(email: Email, actor: User) -> None:
    """Refuse an actor who may not act for ``email``'s sender (edit, send, cancel, files)."""
    sender = email.sender
    if sender is None:
        raise SenderNotAllowed("the email has no sender")
    check_may_send_as(actor, sender)


def sender_approval_required(sender: Sender, org: Organization) -> bool:
    """Whether ``org`` requires ``sender``'s address to be approved before mail is sent
    from it (one setting for user addresses, one for queue addresses)."""
    if isinstance(sender, Queue):
        return org.require_approval_for_queue_email
    return org.require_approval_for_user_email


def mailbox_blocked(mailbox: Sender, org: Organization) -> bool:
    """Whether mail to or from ``mailbox`` waits for its address to be approved."""
    return (
        sender_approval_required(mailbox, org)
        and mailbox.email_router_access_approval != EmailApproval.APPROVED
    )


def check_sender_approved(sender: Sender, org: Organization) -> None:
    if mailbox_blocked(sender, org):
        kind = "queue" if isinstance(sender, Queue) else "user"
        state = EmailApproval(sender.email_router_access_approval).label.lower()
        raise SenderNotApproved(
            f"sender address is not approved: the {kind} address {sender.email} is {state}; "
            "an administrator must approve it before mail can be sent from it"
        )
