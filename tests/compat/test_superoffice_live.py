"""SuperOffice's SendEMails over real HTTP: the app on a live server, a client as an
integrator's (``requests``, a Bearer token), the mail at a real SMTP server."""

from __future__ import annotations

import base64
import os

import pytest
import requests
from rest_framework.authtoken.models import Token

from activities.models import Email, EmailStatus

from .superoffice import DOCUMENTED_SAMPLE

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/Agents/EMail/SendEMails"
REPORT = os.urandom(70_000)


def test_a_batch_over_http_sends_the_good_emails_and_refuses_the_bad_one(
    live_server, owner, smtp_settings, eager_celery
):
    token = Token.objects.create(user=owner).key
    body = {
        "OutgoingConnectionInfo": None,
        "Emails": [
            {
                "To": [{"Address": "ann@example.com", "Name": "Ann Lee"}],
                "Subject": "Your report",
                "HTMLBody": "<p>Attached.</p>",
                "Attachments": [
                    {
                        "Filename": "report.bin",
                        "Type": "application/octet-stream",
                        "Stream": base64.b64encode(REPORT).decode(),
                        "Disposition": "attachment",
                    }
                ],
            },
            {"To": [{"Name": "Placeholder"}], "Subject": "Never sent"},
            {"To": [{"Address": "cy@example.com"}], "Subject": "Second", "PlainBody": "Hi"},
        ],
        "SentItemsConnectionInfo": None,
    }

    response = requests.post(
        live_server.url + PATH + "?$select=IsSent,ServerId,MessageID",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    first, refused, second = response.json()
    assert (first["IsSent"], refused["IsSent"], second["IsSent"]) == (True, False, True)
    assert (
        "Emails[1].To[0] (Placeholder): the recipient has no Address"
        in (refused["SendError"]["Message"])
    )
    assert first["Subject"] is None  # not selected
    emails = {e.pk: e for e in Email.objects.all()}
    assert set(emails) == {first["ServerId"], second["ServerId"]}
    assert {e.status for e in emails.values()} == {EmailStatus.SENT}
    by_recipient = {tuple(m.rcpt_tos): m.message for m in smtp_settings.messages}
    assert set(by_recipient) == {("ann@example.com",), ("cy@example.com",)}
    report = by_recipient[("ann@example.com",)]
    assert report["Message-ID"] == first["MessageID"] == emails[first["ServerId"]].message_id
    [attachment] = report.iter_attachments()
    assert attachment.get_filename() == "report.bin"
    assert attachment.get_payload(decode=True) == REPORT


def test_the_documented_sample_over_http_is_refused_in_superoffice_words(
    live_server, owner, smtp_settings
):
    token = Token.objects.create(user=owner).key

    response = requests.post(
        live_server.url + PATH,
        json=DOCUMENTED_SAMPLE,
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["Error"] == "Bad Request"
    assert "Emails[0].To[0]: the recipient has no Address" in body["Message"]
    assert Email.objects.count() == 0
    assert smtp_settings.messages == []
