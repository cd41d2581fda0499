"""Dynamics 365 names every record by a GUID; ours have integer keys.

The GUID of record 123 is ``00000000-0000-0000-0000-00000000007b`` (the integer in the
UUID's 128 bits), so the mapping needs no table and survives a restore. A GUID that
is not of that form names no record of ours.
"""

from __future__ import annotations

import uuid

from django.http import Http404


def guid_of(pk: int) -> str:
    return str(uuid.UUID(int=pk))


def pk_of(guid: str) -> int:
    """The key a GUID names; ``Http404`` for text that is not a GUID of ours."""
    try:
        value = uuid.UUID(guid.strip().strip("{}")).int
    except (ValueError, AttributeError):
        raise Http404(f"{guid!r} is not a record id (a GUID)") from None
    if not 0 < value < 2**63:
        raise Http404(f"no record has the id {guid}")
    return value
