"""Reading Genesys' request bodies: names in any casing, types checked, each refusal
naming the parameter (``email.to[1]``) in Genesys' words. The rules stay in the
services; this only turns their JSON into the services' arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

from activities.addresses import Address, check_address, check_display_name
from activities.api.email_serializers import MAX_RECIPIENTS_PER_ROLE
from activities.errors import InvalidAddress
from crm.models import Queue

from .errors import InvalidParameter, MissingParameter, UnknownQueue
from .mime import Attachment, is_mime_type, read_message

OPERATION = "operationName"
SEND_PARAMETERS = ("operationName", "queueName", "email", "saveLAR", "userData")
EMAIL_PARAMETERS = ("subject", "body", "bodyAsPlainText", "mime", "to", "from", "cc", "bcc")
CREATE_PARAMETERS = ("operationName", "queueUri", "queueName", "parentId", "userData")
REPLY_PARAMETERS = (
    "operationName",
    "queueUri",
    "queueName",
    "bodyAsPlainText",
    "body",
    "mime",
    "userData",
    "subjectPrefix",
    "replyToStartLine",
    "quoteOriginal",
    "indentCharacter",
)
CANCEL_PARAMETERS = ("operationName", "reason", "userData")


def folded(data: Any, *, known: tuple[str, ...], where: str = "") -> dict[str, Any]:
    """``data`` (a JSON object) with each key in the documented spelling, whatever the
    casing the client sent (``QueueName``, ``queuename``); unknown keys are refused."""
    if not isinstance(data, dict):
        raise InvalidParameter(f"{where or 'the body'} must be a JSON object")
    spelling = {name.lower(): name for name in known}
    result: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in data.items():
        name = spelling.get(str(key).lower())
        if name is None:
            unknown.append(str(key)[:100])
        elif name in result:
            raise InvalidParameter(f"{where}{key} is given twice (in two casings)")
        else:
            result[name] = value
    if unknown:
        names = ", ".join(f"{where}{key}" for key in sorted(unknown)[:10])
        raise InvalidParameter(
            f"not a parameter of this operation: {names} (it takes {', '.join(known)})"
        )
    return result


def text(data: dict[str, Any], name: str, *, where: str = "", max_length: int | None = None):
    """The string at ``name``, ``None`` when absent or null."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{where}{name} must be a string", field=name)
    if "\x00" in value:  # as in /api/v1/: no text holds NUL (PostgreSQL cannot store it)
        raise InvalidParameter(f"{where}{name} must not hold NUL characters", field=name)
    if max_length is not None and len(value) > max_length:
        raise InvalidParameter(f"{where}{name} is longer than {max_length} characters", field=name)
    return value


