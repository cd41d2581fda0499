"""Checks for addresses and header values: the guard against header injection."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from email.utils import formataddr, parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from ..errors import InvalidAddress, InvalidHeader

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


def has_forbidden_chars(value: str) -> bool:
    return any(ch in value for ch in FORBIDDEN_HEADER_CHARS)


def check_header_value(value: str, *, field: str, max_length: int | None = None) -> str:
    if has_forbidden_chars(value):
        raise InvalidHeader(f"{field} must not contain line breaks (CR, LF) or NUL characters")
    if max_length is not None and len(value) > max_length:
        raise InvalidHeader(f"{field} is longer than {max_length} characters")
    return value


def check_address(address: str, *, field: str = "address") -> str:
    """Return the address stripped; raise ``InvalidAddress`` naming the cause."""
    if has_forbidden_chars(address):
        raise InvalidAddress(f"{field} {address!r} contains line breaks (CR, LF) or NUL characters")
    address = address.strip()
    if not address:
        raise InvalidAddress(f"{field} is empty")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"{field} is longer than {MAX_ADDRESS_LENGTH} characters")
    try:
        validate_email(address)
    except ValidationError as exc:
        raise InvalidAddress(f"{field} {address!r} is not a valid email address") from exc
    return address


def check_display_name(name: str, *, field: str = "display name") -> str:
    if has_forbidden_chars(name):
        raise InvalidAddress(f"{field} {name!r} contains line breaks (CR, LF) or NUL characters")
    name = name.strip()
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidAddress(f"{field} is longer than {MAX_DISPLAY_NAME_LENGTH} characters")
    return name


def parse_address(value: str, *, field: str = "address") -> Address:
    """Parse ``"Ann Lee <ann@example.com>"`` or a bare address, strictly."""
    if has_forbidden_chars(value):
        raise InvalidAddress(f"{field} {value!r} contains line breaks (CR, LF) or NUL characters")
    name, address = parseaddr(value, **_STRICT)
    if not address or ("<" in value and ">" not in value):
        raise InvalidAddress(f"{field} {value!r} is not a valid email address")
    return Address(address=check_address(address, field=field), name=check_display_name(name))
