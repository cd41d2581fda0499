"""``Idempotency-Key`` on the POSTs that create or send: the first answer, once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from activities.models import Email, EmailEvent, EmailStatus
from activities.services.emails import email_create
from common.models import IdempotencyRecord
from tests.api import client_for
from tests.factories import ContactFactory, TemplateFactory
from tests.services import need_postgresql

EMAILS = "/api/v1/emails/"
BODY = {"subject": "Once only", "to": ["ann@example.com"]}


def keyed(key: str) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": key}


def test_same_key_and_body_twice_creates_one_email_and_replays_the_first_answer(org, owner):
    client = client_for(owner)
    first = client.post(EMAILS, BODY, **keyed("create-1"))
    second = client.post(EMAILS, BODY, **keyed("create-1"))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Email.objects.count() == 1
    assert EmailEvent.objects.count() == 1


def test_an_error_quoting_a_nul_character_is_kept_and_replayed(org, owner):
    """A 400 may quote the request, NUL and all (here an unknown key of a recipient):
    the answer is kept as JSON text, which PostgreSQL stores where jsonb would not."""
    body = {"subject": "x", "to": [{"address": "ann@example.com", "\x00\xff": 1}]}
    client = client_for(owner)
    first = client.post(EMAILS, body, format="json", **keyed("nul-1"))
    second = client.post(EMAILS, body, format="json", **keyed("nul-1"))
    assert first.status_code == second.status_code == 400, first.content
    assert "\x00" in first.json()["to"]["0"][0]  # the message quotes the key
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert not Email.objects.exists()


def test_without_a_key_each_post_creates_an_email(org, owner):
    client = client_for(owner)
    client.post(EMAILS, BODY)
    client.post(EMAILS, BODY)
    assert Email.objects.count() == 2


def test_same_key_with_a_different_body_is_422_and_does_nothing(org, owner):
    client = client_for(owner)
    first = client.post(EMAILS, BODY, **keyed("create-2"))
    response = client.post(EMAILS, {**BODY, "subject": "Changed"}, **keyed("create-2"))
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert list(Email.objects.values_list("pk", "subject")) == [(first.json()["id"], "Once only")]


def test_same_key_on_another_endpoint_is_422(org, owner):
    client = client_for(owner)
    email = email_create(actor=owner, subject="x", to=["ann@example.com"])
    client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("k"))
    response = client.post(f"{EMAILS}{email.pk}/cancel/", {}, **keyed("k"))
    assert response.status_code == 422
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND


def test_send_repeated_with_its_key_sends_once_and_answers_the_same(
    org, owner, django_capture_on_commit_callbacks
):
    email = email_create(actor=owner, subject="Hello", to=["ann@example.com"])
    client = client_for(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("send-1"))
        second = client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("send-1"))
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert len(callbacks) == 1
    assert email.events.filter(to_status=EmailStatus.PENDING_SEND).count() == 1
    # Without the key the repeat is a new request, refused by the email's status.
    assert client.post(f"{EMAILS}{email.pk}/send/", {}).status_code == 409


def test_send_from_template_repeated_with_its_key_creates_one_email(org, owner):
    template = TemplateFactory()
    body = {"template": template.pk, "regarding": {"type": "contact", "id": ContactFactory().pk}}
    client = client_for(owner)
    first = client.post(f"{EMAILS}send-from-template/", body, **keyed("tpl"))
    second = client.post(f"{EMAILS}send-from-template/", body, **keyed("tpl"))
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert Email.objects.count() == 1


def test_a_refusal_is_replayed_too(org, owner):
    email = email_create(actor=owner, subject="nobody")
    client = client_for(owner)
    first = client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("refused"))
    assert first.status_code == 400 and first.json()["code"] == "no_recipients"
    email.parties.create(role="to", address="ann@example.com")
    again = client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("refused"))
    assert (again.status_code, again.json()) == (400, first.json())
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT
    assert client.post(f"{EMAILS}{email.pk}/send/", {}, **keyed("fixed")).status_code == 202


@pytest.mark.parametrize(
    "key",
    # Non-ASCII and surrounding spaces passed str.isprintable() before (issue 11): the
    # schema's pattern, and what an HTTP proxy passes unchanged, is visible ASCII.
    ["k" * 256, "", "tab\there", "clé-1", "\u00a0nbsp", " lead", "trail "],
)
def test_a_key_that_is_too_long_empty_or_unprintable_is_400(org, owner, key):
    response = client_for(owner).post(EMAILS, BODY, **keyed(key))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert Email.objects.count() == 0 and IdempotencyRecord.objects.count() == 0


def test_a_key_of_255_characters_is_fine(org, owner):
    response = client_for(owner).post(EMAILS, BODY, **keyed("k" * 255))
    assert response.status_code == 201


def test_different_users_use_the_same_key_independently(org, owner, teammate):
    first = client_for(owner).post(EMAILS, BODY, **keyed("shared"))
    second = client_for(teammate).post(EMAILS, {**BODY, "subject": "Bob's"}, **keyed("shared"))
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert set(Email.objects.values_list("created_by__username", "subject")) == {
        ("alice", "Once only"),
        ("bob", "Bob's"),
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_the_same_key_create_one_email_and_answer_alike(owner):
    need_postgresql()
    start = threading.Barrier(8)
    answers: list[tuple[int, dict]] = []
    failures: list[str] = []

    def post() -> None:
        try:
            client = client_for(owner)
            start.wait(timeout=30)
            response = client.post(EMAILS, BODY, **keyed("together"))
            answers.append((response.status_code, response.json()))
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert len(answers) == 8
    assert {status for status, _ in answers} == {201}
    assert all(body == answers[0][1] for _, body in answers)
    assert Email.objects.count() == 1
    assert answers[0][1]["id"] == Email.objects.get().pk
    assert IdempotencyRecord.objects.count() == 1
