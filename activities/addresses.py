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
