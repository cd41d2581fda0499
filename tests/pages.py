"""Clients for tests of the staff pages: Django's test client with a session."""

from __future__ import annotations

from django.test import Client


def signed_in(user) -> Client:
    """A test client signed in as ``user`` (no sign-in form round trip)."""
    client = Client()
    client.force_login(user)
    return client
