"""Reading Graph's request bodies (a message, sendMail's parameters) into the
keyword arguments of our services. Pure: no query, no write.

Property names are Graph's (``toRecipients``); the casing of Graph's beta and of
some clients (``Message``, ``SaveToSentItems``, ``ToRecipients``) is accepted too.
Graph's annotations (``@odata.type``, ``x@odata.context``) are read where they say
something (an attachment's type) and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from activities.models import Priority

from .errors import GraphError

MESSAGE_TYPE = "microsoft.graph.message"

# What a message body may set, under Graph's names.
RECIPIENT_LISTS = {
    "toRecipients": "to",
    "ccRecipients": "cc",
    "bccRecipients": "bcc",
    "replyTo": "reply_to",
}
WRITABLE = {
    "subject",
    "body",
    *RECIPIENT_LISTS,
    "importance",
    "attachments",
    "internetMessageHeaders",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "from",
    "sender",
}
# Properties of Graph's message that a client may send back (read-only ones, or ones
# that mean nothing here: Outlook's categories, flags and read state): no effect.
IGNORED = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "receivedDateTime",
    "sentDateTime",
    "changeKey",
    "categories",
    "conversationId",
    "conversationIndex",
    "bodyPreview",
    "hasAttachments",
    "internetMessageId",
    "isDraft",
    "isRead",
    "inferenceClassification",
    "parentFolderId",
    "webLink",
    "flag",
    "uniqueBody",
}
# Graph's, and not offered here (docs/compat/graph.md says why).
REFUSED = {
    "mentions": "mentions are not supported",
    "extensions": "open extensions are not supported",
    "singleValueExtendedProperties": "extended properties are not supported",
    "multiValueExtendedProperties": "extended properties are not supported",
}
IMPORTANCE = {"low": Priority.LOW, "normal": Priority.NORMAL, "high": Priority.HIGH}
FILE_ATTACHMENT_TYPES = {"#microsoft.graph.fileAttachment", "microsoft.graph.fileAttachment"}


@dataclass
class AttachmentInput:
    name: str
    content_type: str | None
    content_bytes: str  # base64, decoded in slices by the attachment service's caller


@dataclass
class MessageInput:
    """Service keyword arguments (``email_create`` / ``email_update``), the sender's
    address when ``from`` (or ``sender``) names one, and the attachments to store."""

    changes: dict[str, Any] = field(default_factory=dict)
    from_address: str | None = None
    attachments: list[AttachmentInput] = field(default_factory=list)


def _is_annotation(key: str) -> bool:
    return key.startswith("@") or "@odata." in key


def properties(
    data: Any, *, known: Iterable[str], where: str, ignored: Iterable[str] = ()
) -> dict[str, Any]:
    """``data``'s properties under their Graph spelling; an unknown one is a 400."""
    if not isinstance(data, dict):
        raise GraphError(f"{where} must be a JSON object, not {_json_type(data)}.")
    spelled = {name.lower(): name for name in known}
    skipped = {name.lower() for name in ignored}
    found: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or _is_annotation(key):
            continue
        name = spelled.get(key.lower())
        if name is None:
            if key.lower() in skipped:
                continue
            raise GraphError(
                f"The property '{key}' does not exist on {where}. Make sure to only use "
                "property names that are defined by the type."
            )
        if name in found:
            raise GraphError(f"The property '{name}' is given twice in {where}.")
        found[name] = value
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "an array" if isinstance(value, list) else "an object"
    )


def string(value: Any, where: str, *, allow_null: bool = True) -> str:
    if value is None and allow_null:
        return ""
    if not isinstance(value, str):
        raise GraphError(f"{where} must be a string, not {_json_type(value)}.")
    if "\x00" in value:  # no database keeps it (PostgreSQL refuses NUL in text)
        raise GraphError(f"{where} must not contain NUL characters.")
    return value


