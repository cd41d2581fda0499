"""Notifications to integrators (webhooks): the outbox, its delivery, the endpoints.

``emit`` writes outbox rows in the caller's transaction; ``deliver`` POSTs one signed
try and schedules the next; ``targets`` is the SSRF guard; ``payloads`` the formats;
``endpoints`` what staff do with endpoints (API and admin).
"""

from .deliver import (
    AttemptResult,
    webhook_body,
    webhook_delivery_attempt,
    webhook_signed_headers,
    webhook_sweep,
)
from .emit import (
    webhook_bulk_send_progress,
    webhook_delivery_event,
    webhook_email_received,
    webhook_email_status_changed,
    webhook_endpoints_active,
    webhook_endpoints_subscribed,
    webhook_event_emit,
)
from .endpoints import (
    new_secret,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_endpoints_reenable,
    webhook_events_retry,
    webhook_test_send,
)
from .payloads import (
    GENESYS_CAPABILITIES,
    GENESYS_STATE,
    genesys_email_id,
    genesys_email_uri,
    webhook_payload,
)
from .targets import Target, webhook_target_resolve, webhook_url_check

__all__ = [
    "GENESYS_CAPABILITIES",
    "GENESYS_STATE",
    "AttemptResult",
    "Target",
    "genesys_email_id",
    "genesys_email_uri",
    "new_secret",
    "webhook_body",
    "webhook_bulk_send_progress",
    "webhook_delivery_attempt",
    "webhook_delivery_event",
    "webhook_email_received",
    "webhook_email_status_changed",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_rotate_secret",
    "webhook_endpoint_update",
    "webhook_endpoints_active",
    "webhook_endpoints_reenable",
    "webhook_endpoints_subscribed",
    "webhook_event_emit",
    "webhook_events_retry",
    "webhook_payload",
    "webhook_signed_headers",
    "webhook_sweep",
    "webhook_target_resolve",
    "webhook_test_send",
    "webhook_url_check",
]
