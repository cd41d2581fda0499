"""SuperOffice's ``EMailEntity`` to our email and back, and the error shape.

Reading: one validated entity becomes the keyword arguments of
``activities.services.batch.email_create_and_send``; anything its shape refuses is a
``SuperOfficeInputError`` naming the property's path (``Emails[0].To[1]``), so that
email is refused and the others go on. Writing: our record, after the batch, as the
entity SuperOffice answers, with ``$select`` nulling what was not asked for.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from email import errors as email_errors
from email.headerregistry import AddressHeader, HeaderRegistry
from http import HTTPStatus
from typing import Any

from django.db.models import Q
from rest_framework import serializers
from rest_framework.fields import DateTimeField

from activities.addresses import party_text
from activities.models import Email, EmailParty, PartyRole, Priority
from activities.services.batch import AttachmentInput
from common.errors import ApplicationError, PermissionDeniedError, ValidationFailed
from crm.models import Queue, User

from .carriers import (
    EMailAddressIn,
    EMailAttachmentIn,
    EMailCustomHeaderIn,
    EMailEntityIn,
    input_text,
    validated,
)

# --- errors ----------------------------------------------------------------------------


def error_shape(status: int, code: str, message: str) -> dict[str, Any]:
    """A refusal as SuperOffice's REST errors carry it: ``Error`` (the HTTP reason),
    ``ErrorType`` (our stable code) and ``Message`` (our reason)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return {"Error": reason, "ErrorType": code, "Message": message}


class SuperOfficeInputError(ValidationFailed):
    """An entity whose shape or values this adapter cannot read (400)."""

    code = "invalid"


def input_error(exc: serializers.ValidationError) -> SuperOfficeInputError:
    return SuperOfficeInputError(input_text(exc.detail))


# --- reading an entity -----------------------------------------------------------------

# EMailPriority (SuperOffice's database enum): NoPriority 0, Highest 1, High 2, Normal 3,
# Low 4, Lowest 5. We keep three.
_PRIORITY_IN = {
    "nopriority": Priority.NORMAL,
    "highest": Priority.HIGH,
    "high": Priority.HIGH,
    "normal": Priority.NORMAL,
    "low": Priority.LOW,
    "lowest": Priority.LOW,
}
_PRIORITY_NUMBERS = ["nopriority", "highest", "high", "normal", "low", "lowest"]
_PRIORITY_OUT = {Priority.HIGH: "High", Priority.NORMAL: "Normal", Priority.LOW: "Low"}
_DISPOSITIONS = {"attachment", "inline"}


def _priority(value: Any, *, label: str) -> str:
    if value is None:
        return Priority.NORMAL
    if isinstance(value, str) and value.strip().isdigit():  # XML has only text
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 6:
        value = _PRIORITY_NUMBERS[value]
    if isinstance(value, str) and value.strip().lower() in _PRIORITY_IN:
        return _PRIORITY_IN[value.strip().lower()]
    raise SuperOfficeInputError(
        f"{label}.Priority: {value!r} is not an EMailPriority (NoPriority, Highest, High, "
        "Normal, Low, Lowest, or 0 to 5)"
    )


def _recipients(values: Sequence[Any] | None, *, label: str) -> list[dict[str, str]]:
    recipients = []
    for position, value in enumerate(values or ()):
        where = f"{label}[{position}]"
        address = validated(value, EMailAddressIn, label=where)
        text = (address.get("Address") or "").strip()
        if not text:
            name = address.get("Name") or ""
            named = f" ({name})" if name else ""
            raise SuperOfficeInputError(
                f"{where}{named}: the recipient has no Address; give each recipient its "
                "e-mail address"
            )
        recipients.append({"address": text, "name": address.get("Name") or ""})
    return recipients


def _attachments(values: Sequence[Any] | None, *, label: str) -> list[AttachmentInput]:
    attachments = []
    for position, value in enumerate(values or ()):
        where = f"{label}[{position}]"
        attachment = validated(value, EMailAttachmentIn, label=where)
        stream = attachment.get("Stream")
        if not stream:
            raise SuperOfficeInputError(f"{where}.Stream: the attachment has no bytes (base64)")
        try:
            content = base64.b64decode(stream, validate=True)
        except (binascii.Error, ValueError):
            raise SuperOfficeInputError(f"{where}.Stream: not base64") from None
        disposition = (attachment.get("Disposition") or "attachment").split(";")[0]
        if disposition.strip().lower() not in _DISPOSITIONS:
            raise SuperOfficeInputError(
                f"{where}.Disposition: {disposition!r} is neither attachment nor inline"
            )
        attachments.append(
            AttachmentInput(
                filename=attachment.get("Filename") or attachment.get("Description") or "",
                content=content,
                mime_type=attachment.get("Type") or None,
            )
        )
    return attachments


