"""The REST API of the CRM records."""

from __future__ import annotations

from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from ..models import User


def signed_in_user(request: Request) -> User:
    """The user of an API request: every endpoint needs one (``IsAuthenticated``, the
    default permission), so an anonymous request never gets this far."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated
    return user
