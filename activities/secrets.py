"""Secrets kept at rest (a polled mailbox's password), encrypted with Fernet
(``cryptography``: AES-128-CBC and HMAC-SHA256, with a timestamp).

The key is derived from ``SECRET_KEY`` with HKDF-SHA256 under a label of its own, so it
is never the signing key itself; a secret sealed under one of ``SECRET_KEY_FALLBACKS``
still opens (MultiFernet), and ``seal`` always uses the current key, so rotating the
key means adding the old one to the fallbacks and saving each mailbox's password again
(or keeping the fallback). Without the key the stored value is useless.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_LABEL = b"crm.activities.secrets.v1"


class SecretUnreadable(Exception):
    """The stored secret does not open with SECRET_KEY or any of its fallbacks."""


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(k) for k in keys])


def seal(secret: str) -> str:
    """The secret encrypted under the current key, as text to store."""
    return _keys().encrypt(secret.encode()).decode("ascii") if secret else ""


def unseal(sealed: str) -> str:
    """The secret back; ``SecretUnreadable`` when no key opens it."""
    if not sealed:
        return ""
    try:
        return _keys().decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "the stored password cannot be decrypted with SECRET_KEY (or a fallback): set it again"
        ) from exc
