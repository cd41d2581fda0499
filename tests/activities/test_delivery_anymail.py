"""Delivery through django-anymail: its real backend code, with a stand-in provider.

anymail's own test backend runs anymail's payload building and recipient-status
parsing; the provider's answers (which cannot be reached from here) are played by
``ScriptedProvider``.
"""

from __future__ import annotations

import pytest
import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from django.core import mail

from activities.models import EmailStatus
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send

pytestmark = pytest.mark.django_db


class ScriptedProvider(AnymailTestBackend):
    """Rejects recipients whose address starts with ``rejected``; fails on ``status-NNN``."""

    def post_to_esp(self, payload, message):
        subject = message.subject
        if "status-" in subject:
            code = int(subject.split("status-")[1][:3])
            response = requests.Response()
            response.status_code, response.reason, response._content = code, "Scripted", b"{}"
            message.anymail_test_response = AnymailAPIError(
                f"provider answered {code}", status_code=code, response=response
            )
        else:
            message.anymail_test_response = {
                "recipient_status": {
                    address: AnymailRecipientStatus(
                        message_id=f"prov-{address}",
                        status="rejected" if address.startswith("rejected") else "queued",
                    )
                    for address in payload.recipient_emails
                }
            }
        return super().post_to_esp(payload, message)


@pytest.fixture
def provider(settings):
    settings.EMAIL_BACKEND = f"{__name__}.ScriptedProvider"
    settings.ANYMAIL = {}
    mail.outbox = []
    return mail.outbox


def queued(sender, *, to, subject="Hello"):
    email = email_create(actor=sender, to=to, subject=subject, body_text="hi")
    return email_send(email=email, actor=sender)


def test_provider_accepts_and_its_message_id_is_recorded(org, owner, provider):
    email = queued(owner, to=["ann@example.com"])
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.last_error == ""
    assert len(provider) == 1 and provider[0].extra_headers["Message-ID"] == email.message_id
    note = email.events.get(kind="note")
    assert note.data["provider_message_id"] == "prov-ann@example.com"


def test_provider_rejecting_some_recipients_is_recorded(org, owner, provider):
    email = queued(owner, to=["ann@example.com", "rejected@example.com"])
    assert email_deliver(email_id=email.pk, owner="w").outcome == "sent"
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert "rejected@example.com: rejected by the provider" in email.last_error


def test_provider_rejecting_every_recipient_fails_at_once(org, owner, provider):
    email = queued(owner, to=["rejected@example.com"])
    assert email_deliver(email_id=email.pk, owner="w").outcome == "failed"
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED and email.attempts == 1
    assert "AnymailRecipientsRefused" in email.last_error


@pytest.mark.parametrize(
    ("code", "outcome", "status"),
    [
        (503, "retry", EmailStatus.PENDING_SEND),
        (429, "retry", EmailStatus.PENDING_SEND),
        (400, "failed", EmailStatus.FAILED),
    ],
)
def test_provider_errors_are_transient_or_permanent_by_status(
    org, owner, provider, code, outcome, status
):
    email = queued(owner, to=["ann@example.com"], subject=f"status-{code}")
    assert email_deliver(email_id=email.pk, owner="w").outcome == outcome
    email.refresh_from_db()
    assert email.status == status
    assert f"provider answered {code}" in email.last_error