def boolean(value: Any, where: str) -> bool:
    """A JSON boolean; also ``"true"``/``"false"``, as Graph's own sendMail sample
    sends ``saveToSentItems``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise GraphError(f"{where} must be a boolean (true or false), not {_json_type(value)}.")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GraphError(f"{where} must be an array, not {_json_type(value)}.")
    return value


def email_address(data: Any, where: str) -> dict[str, str]:
    """A recipient (``{"emailAddress": {"address", "name"}}``) as a party input.

    A recipient without an address (Graph's documented placeholder
    ``{"@odata.type": "microsoft.graph.recipient"}``) is ``ErrorInvalidRecipients``
    naming it."""
    recipient = properties(data, known=["emailAddress"], where=f"{where} (a recipient)")
    address = properties(
        recipient.get("emailAddress") or {},
        known=["address", "name"],
        where=f"{where}.emailAddress",
    )
    text = string(address.get("address"), f"{where}.emailAddress.address").strip()
    if not text:
        raise GraphError(
            f"At least one recipient is not valid: {where} has no emailAddress.address. "
            "All recipients must have an address before a message can be submitted.",
            code="ErrorInvalidRecipients",
        )
    return {"address": text, "name": string(address.get("name"), f"{where}.emailAddress.name")}


def _header(data: Any, where: str) -> dict[str, str]:
    header = properties(data, known=["name", "value"], where=where)
    name = string(header.get("name"), f"{where}.name").strip()
    if not name.lower().startswith("x-"):
        raise GraphError(
            f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
            code="InvalidInternetMessageHeader",
        )
    return {"name": name, "value": string(header.get("value"), f"{where}.value")}


def attachment(data: Any, where: str) -> AttachmentInput:
    kind = data.get("@odata.type") if isinstance(data, dict) else None
    if kind is not None and kind not in FILE_ATTACHMENT_TYPES:
        raise GraphError(
            f"{where} is a {kind}: only #microsoft.graph.fileAttachment is supported "
            "(item and reference attachments are not).",
            code="ErrorAttachmentTypeNotSupported",
        )
    props = properties(
        data,
        known=["name", "contentType", "contentBytes", "isInline", "contentId"],
        ignored=["id", "size", "lastModifiedDateTime", "contentLocation"],
        where=f"{where} (a fileAttachment)",
    )
    if props.get("isInline") is not None and boolean(props["isInline"], f"{where}.isInline"):
        raise GraphError(
            f"{where} is inline (isInline: true): inline attachments are not supported; "
            "send it as an ordinary attachment (isInline: false).",
            code="ErrorAttachmentTypeNotSupported",
        )
    content = props.get("contentBytes")
    if content is None:
        raise GraphError(f"{where}.contentBytes is required: the file's bytes in base64.")
    return AttachmentInput(
        name=string(props.get("name"), f"{where}.name") or "attachment",
        content_type=string(props.get("contentType"), f"{where}.contentType") or None,
        content_bytes=string(content, f"{where}.contentBytes"),
    )


def message(
    data: Any, *, where: str = f"type '{MESSAGE_TYPE}'", attachments: bool = True
) -> MessageInput:
    """A Graph message (create, update, sendMail) as our services' inputs."""
    known = WRITABLE if attachments else WRITABLE - {"attachments"}
    props = properties(data, known=[*known, *REFUSED], ignored=IGNORED, where=where)
    result = MessageInput()
    changes = result.changes
    for name, reason in REFUSED.items():
        if props.get(name):
            raise GraphError(f"{name}: {reason} by this server.")
    if "subject" in props:
        changes["subject"] = string(props["subject"], "subject")
    if "body" in props:
        body = properties(props["body"] or {}, known=["contentType", "content"], where="body")
        kind = string(body.get("contentType"), "body.contentType").strip().lower() or "text"
        if kind not in ("text", "html"):
            raise GraphError(f"body.contentType must be Text or HTML, not {kind!r}.")
        content = string(body.get("content"), "body.content")
        changes["body_html"] = content if kind == "html" else ""
        changes["body_text"] = content if kind == "text" else ""
    for graph_name, role in RECIPIENT_LISTS.items():
        if graph_name in props:
            changes[role] = [
                email_address(item, f"{graph_name}[{i}]")
                for i, item in enumerate(_list(props[graph_name], graph_name))
            ]
    if "importance" in props:
        importance = string(props["importance"], "importance").strip().lower()
        if importance not in IMPORTANCE:
            raise GraphError(f"importance must be Low, Normal or High, not {importance!r}.")
        changes["priority"] = IMPORTANCE[importance]
    if "internetMessageHeaders" in props:
        changes["headers"] = [
            _header(item, f"internetMessageHeaders[{i}]")
            for i, item in enumerate(
                _list(props["internetMessageHeaders"], "internetMessageHeaders")
            )
        ]
    for graph_name, ours in (
        ("isDeliveryReceiptRequested", "request_delivery_receipt"),
        ("isReadReceiptRequested", "request_read_receipt"),
    ):
        if props.get(graph_name) is not None:
            changes[ours] = boolean(props[graph_name], graph_name)
    for graph_name in ("from", "sender"):
        if props.get(graph_name) is not None and result.from_address is None:
            result.from_address = email_address(props[graph_name], graph_name)["address"]
    result.attachments = [
        attachment(item, f"attachments[{i}]")
        for i, item in enumerate(_list(props.get("attachments"), "attachments"))
    ]
    return result


def send_mail(data: Any) -> tuple[MessageInput, bool]:
    """sendMail's body: the message, and ``saveToSentItems`` (default true)."""
    props = properties(data, known=["message", "saveToSentItems"], where="the sendMail request")
    if props.get("message") is None:
        raise GraphError('The sendMail request needs a message: {"message": {...}}.')
    save = props.get("saveToSentItems")
    return message(props["message"]), True if save is None else boolean(save, "saveToSentItems")
