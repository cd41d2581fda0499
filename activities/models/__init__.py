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
from .inbound import InboundMessage, InboundStatus
from .rate import SendRateState
from .regarding import REGARDING_MODELS
from .suppression import SuppressedAddress, SuppressionReason
from .template import RecordType, Template

__all__ = [
    "REGARDING_MODELS",
    "STATE_OF_STATUS",
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
    "InboundMessage",
    "InboundStatus",
    "Priority",
    "RecordType",
    "SendRateState",
    "SkipReason",
    "SuppressedAddress",
    "SuppressionReason",
    "Template",
    "blob_path",
]
