"""Graph names messages and attachments by opaque strings; ours have integer keys.

A message's id is ``AAMk`` followed by the unpadded URL-safe base64 of ``email:<pk>``
(an attachment's: ``AAMk`` and ``attachment:<pk>``), so the mapping needs no table,
survives a restore and reads like the ids Graph clients have seen. Text that does not
decode to an id of that kind is malformed (Graph's ``ErrorInvalidIdMalformed``, 400);
a well-formed id of a record the caller may not see is not found (404).
"""

from __future__ import annotations

import base64
import binascii
import re

from .errors import GraphError

PREFIX = "AAMk"
MAX_PK = 2**63 - 1
_DIGITS = re.compile(r"[1-9][0-9]{0,18}")


def _encode(kind: str, pk: int) -> str:
    raw = f"{kind}:{pk}".encode("ascii")
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(kind: str, text: str) -> int:
    if not text.startswith(PREFIX) or len(text) > 64:
        raise GraphError("Id is malformed.", code="ErrorInvalidIdMalformed")
    body = text[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise GraphError("Id is malformed.", code="ErrorInvalidIdMalformed") from None
    named, _, digits = raw.partition(":")
    if named != kind or not _DIGITS.fullmatch(digits) or int(digits) > MAX_PK:
        raise GraphError("Id is malformed.", code="ErrorInvalidIdMalformed")
    return int(digits)


def message_id(pk: int) -> str:
    return _encode("email", pk)


def message_pk(text: str) -> int:
    """The email a message id names; ``GraphError`` (400) for a malformed one."""
    return _decode("email", text)


def attachment_id(pk: int) -> str:
    return _encode("attachment", pk)


def attachment_pk(text: str) -> int:
    return _decode("attachment", text)
