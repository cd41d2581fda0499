"""The bodies of notifications, in the format each endpoint chose.

``standard``: the Standard Webhooks shape, ``{"type", "timestamp", "data"}``.

``genesys``: email events as the email StatusChange notification of Genesys' Web
Services API (``/api/v2/me/emails``, "EmailStateChangeMessage"): ``{"notificationType":
"StatusChange", "messageType": "EmailStateChangeMessage", "email": {"id", "state",
"uri", "capabilities", "from", "to", "cc", "subject"}}`` as their samples and Email
resource show it (``from`` a string, ``to``/``cc`` lists of strings, the id in
``genesys_email_id``'s form), with the states Genesys documents (``GENESYS_STATE``:
Composing, Completed, Invited) and, beside them, our exact status (``crmStatus``,
``previousCrmStatus``), which those few states cannot tell apart (docs/api.md). Events
that are not about one email (bulk progress, the test event) keep the standard shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...models import EmailStatus, WebhookEventType, WebhookFormat

# Our statuses as the states Genesys documents for an email interaction (Invited and
# Processing inbound, Composing outbound, Completed): an email that can still be edited
# and sent is being composed; one that left our hands, or was closed, is completed.
GENESYS_STATE: dict[str, str] = {
    EmailStatus.DRAFT: "Composing",
    EmailStatus.FAILED: "Composing",
    EmailStatus.PENDING_SEND: "Completed",
    EmailStatus.SENDING: "Completed",
    EmailStatus.SENT: "Completed",
    EmailStatus.COMPLETED: "Completed",
    EmailStatus.CANCELED: "Completed",
    EmailStatus.RECEIVED: "Invited",
}

# What the Genesys adapter (compat.genesys) lets a caller do next, per status: the
# email's "capabilities".
GENESYS_CAPABILITIES: dict[str, list[str]] = {
    EmailStatus.DRAFT: ["Send", "Cancel"],
    EmailStatus.FAILED: ["Send"],
    EmailStatus.PENDING_SEND: ["Cancel"],
    EmailStatus.SENDING: [],
    EmailStatus.SENT: ["Reply", "ReplyAll"],
    EmailStatus.RECEIVED: ["Reply", "ReplyAll"],
    EmailStatus.COMPLETED: ["Reply", "ReplyAll"],
    EmailStatus.CANCELED: [],
}

_EMAIL_EVENTS = (
    WebhookEventType.EMAIL_STATUS_CHANGED,
    WebhookEventType.EMAIL_RECEIVED,
    WebhookEventType.EMAIL_DELIVERY_EVENT,
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def genesys_email_id(pk: int) -> str:
    """An email's id as Genesys' clients see it: 16 hex digits, like their interaction
    ids (``0071023821aec011``); email 17 is ``0000000000000011``."""
    return f"{pk:016x}"


def genesys_email_uri(pk: int) -> str:
    return f"/api/v2/me/emails/{genesys_email_id(pk)}"


def _genesys(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    status = str(data.get("to") or data.get("status") or "")
    if event_type == WebhookEventType.EMAIL_DELIVERY_EVENT:
        status = str(data.get("status", ""))
    email: dict[str, Any] = {
        "id": genesys_email_id(int(data["id"])),
        "state": GENESYS_STATE.get(status, "Completed"),
        "uri": genesys_email_uri(int(data["id"])),
        "capabilities": list(GENESYS_CAPABILITIES.get(status, [])),
        "from": data.get("from_address", ""),
        "to": list(data.get("recipients", [])),
        "cc": list(data.get("cc", [])),
        "subject": data.get("subject", ""),
        "crmStatus": status,
        "direction": "inbound" if data.get("direction") == "incoming" else "outbound",
        "messageId": data.get("message_id", ""),
    }
    if event_type == WebhookEventType.EMAIL_DELIVERY_EVENT:
        email["deliveryEvent"] = str(data.get("event", ""))
        email["recipient"] = data.get("recipient", "")
    elif data.get("from"):
        email["previousCrmStatus"] = str(data["from"])
    return {
        "notificationType": "StatusChange",
        "messageType": "EmailStateChangeMessage",
        "timestamp": iso(at),
        "eventType": event_type,
        "email": email,
    }


def webhook_payload(
    *, format: str, event_type: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """The JSON body of one notification for an endpoint of ``format``."""
    if format == WebhookFormat.GENESYS and event_type in _EMAIL_EVENTS:
        return _genesys(event_type, data, at)
    return {"type": event_type, "timestamp": iso(at), "data": data}
