"""Staff web pages of the CRM core (approvals of sender addresses)."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from ..models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a staff page behind ``login_required`` (a type only: Django builds
    a plain ``HttpRequest``): a signed-in user, and django-htmx's ``request.htmx``."""

    user: User
    htmx: HtmxDetails