# Headers that SuperOffice's entity has no property for, and that we keep as fields of
# the email rather than as custom headers: Reply-To (parties) and the receipt requests.
REPLY_TO = "reply-to"
RECEIPTS = {
    "return-receipt-to": "request_delivery_receipt",
    "disposition-notification-to": "request_read_receipt",
}


_HEADERS = HeaderRegistry()


def _reply_to(text: str, *, label: str) -> list[dict[str, str]]:
    """The addresses of a Reply-To value, read by the standard library's RFC 5322 parser;
    each is checked again by the services."""
    try:
        parsed = _HEADERS("Reply-To", text)
    except (email_errors.HeaderParseError, IndexError, ValueError):
        parsed = None
    if (
        not isinstance(parsed, AddressHeader)
        or not parsed.addresses
        or any(isinstance(d, email_errors.InvalidHeaderDefect) for d in parsed.defects)
    ):
        raise SuperOfficeInputError(f"{label}: Reply-To {text!r} is not a list of addresses")
    return [{"address": a.addr_spec, "name": a.display_name} for a in parsed.addresses]


def _custom_headers(values: Sequence[Any] | None, *, label: str) -> dict[str, Any]:
    """``CustomHeaderList`` as the ``headers``, ``reply_to`` and receipt flags of
    ``email_create``. Each value of a header is one line; the services refuse a name
    given twice, so a header takes one value here. The headers themselves are checked
    by the services (``check_custom_headers``: no header the application writes)."""
    headers: list[dict[str, str]] = []
    options: dict[str, Any] = {}
    for position, value in enumerate(values or ()):
        where = f"{label}[{position}]"
        header = validated(value, EMailCustomHeaderIn, label=where)
        name = (header.get("Name") or "").strip()
        if not name:
            raise SuperOfficeInputError(f"{where}.Name: the header has no name")
        lines = header.get("Values") or [""]
        if len(lines) > 1:
            raise SuperOfficeInputError(
                f"{where}: the header {name} has {len(lines)} Values; give it one value "
                "(several are one comma-separated value)"
            )
        text = lines[0]
        lowered = name.lower()
        if lowered == REPLY_TO:
            options.setdefault("reply_to", []).extend(_reply_to(text, label=where))
        elif lowered in RECEIPTS:
            # The receipt goes to the sender's address, whatever the value names.
            options[RECEIPTS[lowered]] = True
        else:
            headers.append({"name": name, "value": text})
    if headers:
        options["headers"] = headers
    return options


def sender_named(address: str, *, actor: User) -> User | Queue:
    """The user or queue whose address ``From`` gives; whether the actor may send as it
    is the services' rule (``check_may_send_as``)."""
    address = address.strip()
    if actor.email and actor.email.lower() == address.lower():
        return actor
    queue = Queue.objects.filter(email__iexact=address).first()
    if queue is not None:
        return queue
    user = User.objects.filter(Q(email__iexact=address), is_active=True).order_by("pk").first()
    if user is not None:
        return user
    raise PermissionDeniedError(
        f"From {address!r}: no user or queue here has this address; leave From out to send "
        "as yourself",
        code="sender_not_allowed",
    )


def read_entity(data: Any, *, index: int, actor: User) -> dict[str, Any]:
    """The keyword arguments of ``email_create_and_send`` for the entity ``Emails[index]``."""
    label = f"Emails[{index}]"
    entity = validated(data, EMailEntityIn, label=label)
    fields: dict[str, Any] = {
        "subject": entity.get("Subject") or "",
        "body_html": entity.get("HTMLBody") or "",
        "body_text": entity.get("PlainBody") or "",
        "priority": _priority(entity.get("Priority"), label=label),
        "to": _recipients(entity.get("To"), label=f"{label}.To"),
        "cc": _recipients(entity.get("Cc"), label=f"{label}.Cc"),
        "bcc": _recipients(entity.get("Bcc"), label=f"{label}.Bcc"),
        "attachments": _attachments(entity.get("Attachments"), label=f"{label}.Attachments"),
    }
    sender = entity.get("From")
    if sender is not None:
        address = validated(sender, EMailAddressIn, label=f"{label}.From")
        if (address.get("Address") or "").strip():
            fields["sender"] = sender_named(address["Address"], actor=actor)
    fields.update(
        _custom_headers(entity.get("CustomHeaderList"), label=f"{label}.CustomHeaderList")
    )
    return fields