def boolean(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParameter(f"{name} must be true or false", field=name)
    return value


def user_data(data: dict[str, Any]) -> None:
    """``userData``: accepted (key-value pairs), kept nowhere: we have no attached data."""
    value = data.get("userData")
    if value is not None and not isinstance(value, dict | list):
        raise InvalidParameter("userData must be an object of key-value pairs")


def queue_named(name: str, *, where: str = "queueName") -> Queue:
    queue = Queue.objects.filter(name__iexact=name.strip()).first() if name.strip() else None
    if queue is None:
        raise UnknownQueue(f"{where}: there is no queue named {name[:200]!r}", field=where)
    return queue


def queue_of_uri(uri: str) -> Queue:
    """``queueUri`` (``.../api/v2/queues/{id}``): its last segment is our queue's id or
    its name."""
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    by_id = last.isascii() and last.isdigit() and len(last) <= 18
    queue = Queue.objects.filter(pk=int(last)).first() if by_id else None
    return queue if queue is not None else queue_named(last, where="queueUri")


def sender_queue(data: dict[str, Any], *, required: bool) -> Queue | None:
    name = text(data, "queueName", max_length=200)
    uri = text(data, "queueUri", max_length=2000)
    if name is not None:
        return queue_named(name)
    if uri is not None:
        return queue_of_uri(uri)
    if required:
        raise MissingParameter("queueName is required: the queue the email is sent from")
    return None


def _address(value: str, name: str, *, label: str, role: str) -> Address:
    return Address(
        address=check_address(value, label=label, field=role),
        name=check_display_name(name, label=f"{label} name", field=role),
    )


def recipients(value: Any, *, where: str, role: str) -> list[Address]:
    """A recipient list as Genesys clients send it: a list of addresses (strings, or
    ``{"email", "name"}`` objects) or one comma-separated string. An entry without an
    address is refused, naming it."""
    if isinstance(value, str):
        items: list[Any] = [value] if value.strip() else []
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidParameter(
            f"{where} must be a list of addresses or a comma-separated string", field=role
        )
    found: list[Address] = []
    for item in items:
        label = f"{where}[{len(found)}]"
        if isinstance(item, dict):
            entry = folded(item, known=("email", "name"), where=f"{label}.")
            address = entry.get("email")
            name = entry.get("name") or ""
            if not isinstance(name, str) or (address is not None and not isinstance(address, str)):
                raise InvalidParameter(f"{label}: email and name must be strings", field=role)
            if not address or not address.strip():
                raise InvalidAddress(f'{label} has no address ("email" is empty)', field=role)
            found.append(_address(address, name, label=label, role=role))
        elif isinstance(item, str):
            if not item.strip():
                raise InvalidAddress(f"{label} has no address (an empty string)", field=role)
            for name, address in getaddresses([item]):
                label = f"{where}[{len(found)}]"
                if not address:
                    raise InvalidAddress(
                        f"{label} has no address ({item[:200]!r} names none)", field=role
                    )
                found.append(_address(address, name, label=label, role=role))
        else:
            raise InvalidParameter(f"{label} must be an address (a string or an object)")
        if len(found) > MAX_RECIPIENTS_PER_ROLE:
            raise InvalidParameter(f"{where} has more than {MAX_RECIPIENTS_PER_ROLE} addresses")
    return found


@dataclass
class EmailInput:
    """The ``email`` parameter of Send as the changes of ``email_update``."""

    changes: dict[str, Any] = field(default_factory=dict)
    sender_address: str = ""
    attachments: list[Attachment] = field(default_factory=list)


def _body_fields(data: dict[str, Any], *, where: str) -> tuple[dict[str, Any], list[Attachment]]:
    """``body``, ``bodyAsPlainText`` and ``mime`` as ``body_html``/``body_text`` (and
    what a whole message in ``mime`` says)."""
    changes: dict[str, Any] = {}
    attachments: list[Attachment] = []
    body = text(data, "body", where=where)
    plain = text(data, "bodyAsPlainText", where=where)
    mime = text(data, "mime", where=where)
    if mime is not None and mime.strip() and not is_mime_type(mime):
        message = read_message(mime)
        for role in ("to", "cc", "bcc", "reply_to"):
            if getattr(message, role):
                changes[role] = getattr(message, role)
        if message.headers:
            changes["headers"] = message.headers
        for flag in ("request_delivery_receipt", "request_read_receipt"):
            if getattr(message, flag):
                changes[flag] = True
        if message.subject is not None:
            changes["subject"] = message.subject
        if message.body_html is not None:
            changes["body_html"] = message.body_html
        if message.body_text is not None:
            changes["body_text"] = message.body_text
        if message.sender:
            changes["_from"] = message.sender
        attachments = message.attachments
    elif mime is not None and mime.strip().lower() == "text/plain" and body is not None:
        plain = body if plain is None else plain
        body = None
    if body is not None:
        changes["body_html"] = body
    if plain is not None:
        changes["body_text"] = plain
    return changes, attachments


def email_input(value: Any) -> EmailInput:
    """``email`` of Send: what it sets on the draft (absent keys keep the draft's)."""
    if value is None:
        raise MissingParameter("email is required: the subject, body and addresses to send")
    data = folded(value, known=EMAIL_PARAMETERS, where="email.")
    changes, attachments = _body_fields(data, where="email.")
    sender_address = changes.pop("_from", "")
    subject = text(data, "subject", where="email.")
    if subject is not None:
        changes["subject"] = subject
    for role in ("to", "cc", "bcc"):
        if data.get(role) is not None:
            changes[role] = recipients(data[role], where=f"email.{role}", role=role)
    given_from = data.get("from")
    if isinstance(given_from, dict):
        entry = folded(given_from, known=("email", "name"), where="email.from.")
        given_from = entry.get("email")
    if given_from is not None:
        if not isinstance(given_from, str):
            raise InvalidParameter("email.from must be an address", field="from")
        sender_address = given_from
    return EmailInput(changes=changes, sender_address=sender_address, attachments=attachments)


def reply_body(data: dict[str, Any]) -> tuple[dict[str, Any], list[Attachment]]:
    return _body_fields(data, where="")
