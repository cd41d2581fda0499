"""Genesys' clients name an email by an interaction id of 16 hex digits
(``0071023821aec011``); ours are integers. Email 17 is ``0000000000000011``
(``activities.services.webhooks.genesys_email_id``, the id its notifications carry), so
the mapping needs no table. Our decimal id (``17``) is taken too, unless it is 16
characters long: 16 hex digits always read as hex.
"""

from __future__ import annotations

import re
import uuid

from rest_framework.exceptions import NotFound

from activities.services.webhooks import genesys_email_id, genesys_email_uri

__all__ = [
    "conversation_id",
    "genesys_email_id",
    "genesys_email_uri",
    "pk_of",
    "pk_of_conversation",
]

_HEX = re.compile(r"[0-9a-fA-F]{16}")
_DECIMAL = re.compile(r"[0-9]{1,18}")


def pk_of(value: str) -> int:
    """The key an id names; ``NotFound`` for text that names no email of ours."""
    text = value.strip()
    if _HEX.fullmatch(text):
        pk = int(text, 16)
    elif _DECIMAL.fullmatch(text):
        pk = int(text)
    else:
        raise NotFound(f"{value[:40]!r} is not an email id (16 hex digits, e.g. 0000000000000011)")
    if not 0 < pk < 2**63:
        raise NotFound(f"no email has the id {text}")
    return pk


def conversation_id(pk: int) -> str:
    """An email's id on Genesys Cloud's conversation paths: a UUID holding the integer
    (email 17 is ``00000000-0000-0000-0000-000000000011``)."""
    return str(uuid.UUID(int=pk))


def pk_of_conversation(value: str) -> int:
    try:
        pk = uuid.UUID(value.strip().strip("{}")).int
    except ValueError:
        raise NotFound(f"{value[:40]!r} is not a conversation id (a UUID)") from None
    if not 0 < pk < 2**63:
        raise NotFound(f"no conversation has the id {value[:40]}")
    return pk
