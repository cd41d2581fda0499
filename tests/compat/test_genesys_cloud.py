"""Genesys Cloud's "Send an email reply" (POST /api/v2/conversations/emails/
{conversationId}/messages): an EmailMessage becomes our reply, sent."""

from __future__ import annotations

import uuid

import pytest

from activities.models import Email, EmailEvent, EmailStatus, PartyRole
from tests.api import client_for

pytestmark = pytest.mark.django_db


def conversation(email: Email) -> str:
    return str(uuid.UUID(int=email.pk))


def received(queue) -> Email:
    original = Email.objects.create(
        subject="A question",
        direction="incoming",
        status=EmailStatus.RECEIVED,
        state="completed",
        message_id="<q3@example.com>",
    )
    original.parties.create(role=PartyRole.FROM, address="ann@example.com", name="Ann Lee")
    original.parties.create(role=PartyRole.TO, address=queue.email, queue=queue)
    return original


MESSAGE = {
    "to": [{"email": "ann@example.com", "name": "Ann Lee"}],
    "from": {"email": "support@example.com", "name": "Support"},
    "replyTo": {"email": "orders@example.com"},
    "textBody": "Your order shipped.",
    "htmlBody": "<p>Your order shipped.</p>",
}


def reply(user, original: Email, body: dict):
    return client_for(user).post(
        f"/api/v2/conversations/emails/{conversation(original)}/messages", body, format="json"
    )


def test_an_email_message_becomes_our_reply_sent_from_the_queue(org, owner, team_queue):
    original = received(team_queue)
    response = reply(owner, original, MESSAGE)
    assert response.status_code == 200, response.content
    answer = response.json()
    sent = Email.objects.get(parent=original)
    assert answer["id"] == str(uuid.UUID(int=sent.pk))
    assert (sent.status, sent.sender_queue, sent.in_reply_to) == (
        EmailStatus.PENDING_SEND,
        team_queue,
        "<q3@example.com>",
    )
    assert sent.subject.startswith("Re: A question")
    assert answer["subject"] == sent.subject
    assert answer["to"] == [{"email": "ann@example.com", "name": "Ann Lee"}]
    assert answer["from"] == {"email": "support@example.com", "name": "Support"}
    assert answer["replyTo"] == {"email": "orders@example.com", "name": ""}
    assert [p.address for p in sent.parties.filter(role=PartyRole.REPLY_TO)] == [
        "orders@example.com"
    ]


@pytest.mark.parametrize(
    ("body", "http_status", "words"),
    [
        ({**MESSAGE, "to": [{"name": "Ann"}]}, 400, "to[0] has no address"),
        ({**MESSAGE, "from": {"email": "else@example.org"}}, 400, "neither a queue"),
        ({k: v for k, v in MESSAGE.items() if k != "textBody"}, 400, "textBody is required"),
        ({**MESSAGE, "attachments": [{"name": "a.pdf"}]}, 400, "attachments"),
        ({**MESSAGE, "bodyText": "x"}, 400, "bodyText"),
    ],
)
def test_a_refused_reply_writes_nothing(org, owner, team_queue, body, http_status, words):
    original = received(team_queue)
    response = reply(owner, original, body)
    assert response.status_code == http_status, response.content
    error = response.json()
    assert {"message", "code", "status", "messageParams", "contextId", "details", "errors"} <= set(
        error
    )
    assert words in error["message"]
    assert Email.objects.count() == 1
    assert not EmailEvent.objects.exists()


def test_the_outsider_cannot_reply_in_a_conversation_they_do_not_see(org, outsider, team_queue):
    original = received(team_queue)
    response = reply(outsider, original, MESSAGE)
    assert (response.status_code, response.json()["status"]) == (404, 404)
    assert Email.objects.count() == 1


def test_a_from_of_a_queue_the_user_is_not_in_is_not_allowed(org, outsider, team_queue, staff):
    original = received(team_queue)
    response = reply(staff, original, MESSAGE)
    assert (response.status_code, response.json()["code"]) == (403, "sender_not_allowed")
    assert Email.objects.count() == 1


@pytest.mark.parametrize("id", ["not-a-uuid", "ffffffff-ffff-ffff-ffff-ffffffffffff"])
def test_a_conversation_id_that_names_nothing_is_not_found(org, owner, id):
    response = client_for(owner).post(
        f"/api/v2/conversations/emails/{id}/messages", MESSAGE, format="json"
    )
    assert response.status_code == 404