# --- writing an entity -----------------------------------------------------------------

_DATETIME = DateTimeField()


def _time(value: Any) -> str | None:
    return _DATETIME.to_representation(value) if value else None


def _address(party: EmailParty | None, *, address: str = "", name: str = "") -> dict[str, Any]:
    contact = party.contact if party is not None else None
    account = contact.account if contact is not None else None
    return {
        "ContactId": account.pk if account is not None else 0,
        "ContactName": account.name if account is not None else "",
        "PersonId": contact.pk if contact is not None else 0,
        "PersonName": contact.full_name if contact is not None else "",
        "AssociateId": (party.user_id or 0) if party is not None else 0,
        "Address": party.address if party is not None else address,
        "EmailId": 0,
        "DuplicatePersonIds": [],
        "Name": party.name if party is not None else name,
        "TableRight": None,
        "FieldProperties": {},
    }


def _attachment(attachment) -> dict[str, Any]:
    return {
        "Description": attachment.filename,
        "Filename": attachment.filename,
        "Size": attachment.blob.size,
        "Type": attachment.mime_type,
        "Encoding": "base64",
        "Id": attachment.content_id or "",
        "Disposition": "attachment",
        "IsSafeFileExtension": True,
        "Stream": None,  # SuperOffice does not echo the bytes of a stored e-mail either
        "TableRight": None,
        "FieldProperties": {},
    }


def _header(name: str, value: str) -> dict[str, Any]:
    return {"Name": name, "Values": [value], "TableRight": None, "FieldProperties": {}}


def _header_list(email: Email, parties: list[EmailParty]) -> list[dict[str, Any]]:
    """The custom headers, and the headers we keep as fields that SuperOffice's entity
    has no property for (Reply-To, the receipt requests), as sent."""
    headers = [_header(h["name"], h["value"]) for h in email.headers or []]
    reply_to = [p for p in parties if p.role == PartyRole.REPLY_TO]
    if reply_to:
        headers.append(_header("Reply-To", ", ".join(map(party_text, reply_to))))
    receipt_to = email.from_address
    if email.request_delivery_receipt:
        headers.append(_header("Return-Receipt-To", receipt_to))
    if email.request_read_receipt:
        headers.append(_header("Disposition-Notification-To", receipt_to))
    return headers


def _size(email: Email) -> int:
    text = (email.subject + email.body_html + email.body_text).encode()
    return len(text) + sum(a.blob.size for a in email.attachments.all())


def entity_of(email: Email, *, actor: User) -> dict[str, Any]:
    """A sent (accepted) email as ``EMailEntity``, filled from our record."""
    parties = list(email.parties.all())

    def role(name: str) -> list[dict[str, Any]]:
        return [_address(p) for p in parties if p.role == name]

    sender = next((p for p in parties if p.role == PartyRole.FROM), None)
    return {
        "To": role(PartyRole.TO),
        "Cc": role(PartyRole.CC),
        "Bcc": role(PartyRole.BCC),
        "Subject": email.subject,
        "HTMLBody": email.body_html,
        "From": _address(sender, address=email.from_address, name=email.from_name),
        "Sent": _time(email.sent_at or email.queued_at),
        "Size": _size(email),
        "Priority": _PRIORITY_OUT.get(Priority(email.priority), "Normal"),
        "Flags": "None",
        "MessageID": email.message_id or None,
        "PlainBody": email.body_text,
        "IsSent": True,
        "EMailSOInfo": {
            "DocumentId": email.pk,
            "AppointmentId": 0,
            "ProjectId": 0,
            "SaleId": 0,
            "Archived": True,
            "ArchivedAt": _time(email.created_at),
            "ArchivedBy": actor.pk,
            "ArchivedDisplayName": actor.full_name,
            "TableRight": None,
            "FieldProperties": {},
        },
        "ServerId": email.pk,
        "Attachments": [_attachment(a) for a in email.attachments.all()],
        "CustomHeaderList": _header_list(email, parties),
        "FolderName": "Sent",
        "EmailItemId": email.pk,
        "AccountId": 0,
        "ReceivedAt": None,
        "InReplyTo": None,
        "RepliedAt": None,
        "HasCalendarData": False,
        "CalMethod": "NoMethod",
        "CalReplyStatus": "Unknown",
        "TableRight": None,
        "FieldProperties": {},
    }


