"""Signed links that go out in mail (the unsubscribe link of bulk mail, RFC 8058), and
the signed envelope sender (VERP) that a bounce comes back to.

Below the services: the message builder (``mail.py``) makes them and the suppression
service reads them back.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

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


# --- VERP: the envelope sender that names its email --------------------------------

_BOUNCE_SALT = "activities.bounce"
_BOUNCE_SIGNATURE_CHARS = 16


def _bounce_signature(email_id: int) -> str:
    # Lower-case hex: a local part survives servers that fold its case.
    return salted_hmac(_BOUNCE_SALT, str(email_id)).hexdigest()[:_BOUNCE_SIGNATURE_CHARS]


def bounce_address(email_id: int) -> str:
    """The envelope sender of an email's messages when ``CRM_BOUNCE_DOMAIN`` is set
    (VERP): ``<localpart>+<email id>-<signature>@<domain>``; empty when it is not."""
    domain = settings.CRM_BOUNCE_DOMAIN
    if not domain:
        return ""
    local = settings.CRM_BOUNCE_LOCALPART
    return f"{local}+{email_id}-{_bounce_signature(email_id)}@{domain}"


def email_id_of_bounce_address(address: str) -> int | None:
    """The email id a bounce address was made for, or ``None`` if ``address`` is not
    one of ours (another local part or domain, altered, forged)."""
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    if not settings.CRM_BOUNCE_DOMAIN or domain != settings.CRM_BOUNCE_DOMAIN:
        return None
    base, plus, tag = local.partition("+")
    number, dash, signature = tag.partition("-")
    if base != settings.CRM_BOUNCE_LOCALPART or not plus or not dash or not number.isdigit():
        return None
    email_id = int(number)
    if not constant_time_compare(signature, _bounce_signature(email_id)):
        return None
    return email_id
