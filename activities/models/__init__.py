from .attachment import ActivityMimeAttachment, AttachmentBlob, blob_path
from .bulk import BulkSend, BulkSendStatus, SkipReason
from .delivery import DELIVERY_RANK, DeliveryEvent, DeliveryState, states_below
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
from .inbound import InboundMessage, InboundStatus
from .mailbox import (
    AFTER_STORE_OF_PROTOCOL,
    MailboxAfterStore,
    MailboxProtocol,
    MailboxSecurity,
    PolledMailbox,
    PolledMessage,
    PolledMessageOutcome,
)
from .rate import SendRateState
from .regarding import REGARDING_MODELS
from .suppression import SuppressedAddress, SuppressionReason
from .template import RecordType, Template
from .webhooks import (
    ENDPOINT_STATE_FIELDS,
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
    "DELIVERY_RANK",
    "AFTER_STORE_OF_PROTOCOL",
    "REGARDING_MODELS",
    "STATE_OF_STATUS",
    "SUBSCRIBABLE_EVENT_TYPES",
    "UNDELIVERED_STATES",
    "ActivityMimeAttachment",
    "AttachmentBlob",
    "BulkSend",
    "BulkSendStatus",
    "DeliveryEvent",
    "DeliveryState",
    "Direction",
    "Email",
    "EmailEvent",
    "EmailParty",
    "EmailState",
    "EmailStatus",
    "EventKind",
    "MailboxAfterStore",
    "MailboxProtocol",
    "MailboxSecurity",
    "PartyRole",
    "PolledMailbox",
    "PolledMessage",
    "PolledMessageOutcome",
    "InboundMessage",
    "InboundStatus",
    "Priority",
    "RecordType",
    "SendRateState",
    "SkipReason",
    "SuppressedAddress",
    "SuppressionReason",
    "Template",
    "WebhookDelivery",
    "WebhookEndpoint",
    "ENDPOINT_STATE_FIELDS",
    "WebhookEvent",
    "WebhookEventState",
    "WebhookEventType",
    "WebhookFormat",
    "blob_path",
    "states_below",
]
