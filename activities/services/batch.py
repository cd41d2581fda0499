"""Create and send in one step, and many such emails in one transaction.

For callers that hand over finished emails rather than drafts to edit: a vendor's
"send these e-mails" call (SuperOffice's EMail agent ``SendEMails``). The rules are
those of ``email_create``, ``attachment_store`` and ``email_send``; nothing here adds one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from crm.models import User

from ..errors import ApplicationError
from ..models import Email
from .attachments import attachment_store
from .emails import email_create, email_send


@dataclass(frozen=True)
class AttachmentInput:
    """The bytes of one attachment as a caller hands them over."""

    filename: str
    content: bytes
    mime_type: str | None = None


def email_create_and_send(
    *, actor: User, attachments: Sequence[AttachmentInput] = (), **fields: Any
) -> Email:
    """Create an outgoing email (``fields`` as for ``email_create``), attach the bytes of
    ``attachments`` and send it (``email_send`` with ``issue_send``).

    One transaction: on any refusal nothing is written, and when the caller has a
    transaction open it is a savepoint of it, so the caller's other writes stay.
    """
    with transaction.atomic():
        email = email_create(actor=actor, **fields)
        for attachment in attachments:
            attachment_store(
                owner=email,
                source=attachment.content,
                filename=attachment.filename,
                mime_type=attachment.mime_type,
                actor=actor,
            )
        return email_send(email=email, actor=actor)


@dataclass(frozen=True)
class BatchOutcome:
    """One email of a batch: the email sent, or the refusal that kept it from being written."""

    email: Email | None = None
    error: ApplicationError | None = None


def emails_send_batch(*, actor: User, emails: Sequence[Mapping[str, Any]]) -> list[BatchOutcome]:
    """Create and send each of ``emails`` (the keyword arguments of
    ``email_create_and_send``, ``attachments`` included), in one transaction.

    Each email is checked on its own: a refused one is rolled back to its savepoint and
    its ``ApplicationError`` answered in its place, the others are written and sent.
    Delivery is queued when the whole batch commits (``email_send`` after commit), so a
    batch that fails as a whole sends nothing. The outcomes are in the order given.
    """
    outcomes: list[BatchOutcome] = []
    with transaction.atomic():
        for fields in emails:
            try:
                email = email_create_and_send(actor=actor, **fields)
            except ApplicationError as exc:
                outcomes.append(BatchOutcome(error=exc))
            else:
                outcomes.append(BatchOutcome(email=email))
    return outcomes
