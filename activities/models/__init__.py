from .attachment import ActivityMimeAttachment, AttachmentBlob, blob_path
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
from .template import RecordType, Template

__all__ = [
    "STATE_OF_STATUS",
    "ActivityMimeAttachment",
    "AttachmentBlob",
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
    "Template",
    "blob_path",
]
