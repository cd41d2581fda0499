"""Signal receivers of the email activity: one per signal, each only calls a service.

Connected in ``ActivitiesConfig.ready()``. anymail's signals fire from its webhook
views, routed (with the secret required) by ``activities.inbound_webhooks``.
"""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking

from .services.delivery_events import delivery_event_from_anymail
from .services.inbound import inbound_message_store

logger = logging.getLogger(__name__)


def store_inbound(sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's ``inbound`` signal: the message, as MIME bytes, to the one service."""
    email = inbound_message_store(raw=event.message.as_bytes())
    logger.info("stored an inbound %s webhook message as email %s", esp_name, email.pk)


def record_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's ``tracking`` signal: one delivery event, to the one service."""
    delivery_event_from_anymail(event=event, esp_name=esp_name)


def connect() -> None:
    inbound.connect(store_inbound, dispatch_uid="activities.receivers.store_inbound")
    tracking.connect(record_tracking, dispatch_uid="activities.receivers.record_tracking")
