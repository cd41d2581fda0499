from .attachment import ActivityMimeAttachment, AttachmentBlob, blob_path
from .bulk import BulkSend, BulkSendStatus, SkipReason
from .email import (
    STATE_OF_STATUS,
    Direction,
    Email,
    EmailEvent,
    EmailParty,
    EmailState,
    EmailStatus,
    EventKind,
    PartyRole,
    Priority,
)
from .rate import SendRateState
from .regarding import REGARDING_MODELS
from .suppression import SuppressedAddress, SuppressionReason
from .template import RecordType, Template
from .webhooks import (
    SUBSCRIBABLE_EVENT_TYPES,
    UNDELIVERED_STATES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventState,
    WebhookEventType,
    WebhookFormat,
)

__all__ = [
    "REGARDING_MODELS",
    "STATE_OF_STATUS",
    "SUBSCRIBABLE_EVENT_TYPES",
    "UNDELIVERED_STATES",
    "ActivityMimeAttachment",
    "AttachmentBlob",
    "BulkSend",
    "BulkSendStatus",
    "Direction",
    "Email",
    "EmailEvent",
    "EmailParty",
    "EmailState",
    "EmailStatus",
    "EventKind",
    "PartyRole",
    "Priority",
    "RecordType",
    "SendRateState",
    "SkipReason",
    "SuppressedAddress",
    "SuppressionReason",
    "Template",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookEventState",
    "WebhookEventType",
    "WebhookFormat",
    "blob_path",
]
