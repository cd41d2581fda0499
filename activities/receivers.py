"""Signal receivers of the email activity: one per signal, each only calls a service.

Connected in ``ActivitiesConfig.ready()``. anymail's signals fire from its webhook
views, routed (with the secret required) by ``activities.inbound_webhooks``; crm's
``email_address_approved`` from its approval service (crm never imports this app).
"""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking

from crm.models import Queue, User
from crm.signals import email_address_approved

from .services.delivery_events import delivery_event_from_anymail
from .services.inbound import inbound_message_store_or_hold
from .services.inbound_release import inbound_release_after_approval

logger = logging.getLogger(__name__)


def store_inbound(sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's ``inbound`` signal: the message, as MIME bytes, to the one service
    (a message kept but refused is a 400 naming the reason)."""
    recipient = getattr(event.message, "envelope_recipient", None)
    message = inbound_message_store_or_hold(
        raw=event.message.as_bytes(),
        route=f"webhook:{esp_name.lower()}",
        recipients=[recipient] if isinstance(recipient, str) and recipient else [],
    )
    logger.info("inbound %s webhook message: %s", esp_name, message)


def record_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's ``tracking`` signal: one delivery event, to the one service."""
    delivery_event_from_anymail(event=event, esp_name=esp_name)


def release_approved_mailbox(sender: Any, mailbox: User | Queue, **kwargs: Any) -> None:
    """An address approved: what its mailbox blocked is released after the commit."""
    inbound_release_after_approval(mailbox=mailbox)


def connect() -> None:
    inbound.connect(store_inbound, dispatch_uid="activities.receivers.store_inbound")
    tracking.connect(record_tracking, dispatch_uid="activities.receivers.record_tracking")
    email_address_approved.connect(
        release_approved_mailbox, dispatch_uid="activities.receivers.release_approved_mailbox"
    )
