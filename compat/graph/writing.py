"""Our emails and attachments as Graph's message and fileAttachment resources."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils.html import strip_tags
from rest_framework.request import Request

from activities.downloads import ContentMissing
from activities.models import (
    ActivityMimeAttachment,
    Direction,
    Email,
    EmailParty,
    EmailStatus,
    PartyRole,
    Priority,
)
from activities.services.blobs import blob_open_verified

from . import ids

IMPORTANCE: dict[str, str] = {Priority.LOW: "low", Priority.NORMAL: "normal", Priority.HIGH: "high"}

# Graph's well-known folders, as statuses of ours (docs/compat/graph.md).
FOLDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "drafts": (Direction.OUTGOING, (EmailStatus.DRAFT, EmailStatus.FAILED)),
    "sentitems": (
        Direction.OUTGOING,
        (EmailStatus.PENDING_SEND, EmailStatus.SENDING, EmailStatus.SENT),
    ),
    "inbox": (Direction.INCOMING, (EmailStatus.RECEIVED,)),
    "archive": (Direction.OUTGOING, (EmailStatus.COMPLETED,)),
    "deleteditems": (Direction.OUTGOING, (EmailStatus.CANCELED,)),
}

# Every property of a message, in Graph's order; $select picks among these.
MESSAGE_PROPERTIES = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
)
# Graph leaves these out unless $select names them.
ONLY_SELECTED = {"internetMessageHeaders"}


def when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment.utcoffset() is not None else None


def recipient(address: str, name: str = "") -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


def folder_of(email: Email) -> str:
    for name, (direction, statuses) in FOLDERS.items():
        if email.direction == direction and email.status in statuses:
            return name
    return "inbox" if email.direction == Direction.INCOMING else "sentitems"


def _preview(email: Email) -> str:
    text = email.body_text
    if not text and email.body_html:
        text = strip_tags(email.body_html)
    return " ".join(text.split())[:255]


def message_resource(
    email: Email, *, request: Request, select: frozenset[str] | None = None
) -> dict[str, Any]:
    """A Graph message. ``email`` comes from ``email_list_queryset`` (parties and
    attachments prefetched), so a page of them costs a fixed number of queries."""
    parties: list[EmailParty] = list(email.parties.all())
    by_role: dict[str, list[EmailParty]] = {}
    for party in parties:
        by_role.setdefault(party.role, []).append(party)
    from_party = next(iter(by_role.get(PartyRole.FROM, [])), None)
    sender = email.sender
    if from_party is not None:
        mailbox: dict[str, Any] | None = recipient(from_party.address, from_party.name)
    elif sender is not None and sender.email:
        mailbox = recipient(sender.email, sender.display_name)
    else:
        mailbox = None

    def listed(role: str) -> list[dict[str, Any]]:
        return [recipient(p.address, p.name) for p in by_role.get(role, [])]

    received = email.received_at or email.created_at
    body = (
        {"contentType": "html", "content": email.body_html}
        if email.body_html
        else {"contentType": "text", "content": email.body_text}
    )
    values: dict[str, Any] = {
        "id": ids.message_id(email.pk),
        "createdDateTime": when(email.created_at),
        "lastModifiedDateTime": when(email.modified_at),
        "changeKey": when(email.modified_at),
        "categories": [],
        "receivedDateTime": when(received),
        "sentDateTime": when(email.sent_at),
        "hasAttachments": bool(list(email.attachments.all())),
        "internetMessageId": email.message_id or None,
        "subject": email.subject,
        "bodyPreview": _preview(email),
        "importance": IMPORTANCE.get(email.priority, "normal"),
        "parentFolderId": folder_of(email),
        "conversationId": None,
        "isDeliveryReceiptRequested": email.request_delivery_receipt,
        "isReadReceiptRequested": email.request_read_receipt,
        "isRead": True,
        "isDraft": email.status in (EmailStatus.DRAFT, EmailStatus.FAILED),
        "webLink": request.build_absolute_uri(reverse("email", args=[email.pk])),
        "inferenceClassification": "focused",
        "body": body,
        "sender": mailbox,
        "from": mailbox,
        "toRecipients": listed(PartyRole.TO),
        "ccRecipients": listed(PartyRole.CC),
        "bccRecipients": listed(PartyRole.BCC),
        "replyTo": listed(PartyRole.REPLY_TO),
        "flag": {"flagStatus": "notFlagged"},
        "internetMessageHeaders": [
            {"name": header["name"], "value": header["value"]} for header in email.headers or []
        ],
    }
    if select is None:
        return {k: v for k, v in values.items() if k not in ONLY_SELECTED}
    return {k: v for k, v in values.items() if k == "id" or k in select}


def attachment_resource(
    attachment: ActivityMimeAttachment, *, with_content: bool = False
) -> dict[str, Any]:
    """A Graph fileAttachment; ``with_content`` adds ``contentBytes`` (the stored bytes,
    verified against their SHA-256 first: ``AttachmentCorrupted`` if they do not match)."""
    resource: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": ids.attachment_id(attachment.pk),
        "lastModifiedDateTime": when(attachment.created_at),
        "name": attachment.filename,
        "contentType": attachment.mime_type,
        "size": attachment.blob.size,
        "isInline": bool(attachment.content_id),
        "contentId": attachment.content_id or None,
        "contentLocation": None,
    }
    if with_content:
        try:
            fh = blob_open_verified(blob=attachment.blob, label=attachment.filename)
        except FileNotFoundError as exc:
            raise ContentMissing("the stored bytes of this attachment are missing") from exc
        with fh:
            resource["contentBytes"] = base64.b64encode(fh.read()).decode("ascii")
    return resource