def refused_entity(data: Any, error: ApplicationError, *, status: int) -> dict[str, Any]:
    """A refused entity: what was asked (``Subject``, recipients), not sent, and why in
    ``SendError`` (an addition to SuperOffice's entity: it has no field for it)."""
    echo = data if isinstance(data, Mapping) else {}
    lowered = {str(k).lower(): v for k, v in echo.items()}

    def addresses(key: str) -> list[dict[str, Any]]:
        values = lowered.get(key)
        out = []
        for value in values if isinstance(values, list) else []:
            item = {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}
            address = item.get("address")
            name = item.get("name")
            out.append(
                _address(
                    None,
                    address=address if isinstance(address, str) else "",
                    name=name if isinstance(name, str) else "",
                )
            )
        return out

    subject = lowered.get("subject")
    entity: dict[str, Any] = dict.fromkeys(ENTITY_PROPERTIES)
    entity.update(
        {
            "To": addresses("to"),
            "Cc": addresses("cc"),
            "Bcc": addresses("bcc"),
            "Subject": subject if isinstance(subject, str) else None,
            "Size": 0,
            "Priority": "Normal",
            "Flags": "None",
            "IsSent": False,
            "ServerId": 0,
            "Attachments": [],
            "CustomHeaderList": [],
            "EmailItemId": 0,
            "AccountId": 0,
            "HasCalendarData": False,
            "CalMethod": "NoMethod",
            "CalReplyStatus": "Unknown",
            "FieldProperties": {},
        }
    )
    entity["SendError"] = error_shape(status, error.code, error.message)
    return entity


ENTITY_PROPERTIES = (
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "HTMLBody",
    "From",
    "Sent",
    "Size",
    "Priority",
    "Flags",
    "MessageID",
    "PlainBody",
    "IsSent",
    "EMailSOInfo",
    "ServerId",
    "Attachments",
    "CustomHeaderList",
    "FolderName",
    "EmailItemId",
    "AccountId",
    "ReceivedAt",
    "InReplyTo",
    "RepliedAt",
    "HasCalendarData",
    "CalMethod",
    "CalReplyStatus",
    "TableRight",
    "FieldProperties",
)
# ``SendError`` (ours) always stays: a refusal is never nulled out.
ALWAYS_KEPT = ("SendError",)


# --- $select ---------------------------------------------------------------------------


def parse_select(value: str | None) -> dict[str, set[str]] | None:
    """``$select=Subject,To/Address`` as ``{"Subject": set(), "To": {"Address"}}`` (an
    empty set: the whole property), with SuperOffice's spelling whatever the case
    given; ``None`` for every property. An unknown name is a 400 naming it."""
    if value is None or not value.strip():
        return None
    names = {name.lower(): name for name in ENTITY_PROPERTIES}
    selected: dict[str, set[str]] = {}
    unknown = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        head, _, tail = item.partition("/")
        name = names.get(head.strip().lower())
        if name is None:
            unknown.append(item)
            continue
        parts = selected.setdefault(name, set())
        if tail.strip():
            parts.add(tail.strip().lower())
        else:
            selected[name] = set()
            selected[name].add("*")
    if unknown:
        raise ValidationFailed(
            f"$select: not a property of EMailEntity: {', '.join(unknown)}", code="invalid_select"
        )
    return selected


def _select_within(value: Any, parts: set[str]) -> Any:
    if "*" in parts or not parts:
        return value
    if isinstance(value, list):
        return [_select_within(item, parts) for item in value]
    if isinstance(value, dict):
        return {k: (v if k.lower() in parts else None) for k, v in value.items()}
    return value


def apply_select(entity: dict[str, Any], selected: dict[str, set[str]] | None) -> dict[str, Any]:
    """``entity`` with the properties ``$select`` did not name nulled out, as SuperOffice
    does (the keys stay)."""
    if selected is None:
        return entity
    return {
        key: (
            value
            if key in ALWAYS_KEPT
            else _select_within(value, selected[key])
            if key in selected
            else None
        )
        for key, value in entity.items()
    }
