"""Signed links that go out in mail (the unsubscribe link of bulk mail, RFC 8058).

Below the services: the message builder (``mail.py``) makes them and the suppression
service reads them back.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .errors import InvalidUnsubscribeLink

_UNSUBSCRIBE_SALT = "activities.unsubscribe"


def unsubscribe_token(email_id: int) -> str:
    """The signed token of an email's unsubscribe link (the same every time)."""
    return signing.Signer(salt=_UNSUBSCRIBE_SALT).sign(str(email_id))


def unsubscribe_url(email_id: int) -> str:
    path = reverse("unsubscribe", kwargs={"token": unsubscribe_token(email_id)})
    return settings.CRM_PUBLIC_URL.rstrip("/") + path


def email_id_of_unsubscribe_token(token: str) -> int:
    """The email id a token was signed for; ``InvalidUnsubscribeLink`` if it was not made
    here (forged, altered, truncated)."""
    try:
        return int(signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        raise InvalidUnsubscribeLink(
            "this unsubscribe link is not valid: it was altered or not made by us"
        ) from None
