"""Graph's calls as sequences of our services, each in one transaction: all or nothing.

No rule is decided here: recipients, senders, attachments and sending are the
services' (``email_create``, ``attachment_store``, ``email_send``, ``email_update``).
A refusal anywhere rolls the whole call back, so a refused recipient or sender leaves
no email behind; bytes already written to the blob store by then are unreferenced
and the blob garbage collector removes them after its grace period.
"""

from __future__ import annotations

from django.db import transaction

from activities.models import Email
from activities.services.attachments import attachment_store
from activities.services.emails import email_create, email_send, email_update
from activities.uploads import base64_chunks
from crm.models import User

from .mailboxes import Mailbox, mailbox_with_address
from .reading import AttachmentInput, MessageInput


def _attach(email: Email, attachments: list[AttachmentInput], actor: User) -> None:
    for attachment in attachments:
        attachment_store(
            owner=email,
            source=base64_chunks(attachment.content_bytes),
            filename=attachment.name,
            mime_type=attachment.content_type,
            actor=actor,
        )


def draft_create(*, actor: User, mailbox: Mailbox, given: MessageInput) -> Email:
    """A draft from ``mailbox`` (or the mailbox ``from`` names), with its attachments."""
    sender = (
        mailbox_with_address(given.from_address, default=mailbox) if given.from_address else mailbox
    )
    with transaction.atomic():
        email = email_create(actor=actor, sender=sender, **given.changes)
        _attach(email, given.attachments, actor)
    return email


def mail_send(*, actor: User, mailbox: Mailbox, given: MessageInput) -> Email:
    """sendMail: one email created with its attachments and queued for delivery."""
    with transaction.atomic():
        email = draft_create(actor=actor, mailbox=mailbox, given=given)
        return email_send(email=email, actor=actor)


def draft_update(*, email: Email, actor: User, given: MessageInput) -> Email:
    """PATCH of a message: ``email_update`` with what the body changes (nothing when it
    only sets properties that mean nothing here, such as ``isRead``)."""
    changes = dict(given.changes)
    if given.from_address:
        current = email.sender or actor
        changes["sender"] = mailbox_with_address(given.from_address, default=current)
    if not changes:
        return email
    return email_update(email=email, actor=actor, **changes)
