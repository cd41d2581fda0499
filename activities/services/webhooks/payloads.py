"""The bodies of notifications, in the format each endpoint chose.

``standard``: the Standard Webhooks shape, ``{"type", "timestamp", "data"}``.

``genesys``: email events as Genesys Cloud's email StatusChange notification,
``{"notificationType": "StatusChange", "messageType": "EmailStateChangeMessage",
"timestamp", "email": {"id", "state", "previousState", "subject", "from", "to", ...}}``,
with our statuses named as the states in ``GENESYS_STATE`` (docs/api.md). Events that
are not about one email (bulk progress, the test event) keep the standard shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...models import EmailStatus, WebhookEventType, WebhookFormat

# Our statuses as Genesys names the states of an email.
GENESYS_STATE: dict[str, str] = {
    EmailStatus.DRAFT: "Draft",
    EmailStatus.PENDING_SEND: "Queued",
    EmailStatus.SENDING: "Sending",
    EmailStatus.SENT: "Sent",
    EmailStatus.FAILED: "Failed",
    EmailStatus.RECEIVED: "Received",
    EmailStatus.COMPLETED: "Completed",
    EmailStatus.CANCELED: "Canceled",
}

_EMAIL_EVENTS = (
    WebhookEventType.EMAIL_STATUS_CHANGED,
    WebhookEventType.EMAIL_RECEIVED,
    WebhookEventType.EMAIL_DELIVERY_EVENT,
)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _genesys_state(value: str) -> str:
    return GENESYS_STATE.get(value, value.replace("_", " ").title().replace(" ", ""))


def _genesys(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    email: dict[str, Any] = {
        "id": str(data["id"]),
        "subject": data.get("subject", ""),
        "from": {"email": data.get("from_address", "")},
        "to": [{"email": address} for address in data.get("recipients", [])],
        "direction": "inbound" if data.get("direction") == "incoming" else "outbound",
        "messageId": data.get("message_id", ""),
    }
    if event_type == WebhookEventType.EMAIL_DELIVERY_EVENT:
        # A recipient's event: its name as the state, the email's status beside it.
        email["state"] = _genesys_state(str(data.get("event", "")))
        email["recipient"] = {"email": data.get("recipient", "")}
        email["emailState"] = _genesys_state(str(data.get("status", "")))
    else:
        email["state"] = _genesys_state(str(data.get("to", data.get("status", ""))))
        if data.get("from"):
            email["previousState"] = _genesys_state(str(data["from"]))
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
