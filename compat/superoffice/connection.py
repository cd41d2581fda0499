"""``OutgoingConnectionInfo`` and ``SentItemsConnectionInfo``: we never connect where
a caller says.

SuperOffice's EMail agent logs in to the SMTP (and IMAP) server a request names. This
server delivers through its own configured mail backend only, so a connection info
must be null, or name that delivery: the SMTP host (``host`` or ``host:port``) and,
when given, its user name. Anything else is a 400 (which does not say where our mail
goes: that is the operator's business). The password is never compared or used.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from common.errors import ValidationFailed

from .carriers import EMailConnectionInfoIn, input_text, validated

SMTP_BACKENDS = ("smtp.EmailBackend", "mail.SMTPBackend")


class ConnectionRefused(ValidationFailed):
    code = "connection_refused"


def _names_our_smtp(info: dict[str, Any]) -> bool:
    if not settings.EMAIL_BACKEND.endswith(SMTP_BACKENDS):
        return False
    host = str(settings.EMAIL_HOST).lower()
    given = (info.get("ServerName") or "").strip().lower()
    if given not in {host, f"{host}:{settings.EMAIL_PORT}"}:
        return False
    user = (info.get("UserName") or "").strip()
    return not user or user == (settings.EMAIL_HOST_USER or "")


def check_connection(value: Any, *, label: str) -> None:
    """Refuse (``ConnectionRefused``, 400) a connection info that is not null and does
    not name this server's own delivery."""
    if value is None:
        return
    try:
        info = validated(value, EMailConnectionInfoIn, label=label)
    except serializers.ValidationError as exc:
        raise ConnectionRefused(input_text(exc.detail)) from exc
    if _names_our_smtp(info):
        return
    named = (info.get("ServerName") or "").strip() or "no server"
    raise ConnectionRefused(
        f"{label} names {named!r}: this server never connects to a mail server a request "
        f"names; it delivers through its own configured delivery. Send {label}: null"
    )
