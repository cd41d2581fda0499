"""``DeliverIncomingEmail``: a received message from its parts, onto our inbound route.

The parameters (the Web API reference's: MessageId, Subject, From, To, Cc, Bcc,
ReceivedOn, SubmittedBy, Importance, Body, Attachments, ExtraProperties,
ValidateBeforeCreate) become an RFC 5322 message, built with the standard library's
``email`` package, and that message goes to ``inbound_message_store_or_hold``, the
service every other inbound route (SMTP, providers' webhooks, polled mailboxes) uses:
the raw message is kept first, then threading (tracking token, In-Reply-To),
dedupe by Message-ID, blocked mail for unapproved mailboxes and bounces apply once,
there. ``Bcc`` are given as envelope recipients (a received message names no Bcc).

Who may: staff. Dataverse gives this message to the Email Router's service account;
delivering mail "from" any address into any mailbox here is that system's job,
as our providers' webhooks (with their secret) are, not an ordinary user's.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from activities.addresses import has_forbidden_chars, parse_address
from activities.errors import InvalidAddress, MessageHeld
from activities.html import text_of_html
from activities.models import Email
from activities.selectors import email_list_queryset
from activities.services.inbound import inbound_message_store_or_hold
from common.errors import PermissionDeniedError
from crm.api import signed_in_user

from .entities import email_entity
from .ids import guid_of
from .odata import DynamicsView, PayloadError, action_parameters, context_url
from .views import TAG, documented

ROUTE = "dynamics:DeliverIncomingEmail"
TEXT_PARAMETERS = ("MessageId", "Subject", "From", "To", "Cc", "Bcc", "SubmittedBy", "Importance")
PARAMETERS = {
    *TEXT_PARAMETERS,
    "ReceivedOn",
    "Body",
    "Attachments",
    "ExtraProperties",
    "ValidateBeforeCreate",
}
IMPORTANCE = {"low": ("low", "5"), "normal": ("normal", "3"), "high": ("high", "1")}
MAX_ATTACHMENTS = 100
_HTML = re.compile(r"<\s*(html|body|p|div|br|table|span|a|b|i|ul|ol|h\d)\b", re.IGNORECASE)


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{name}: expected a string, got {type(value).__name__}")
    if name != "Body" and has_forbidden_chars(value):
        raise PayloadError(f"{name}: a line break or NUL is not allowed in a header value")
    return value.strip()


def _split(text: str) -> list[str]:
    """The parts of an address list, split at ``;`` and ``,`` outside quotes and ``<>``."""
    parts: list[str] = []
    current: list[str] = []
    quoted = angled = False
    for char in text:
        if char == '"' and not angled:
            quoted = not quoted
        elif char == "<" and not quoted:
            angled = True
        elif char == ">" and not quoted:
            angled = False
        elif char in ";," and not quoted and not angled:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _addresses(data: dict[str, Any], name: str, *, required: bool = False) -> list[str]:
    """Each address of a ``;``- or ``,``-separated list, checked on its own: one
    without an address (a placeholder such as ``Ann Lee``) is refused naming it."""
    parts = _split(_text(data, name))
    if not parts and required:
        raise PayloadError(f"{name}: at least one address is required")
    addresses = []
    for position, part in enumerate(parts, 1):
        if "@" not in part:
            raise InvalidAddress(
                f"{name} recipient {position} ({part!r}) has no email address", field=name
            )
        parsed = parse_address(part, label=f"{name} recipient {position}", field=name)
        addresses.append(str(Address(display_name=parsed.name, addr_spec=parsed.address)))
    return addresses


def _received_on(data: dict[str, Any]) -> datetime:
    value = data.get("ReceivedOn")
    if value in (None, ""):
        return timezone.now()
    if not isinstance(value, str):
        raise PayloadError(f"ReceivedOn: expected an ISO 8601 date and time, got {value!r}")
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise PayloadError(f"ReceivedOn: {value!r} is not an ISO 8601 date and time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _attachments(data: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    items = data.get("Attachments")
    if items in (None, []):
        return []
    if not isinstance(items, list):
        raise PayloadError("Attachments: expected a list of attachment objects")
    if len(items) > MAX_ATTACHMENTS:
        raise PayloadError(f"Attachments: at most {MAX_ATTACHMENTS}")
    files = []
    for position, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise PayloadError(f"Attachments {position}: expected an object")
        lowered = {str(k).lower(): v for k, v in item.items()}
        filename = lowered.get("filename") or f"attachment-{position}"
        mime_type = lowered.get("mimetype") or "application/octet-stream"
        body = lowered.get("body")
        if not isinstance(filename, str) or not isinstance(mime_type, str):
            raise PayloadError(f"Attachments {position}: filename and mimetype are strings")
        if has_forbidden_chars(filename) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime_type):
            raise PayloadError(f"Attachments {position}: {filename!r} / {mime_type!r} refused")
        if not isinstance(body, str):
            raise PayloadError(f"Attachments {position} ({filename}): body (base64) is required")
        try:
            content = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError(f"Attachments {position} ({filename}): body is not base64") from None
        files.append((filename, mime_type.lower(), content))
    return files


def incoming_message(data: dict[str, Any]) -> tuple[bytes, list[str]]:
    """The RFC 5322 bytes of the parameters, and the Bcc addresses (envelope recipients)."""
    message_id = _text(data, "MessageId")
    if not message_id:
        raise PayloadError("MessageId: the message's Message-ID is required")
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    sender = _addresses(data, "From", required=True)
    if len(sender) != 1:
        raise PayloadError(f"From: one address, not {len(sender)}")
    to = _addresses(data, "To", required=True)
    cc = _addresses(data, "Cc")
    bcc = _addresses(data, "Bcc")
    importance = _text(data, "Importance").lower()
    if importance and importance not in IMPORTANCE:
        raise PayloadError(f"Importance: expected low, normal or high, got {importance!r}")
    submitted_by = _text(data, "SubmittedBy")
    body = _text(data, "Body")
    message = EmailMessage()
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(_received_on(data))
    message["From"] = sender[0]
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = _text(data, "Subject")
    if importance:
        message["Importance"] = IMPORTANCE[importance][0]
        message["X-Priority"] = IMPORTANCE[importance][1]
    if submitted_by:
        message["X-Submitted-By"] = submitted_by
    if _HTML.search(body):
        message.set_content(text_of_html(body) or " ")
        message.add_alternative(body, subtype="html")
    else:
        message.set_content(body or "")
    for filename, mime_type, content in _attachments(data):
        maintype, subtype = mime_type.split("/", 1)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    try:
        return message.as_bytes(policy=SMTP), bcc
    except (ValueError, TypeError) as exc:  # the email package refusing a header it was given
        raise PayloadError(f"the message cannot be written: {exc}") from None


def _answer(request: Request, email: Email) -> dict[str, Any]:
    """The received email as the emails entity set shows it, with ``EmailId`` (the
    organization service's DeliverIncomingEmailResponse) for clients ported from it."""
    loaded = email_list_queryset(Email.objects.filter(pk=email.pk)).get()
    return {
        "@odata.context": context_url(request, "emails/$entity"),
        **email_entity(loaded),
        "EmailId": guid_of(email.pk),
    }


class DeliverIncomingEmailView(DynamicsView):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_deliver_incoming_email",
        summary="DeliverIncomingEmail: record a received message (staff)",
        description=(
            "Builds the message from the parameters and receives it as every inbound route "
            "does (threading, dedupe by Message-ID, blocked mail, bounces). Answers the "
            "email (activityid, and EmailId); the same MessageId again answers the same email. "
            "Mail for a mailbox whose address is not approved is kept, not routed: 202 with "
            "the reason."
        ),
        request=OpenApiTypes.OBJECT,
        responses={
            **documented(403, 409, 413),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="kept, not recorded: why"),
        },
    )
    def post(self, request: Request) -> Response:
        if not signed_in_user(request).is_staff:
            raise PermissionDeniedError(
                "DeliverIncomingEmail needs a staff account (is_staff): it records mail from "
                "any sender into any mailbox, as the email router does"
            )
        data = action_parameters(request, known=PARAMETERS, action="DeliverIncomingEmail")
        raw, bcc = incoming_message(data)
        kept = inbound_message_store_or_hold(raw=raw, route=ROUTE, recipients=bcc)
        if kept.email is None:
            raise MessageHeld(
                f"the message is kept as inbound message #{kept.pk} ({kept.status}), not "
                f"recorded as an email: {kept.reason or 'not read yet'}",
                code=kept.code or MessageHeld.code,
            )
        return Response(_answer(request, kept.email))


class UnboundDeliverIncomingEmailView(DeliverIncomingEmailView):
    """The same action called unbound (``POST DeliverIncomingEmail``), as some clients do."""

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_deliver_incoming_email_unbound",
        summary="DeliverIncomingEmail, called unbound: as emails/...DeliverIncomingEmail",
        request=OpenApiTypes.OBJECT,
        responses={
            **documented(403, 409, 413),
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="kept, not recorded: why"),
        },
    )
    def post(self, request: Request) -> Response:
        return super().post(request)
