"""The ``email`` and ``activitymimeattachment`` entity types <-> our records.

Reading: an email (from ``email_list_queryset``) becomes the entity JSON with
Dataverse's property names and numbers. Writing: an entity body becomes the keyword
arguments of ``email_create`` / ``email_update``; only shapes and names are checked
here (a 400 naming the property), every rule stays in the services.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import models

from activities.models import (
    ActivityMimeAttachment,
    Direction,
    Email,
    EmailParty,
    EmailStatus,
    PartyRole,
    Priority,
    Template,
)
from crm.models import Account, Contact, Queue, User

from .ids import guid_of
from .odata import PayloadError, UnknownProperty, parse_bind

ENTITY = "email"
NS = "Microsoft.Dynamics.CRM"
LOOKUP_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"

# Our status -> Dataverse's (statecode, statuscode): state 0 Open, 1 Completed,
# 2 Canceled; status 1 Draft, 2 Completed, 3 Sent, 4 Received, 5 Canceled,
# 6 Pending Send, 7 Sending, 8 Failed.
STATE_STATUS: dict[str, tuple[int, int]] = {
    EmailStatus.DRAFT: (0, 1),
    EmailStatus.FAILED: (0, 8),
    EmailStatus.COMPLETED: (1, 2),
    EmailStatus.SENT: (1, 3),
    EmailStatus.RECEIVED: (1, 4),
    EmailStatus.PENDING_SEND: (1, 6),
    EmailStatus.SENDING: (1, 7),
    EmailStatus.CANCELED: (2, 5),
}
STATUSES_OF_CODE: dict[int, list[str]] = {code: [ours] for ours, (_, code) in STATE_STATUS.items()}
STATE_OF_CODE = {0: "open", 1: "completed", 2: "canceled"}
STATE_OF_CODE_NAMES = (0, 1, 2)
PRIORITY_CODE = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}
PRIORITY_OF_CODE = {code: ours for ours, code in PRIORITY_CODE.items()}

# participationtypemask: 1 sender, 2 to, 3 cc, 4 bcc.
MASK_OF_ROLE = {PartyRole.FROM: 1, PartyRole.TO: 2, PartyRole.CC: 3, PartyRole.BCC: 4}
ROLE_OF_MASK = {mask: role for role, mask in MASK_OF_ROLE.items()}

# The entity sets a lookup may name, with their logical names and our models.
RECORD_SETS: dict[str, tuple[str, type[models.Model]]] = {
    "contacts": ("contact", Contact),
    "accounts": ("account", Account),
    "systemusers": ("systemuser", User),
    "queues": ("queue", Queue),
}
LOGICAL_OF_MODEL = {model: logical for logical, model in RECORD_SETS.values()}
REGARDING_BINDS = {
    f"regardingobjectid_{logical}@odata.bind": logical for logical, _ in RECORD_SETS.values()
}
PARTY_BINDS = {
    "partyid_contact@odata.bind": "contact",
    "partyid_systemuser@odata.bind": "systemuser",
    "partyid_queue@odata.bind": "queue",
    "partyid_account@odata.bind": "account",
}
ENTITY_SET_OF_LOGICAL = {logical: name for name, (logical, _) in RECORD_SETS.items()}

# What every email entity shows (``$select`` picks among these).
EMAIL_PROPERTIES = (
    "activityid",
    "subject",
    "description",
    "statecode",
    "statuscode",
    "directioncode",
    "prioritycode",
    "trackingtoken",
    "messageid",
    "inreplyto",
    "sender",
    "torecipients",
    "createdon",
    "modifiedon",
    "senton",
    "scheduledstart",
    "attachmentcount",
    "_regardingobjectid_value",
    "_templateid_value",
    "_emailsender_value",
    "readreceiptrequested",
    "deliveryreceiptrequested",
)
EMAIL_ORDERING = {
    "createdon": "created_at",
    "modifiedon": "modified_at",
    "senton": "sent_at",
    "subject": "subject",
    "activityid": "pk",
    "statuscode": "status",
}
EMAIL_EXPANDABLE = ("email_activity_parties",)


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def email_etag(email: Email) -> str:
    """``@odata.etag``: the lease token (so a claim's etag fences its report) and the
    last change, in microseconds."""
    version = int(email.modified_at.timestamp() * 1_000_000) if email.modified_at else 0
    return f'W/"{email.lease_token}.{version}"'


def lease_token_of_etag(etag: str) -> int | None:
    text = etag.strip().removeprefix("W/").strip('"')
    token, _, _ = text.partition(".")
    return int(token) if token.isdigit() and len(token) < 19 else None


def _record_lookup(prefix: str, record: models.Model | None) -> dict[str, Any]:
    if record is None:
        return {prefix: None}
    logical = LOGICAL_OF_MODEL.get(type(record), type(record).__name__.lower())
    return {prefix: guid_of(record.pk), f"{prefix}{LOOKUP_NAME}": logical}


def party_entity(party: EmailParty) -> dict[str, Any]:
    record = party.contact or party.user or party.queue
    return {
        "activitypartyid": guid_of(party.pk),
        "participationtypemask": MASK_OF_ROLE[PartyRole(party.role)],
        "addressused": party.address,
        **_record_lookup("_partyid_value", record),
    }


def email_entity(
    email: Email, *, select: Iterable[str] | None = None, expand: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``email`` entity of one email (loaded through ``email_list_queryset``).

    Reply-To parties are not shown: Dataverse's activity parties have no such type.
    """
    state, status = STATE_STATUS[EmailStatus(email.status)]
    parties = [p for p in email.parties.all() if p.role in MASK_OF_ROLE]
    to = [p.address for p in parties if p.role == PartyRole.TO]
    sender = email.sender
    values: dict[str, Any] = {
        "activityid": guid_of(email.pk),
        "subject": email.subject,
        "description": email.body_html,
        "statecode": state,
        "statuscode": status,
        "directioncode": email.direction == Direction.OUTGOING,
        "prioritycode": PRIORITY_CODE.get(Priority(email.priority), 1),
        "trackingtoken": email.tracking_token or None,
        "messageid": email.message_id or None,
        "inreplyto": email.in_reply_to or None,
        "sender": email.from_address or (sender.email if sender else None) or None,
        "torecipients": ";".join(to) or None,
        "createdon": _time(email.created_at),
        "modifiedon": _time(email.modified_at),
        "senton": _time(email.sent_at),
        "scheduledstart": _time(email.scheduled_at),
        "attachmentcount": len(email.attachments.all()),
        **_record_lookup("_regardingobjectid_value", email.regarding),
        **_record_lookup("_templateid_value", email.template),
        **_record_lookup("_emailsender_value", sender),
        "readreceiptrequested": email.request_read_receipt,
        "deliveryreceiptrequested": email.request_delivery_receipt,
    }
    if values.get(f"_templateid_value{LOOKUP_NAME}"):
        values[f"_templateid_value{LOOKUP_NAME}"] = "template"
    chosen = set(select) if select is not None else None
    body: dict[str, Any] = {"@odata.etag": email_etag(email)}
    for name, value in values.items():
        base = name.split("@", 1)[0]
        if chosen is None or base in chosen:
            body[name] = value
    if chosen is not None and "activityid" not in chosen:
        body["activityid"] = values["activityid"]  # the key is always there, as in Dataverse
    if "email_activity_parties" in expand:
        body["email_activity_parties"] = [party_entity(p) for p in parties]
    return body


# --- writing --------------------------------------------------------------------------

# Properties an email body may set, with the email_create/email_update keyword each is.
_WRITABLE = {
    "subject": "subject",
    "description": "body_html",
    "prioritycode": "priority",
    "trackingtoken": "tracking_token",
    "inreplyto": "in_reply_to",
    "scheduledstart": "scheduled_at",
    "readreceiptrequested": "request_read_receipt",
    "deliveryreceiptrequested": "request_delivery_receipt",
}
# Read-only properties a client may send back unchanged (ignored, as Dataverse does).
_IGNORED = {
    "activityid",
    "@odata.type",
    "@odata.etag",
    "@odata.context",
    "statecode",
    "directioncode",
    "createdon",
    "modifiedon",
    "senton",
    "messageid",
    "sender",
    "torecipients",
    "attachmentcount",
    "activitytypecode",
}


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body[name]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _record_of(entity_set: str, pk: int, *, prop: str) -> models.Model:
    if entity_set not in RECORD_SETS:
        raise PayloadError(
            f"{prop}: {entity_set} is not a record type an email can name "
            f"({', '.join(RECORD_SETS)})"
        )
    model = RECORD_SETS[entity_set][1]
    record = model._default_manager.filter(pk=pk).first()
    if record is None:
        raise PayloadError(f"{prop}: there is no {entity_set} record {guid_of(pk)}")
    return record


def _bound_record(value: Any, *, prop: str, logical: str) -> models.Model:
    entity_set, pk = parse_bind(value, prop=prop)
    expected = ENTITY_SET_OF_LOGICAL[logical]
    if entity_set != expected:
        raise PayloadError(f"{prop}: expected a reference to {expected}, not {entity_set}")
    return _record_of(entity_set, pk, prop=prop)


def _party_input(index: int, party: Any) -> tuple[str, Any]:
    """One activity party -> (our role, a PartyInput or, for the sender, the record)."""
    label = f"email_activity_parties[{index}]"
    if not isinstance(party, dict):
        raise PayloadError(f"{label} must be an object")
    mask = party.get("participationtypemask")
    if isinstance(mask, bool) or not isinstance(mask, int) or mask not in ROLE_OF_MASK:
        raise PayloadError(
            f"{label}: participationtypemask must be 1 (from), 2 (to), 3 (cc) or 4 (bcc), "
            f"not {mask!r}"
        )
    role = ROLE_OF_MASK[mask]
    label = f"{label} ({role})"
    for key in party:
        if key not in PARTY_BINDS and key not in (
            "participationtypemask",
            "addressused",
            "@odata.type",
        ):
            raise UnknownProperty(key.split("@", 1)[0], "activityparty")
    binds = [key for key in PARTY_BINDS if key in party]
    if len(binds) > 1:
        raise PayloadError(f"{label}: name one party (partyid_*@odata.bind), not {len(binds)}")
    address = party.get("addressused")
    if address is not None and not isinstance(address, str):
        raise PayloadError(f"{label}: addressused must be a string")
    record = (
        _bound_record(party[binds[0]], prop=f"{label} {binds[0]}", logical=PARTY_BINDS[binds[0]])
        if binds
        else None
    )
    if role == PartyRole.FROM:
        if not isinstance(record, User | Queue):
            raise PayloadError(
                f"{label}: the sender must be a systemuser or a queue "
                "(partyid_systemuser@odata.bind or partyid_queue@odata.bind)"
            )
        return role, record
    if record is None:
        if not (address or "").strip():
            raise PayloadError(
                f"{label}: the recipient has no address: give addressused or a "
                "partyid_contact/systemuser/queue@odata.bind"
            )
        return role, {"address": address}
    if isinstance(record, Account):
        if not (address or record.email):
            raise PayloadError(f"{label}: the account {record} has no email address")
        return role, {"address": address or record.email, "name": record.name}
    kind = {Contact: "contact", User: "user", Queue: "queue"}[type(record)]
    return role, {kind: record, **({"address": address} if address else {})}


def email_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """The keyword arguments of ``email_create`` (or ``email_update``) an entity body means.

    Parties are replaced per role only for the roles the body names (on update).
    """
    if not isinstance(body, dict):
        raise PayloadError("the request body must be a JSON object (an email entity)")
    changes: dict[str, Any] = {}
    for name in body:
        if name in _WRITABLE or name in _IGNORED or name in REGARDING_BINDS:
            continue
        if name in ("email_activity_parties", "statuscode"):
            continue
        if name.endswith("@odata.bind") or name.startswith("@") or "@" in name:
            raise UnknownProperty(name.split("@", 1)[0], ENTITY)
        raise UnknownProperty(name, ENTITY)
    for name, keyword in _WRITABLE.items():
        if name not in body:
            continue
        if name == "prioritycode":
            code = body[name]
            if not isinstance(code, int) or isinstance(code, bool) or code not in PRIORITY_OF_CODE:
                raise PayloadError(
                    f"prioritycode must be 0 (low), 1 (normal) or 2 (high), not {code!r}"
                )
            changes[keyword] = PRIORITY_OF_CODE[code]
        elif name == "scheduledstart":
            changes[keyword] = _datetime(body[name], prop=name)
        elif name in ("readreceiptrequested", "deliveryreceiptrequested"):
            if not isinstance(body[name], bool):
                raise PayloadError(f"{name} must be true or false")
            changes[keyword] = body[name]
        else:
            changes[keyword] = _text(body, name)
    state = body.get("statecode")
    if state is not None and (isinstance(state, bool) or state not in STATE_OF_CODE_NAMES):
        raise PayloadError(f"statecode must be 0, 1 or 2, not {state!r}")
    if body.get("messageid") is not None and not isinstance(body["messageid"], str):
        raise PayloadError("messageid must be a string")
    regarding = [key for key in REGARDING_BINDS if key in body]
    if len(regarding) > 1:
        raise PayloadError("name one regarding record (regardingobjectid_*@odata.bind)")
    if regarding:
        key = regarding[0]
        value = body[key]
        changes["regarding"] = (
            None if value is None else _bound_record(value, prop=key, logical=REGARDING_BINDS[key])
        )
    if "email_activity_parties" in body:
        parties = body["email_activity_parties"]
        if not isinstance(parties, list):
            raise PayloadError("email_activity_parties must be an array of activity parties")
        roles: dict[str, list[Any]] = {PartyRole.TO: [], PartyRole.CC: [], PartyRole.BCC: []}
        senders = []
        for index, party in enumerate(parties):
            role, value = _party_input(index, party)
            if role == PartyRole.FROM:
                senders.append(value)
            else:
                roles[role].append(value)
        if len(senders) > 1:
            raise PayloadError("email_activity_parties: an email has one sender (mask 1)")
        if senders:
            changes["sender"] = senders[0]
        # The collection replaces the recipients (on update too), as in Dataverse.
        for role, values in roles.items():
            changes[str(role)] = values
    return changes


def _datetime(value: Any, *, prop: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{prop} must be a date and time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{prop}: {value!r} is not a date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)  # as the database stores it
    except (OverflowError, ValueError):
        raise PayloadError(f"{prop}: {value!r} is outside the years 1-9999 in UTC") from None


# --- attachments ----------------------------------------------------------------------

ATTACHMENT_ENTITY = "activitymimeattachment"
ATTACHMENT_PROPERTIES = (
    "activitymimeattachmentid",
    "filename",
    "mimetype",
    "filesize",
    "subject",
    "attachmentnumber",
    "objecttypecode",
    "body",
    "_objectid_value",
    "_attachmentid_value",
    "attachmentcontentid",
)


def attachment_entity(
    attachment: ActivityMimeAttachment, *, select: Iterable[str] | None = None, body: str | None
) -> dict[str, Any]:
    owner: Email | Template | None = attachment.email or attachment.template
    kind = "email" if attachment.email_id else "template"
    values: dict[str, Any] = {
        "activitymimeattachmentid": guid_of(attachment.pk),
        "filename": attachment.filename,
        "mimetype": attachment.mime_type,
        "filesize": attachment.blob.size,
        "subject": attachment.subject or None,
        "attachmentnumber": attachment.position,
        "objecttypecode": kind,
        "_objectid_value": guid_of(owner.pk) if owner else None,
        f"_objectid_value{LOOKUP_NAME}": kind,
        "_attachmentid_value": guid_of(attachment.blob_id),
        f"_attachmentid_value{LOOKUP_NAME}": "attachment",
        "attachmentcontentid": attachment.content_id or None,
    }
    chosen = set(select) if select is not None else None
    out: dict[str, Any] = {}
    for name, value in values.items():
        if chosen is None or name.split("@", 1)[0] in chosen:
            out[name] = value
    out.setdefault("activitymimeattachmentid", values["activitymimeattachmentid"])
    if body is not None:
        out["body"] = body
    return out


def encode_body(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
