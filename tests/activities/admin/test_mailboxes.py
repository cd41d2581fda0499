"""The admin of polled mailboxes: the password write-only and stored encrypted, settings
refused in words, and the actions "Poll now" and "Test connection" against a real
Dovecot, every failure a message naming the cause, never a 500 (issue 12)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from activities.models import Email, PolledMailbox
from activities.secrets import seal, unseal
from tests.dovecot import PASSWORD
from tests.factories import PolledMailboxFactory
from tests.smtp import free_port

pytestmark = pytest.mark.django_db

MESSAGE = (
    b"From: Ann Lee <ann@customers.example.org>\r\nTo: support@example.com\r\n"
    b"Subject: Seats\r\nMessage-ID: <admin-1@customers.example.org>\r\n\r\nTwo more.\r\n"
)


def form(queue, port: int, **fields) -> dict[str, str]:
    data = {
        "queue": str(queue.pk),
        "user": "",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "username": "support",
        "secret": PASSWORD,
        "folder": "INBOX",
        "after_store": "mark_seen",
        "move_to": "",
        "enabled": "on",
    }
    data.update(fields)
    return data


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def act(client, action: str, mailboxes) -> list[str]:
    response = client.post(
        reverse("admin:activities_polledmailbox_changelist"),
        {"action": action, "_selected_action": [str(m.pk) for m in mailboxes]},
        follow=True,
    )
    assert response.status_code == 200
    return messages_of(response)


def test_the_password_is_write_only_and_stored_encrypted(superuser_client, team_queue):
    response = superuser_client.post(
        reverse("admin:activities_polledmailbox_add"), form(team_queue, 143)
    )
    assert response.status_code == 302, response.content
    mailbox = PolledMailbox.objects.get()
    assert PASSWORD not in mailbox.secret_sealed and unseal(mailbox.secret_sealed) == PASSWORD

    change = reverse("admin:activities_polledmailbox_change", args=[mailbox.pk])
    page = superuser_client.get(change).content.decode()
    assert PASSWORD not in page and mailbox.secret_sealed not in page
    # Saved again without a password: the stored one is kept.
    response = superuser_client.post(change, form(team_queue, 143, secret="", host="localhost"))
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.host == "localhost" and unseal(mailbox.secret_sealed) == PASSWORD


def test_settings_that_would_leak_or_cannot_work_are_refused_in_words(
    superuser_client, team_queue, owner
):
    add = reverse("admin:activities_polledmailbox_add")
    cases = [
        (form(team_queue, 143, host="mail.example.com"), "would send the password in clear"),
        (form(team_queue, 110, protocol="pop3"), "POP3 can only delete or keep a message"),
        (form(team_queue, 143, after_store="move"), "name the folder to move"),
        (form(team_queue, 143, secret=""), "enter the mailbox"),
        (form(team_queue, 143, user=str(owner.pk)), "exactly one"),
    ]
    for data, expected in cases:
        response = superuser_client.post(add, data)
        assert response.status_code == 200, expected
        assert expected in response.content.decode(), expected
    assert not PolledMailbox.objects.exists()


def test_poll_now_and_test_connection_report_what_happened(
    superuser_client, dovecot, team_queue, org
):
    dovecot.append("support", MESSAGE)
    good = PolledMailboxFactory(queue=team_queue, port=dovecot.ports["imap"])
    wrong = PolledMailboxFactory(
        queue=team_queue, port=dovecot.ports["imap"], secret_sealed=seal("nope")
    )
    closed = PolledMailboxFactory(queue=team_queue, port=free_port())

    tested = act(superuser_client, "test_connection", [good, wrong, closed])

    assert any("INBOX holds 1 messages" in m for m in tested)
    assert any("refused the login of 'support'" in m for m in tested)
    assert any("could not connect to 127.0.0.1" in m for m in tested)
    assert Email.objects.count() == 0  # testing changes nothing

    polled = act(superuser_client, "poll_now", [good, wrong])

    assert any("1 stored, 0 stored before, 0 refused" in m for m in polled)
    assert any("failed: " in m and "wrong username or password" in m for m in polled)
    assert Email.objects.count() == 1
    listing = superuser_client.get(reverse("admin:activities_polledmailbox_changelist"))
    assert "wrong username or password" in listing.content.decode()  # last_error shown
