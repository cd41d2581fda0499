"""Checks for addresses and header values: the guard against header injection.

Pure validation, below every other module of the app but the models and errors.
``label`` is how a refusal names the value in words ("cc address of contact Ann");
``field`` is the input it came from ("cc", "subject", "sender"), kept on the error so a
page can show the refusal next to that field.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from email import errors as email_errors
from email.headerregistry import AddressHeader, HeaderRegistry
from email.utils import formataddr, parseaddr
from typing import Protocol

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .errors import InvalidAddress, InvalidHeader

FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\x00")
MAX_ADDRESS_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 200
# Python's security releases added parseaddr(strict=...) (default True); older builds lack it.
_STRICT = {"strict": True} if "strict" in inspect.signature(parseaddr).parameters else {}


@dataclass(frozen=True)
class Address:
    address: str
    name: str = ""

    def __str__(self) -> str:
        return formataddr((self.name, self.address)) if self.name else self.address


class Party(Protocol):
    """Anything with an ``address`` and a ``name`` (an ``EmailParty``, an ``Address``)."""

    @property
    def address(self) -> str: ...

    @property
    def name(self) -> str: ...


def party_text(party: Party) -> str:
    """A party of an email (anything with ``address`` and ``name``) as header text."""
    return str(Address(address=party.address, name=party.name))


def has_forbidden_chars(value: str) -> bool:
    return any(ch in value for ch in FORBIDDEN_HEADER_CHARS)


def check_header_value(
    value: str, *, label: str, max_length: int | None = None, field: str | None = None
) -> str:
    if has_forbidden_chars(value):
        raise InvalidHeader(
            f"{label} must not contain line breaks (CR, LF) or NUL characters", field=field
        )
    if max_length is not None and len(value) > max_length:
        raise InvalidHeader(f"{label} is longer than {max_length} characters", field=field)
    return value


def _unsafe(label: str, value: str, field: str | None) -> InvalidAddress:
    return InvalidAddress(
        f"{label} {value!r} contains line breaks (CR, LF) or NUL characters", field=field
    )


def check_address(address: str, *, label: str = "address", field: str | None = None) -> str:
    """Return the address stripped; raise ``InvalidAddress`` naming the cause."""
    if has_forbidden_chars(address):
        raise _unsafe(label, address, field)
    address = address.strip()
    if not address:
        raise InvalidAddress(f"{label} is empty", field=field)
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"{label} is longer than {MAX_ADDRESS_LENGTH} characters", field=field)
    try:
        validate_email(address)
    except ValidationError as exc:
        raise InvalidAddress(
            f"{label} {address!r} is not a valid email address", field=field
        ) from exc
    return address


def check_display_name(name: str, *, label: str = "display name", field: str | None = None) -> str:
    if has_forbidden_chars(name):
        raise _unsafe(label, name, field)
    name = name.strip()
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidAddress(
            f"{label} is longer than {MAX_DISPLAY_NAME_LENGTH} characters", field=field
        )
    return name


_HEADERS = HeaderRegistry()


def _addresses_in(value: str) -> tuple[int, bool]:
    """How many addresses the standard library's header parser (RFC 5322, not
    ``parseaddr``, which keeps the first and drops the rest) finds in ``value``, and
    whether it found the text malformed."""
    try:
        header = _HEADERS("To", value)
    except (email_errors.HeaderParseError, IndexError, ValueError):  # the parser's own
        return 0, True
    invalid = any(isinstance(d, email_errors.InvalidHeaderDefect) for d in header.defects)
    assert isinstance(header, AddressHeader)  # "To" is an address header in the registry
    return len(header.addresses), invalid


def parse_address(value: str, *, label: str = "address", field: str | None = None) -> Address:
    """Parse ``"Ann Lee <ann@example.com>"`` or a bare address, strictly: one address,
    or a refusal (a string holding several is never cut down to its first)."""
    if has_forbidden_chars(value):
        raise _unsafe(label, value, field)
    name, address = parseaddr(value, **_STRICT)
    if not address or ("<" in value and ">" not in value):
        raise InvalidAddress(f"{label} {value!r} is not a valid email address", field=field)
    parsed = Address(
        address=check_address(address, label=label, field=field),
        name=check_display_name(name, field=field),
    )
    count, invalid = _addresses_in(value)
    if count > 1:
        raise InvalidAddress(
            f"{label} {value!r} holds {count} addresses: give each recipient on its own",
            field=field,
        )
    if invalid:
        raise InvalidAddress(
            f"{label} {value!r} is not one valid email address (several addresses, or text "
            f"after the address?): give each recipient on its own",
            field=field,
        )
    return parsed


# --- custom headers ----------------------------------------------------------------------

# The headers the application writes itself (addressing, threading, MIME structure,
# priority, receipts, unsubscribe, tracing and signatures): a custom header never sets
# one of them. Matched case-insensitively; the prefixes cover whole families.
OWNED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Return-Path",
        "Received",
        "Return-Receipt-To",
        "Disposition-Notification-To",
        "Disposition-Notification-Options",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "X-Priority",
        "Importance",
        "Priority",
        "DKIM-Signature",
        "Authentication-Results",
        "Delivered-To",
    )
)
OWNED_HEADER_PREFIXES = ("content-", "resent-", "arc-")
MAX_CUSTOM_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 76
# RFC 5322 2.1.1: a line is at most 998 characters; the name, ": " and the value on one.
MAX_HEADER_LINE_LENGTH = 998


def _header_name_ok(name: str) -> bool:
    # RFC 5322 3.6.8: printable US-ASCII but the colon, at least one character.
    return bool(name) and all(33 <= ord(char) <= 126 and char != ":" for char in name)


def check_custom_headers(
    headers: object, *, field: str = "headers", allowed_prefix: str = ""
) -> list[dict[str, str]]:
    """Custom headers as given (``{"name", "value"}`` objects or ``(name, value)`` pairs),
    checked and in the stored form: a list of ``{"name": ..., "value": ...}``.

    Refused, naming the header: a name that is not an RFC 5322 field name, one of the
    headers the application writes itself (``OWNED_HEADERS``), a name given twice, a
    value with CR, LF or NUL, a line longer than 998 characters, more than
    ``MAX_CUSTOM_HEADERS``. ``allowed_prefix`` ("X-" for Microsoft Graph) narrows the
    names further.
    """
    if headers is None:
        return []
    if isinstance(headers, str | bytes) or not isinstance(headers, list | tuple):
        raise InvalidHeader("custom headers must be a list of name and value pairs", field=field)
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidHeader(
            f"at most {MAX_CUSTOM_HEADERS} custom headers; {len(headers)} were given", field=field
        )
    checked: list[dict[str, str]] = []
    seen: set[str] = set()
    for position, item in enumerate(headers, start=1):
        if isinstance(item, dict):
            name, value = item.get("name"), item.get("value")
        elif isinstance(item, list | tuple) and len(item) == 2:
            name, value = item
        else:
            raise InvalidHeader(
                f"custom header {position} must have a name and a value", field=field
            )
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidHeader(
                f"custom header {position}: the name and the value must be text", field=field
            )
        name = name.strip()
        if not _header_name_ok(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            raise InvalidHeader(
                f"custom header {position}: {name[:80]!r} is not a header name (printable "
                f"ASCII without spaces or colons, at most {MAX_HEADER_NAME_LENGTH} characters)",
                field=field,
            )
        lowered = name.lower()
        if lowered in OWNED_HEADERS or lowered.startswith(OWNED_HEADER_PREFIXES):
            raise InvalidHeader(
                f"the header {name} is written by the application and cannot be set as a "
                "custom header",
                field=field,
            )
        if allowed_prefix and not lowered.startswith(allowed_prefix.lower()):
            raise InvalidHeader(
                f"the header {name} is refused: only names starting with {allowed_prefix} "
                "may be set",
                field=field,
            )
        if lowered in seen:
            raise InvalidHeader(f"the header {name} is given twice", field=field)
        seen.add(lowered)
        check_header_value(
            value,
            label=f"the header {name}",
            max_length=MAX_HEADER_LINE_LENGTH - len(name) - 2,
            field=field,
        )
        checked.append({"name": name, "value": value})
    return checked


def check_custom_header_lines(text: str, *, field: str = "headers") -> list[dict[str, str]]:
    """Custom headers typed one ``Name: value`` a line (the compose page, the admin),
    checked as ``check_custom_headers`` checks them; blank lines are skipped."""
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidHeader(f"line {number}: write a header as “Name: value”", field=field)
        pairs.append((name.strip(), value.strip()))
    return check_custom_headers(pairs, field=field)


def custom_header_lines(headers: list[dict[str, str]]) -> str:
    """Stored custom headers as typed on the compose page and in the admin."""
    return "\n".join(f"{header['name']}: {header['value']}" for header in headers or [])
