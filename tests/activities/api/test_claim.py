"""The claim API for external send components: claim under a lease, report the outcome.

No email goes to two callers (concurrent claimers over HTTP on PostgreSQL), and a
missing, stale or foreign lease token is a 409 that changes nothing.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activities.models import Email, EmailEvent, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.delivery import delivery_sweep
from activities.services.emails import email_create, email_send
from crm.models import OutgoingDelivery
from tests.api import client_for
from tests.factories import QueueFactory, UserFactory
from tests.services import need_postgresql

EMAILS = "/api/v1/emails/"
CLAIM = f"{EMAILS}claim/"


def report_url(email_id: int) -> str:
    return f"{EMAILS}{email_id}/delivery-result/"


@pytest.fixture
def relay(owner, teammate):
    """The owner's and the teammate's external queue: the teammate sees its mail, but
    holds none of the owner's leases."""
    return QueueFactory(
        name="Relay",
        email="relay@example.com",
        members=[owner, teammate],
        outgoing_delivery=OutgoingDelivery.EXTERNAL,
    )


def pending(actor, sender, subject: str = "x", **kwargs) -> Email:
    email = email_create(
        actor=actor, sender=sender, subject=subject, to=["ann@example.com"], **kwargs
    )
    return email_send(email=email, actor=actor)


def snapshot(email: Email) -> tuple[dict, int]:
    return Email.objects.values().get(pk=email.pk), EmailEvent.objects.filter(email=email).count()


# --- claim --------------------------------------------------------------------------


def test_claim_hands_out_pending_external_email_under_a_lease(org, owner, relay):
    first = email_create(actor=owner, sender=relay, subject="with file", to=["ann@example.com"])
    attachment, _ = attachment_store(owner=first, source=b"terms", filename="terms.pdf")
    first = email_send(email=first, actor=owner)
    second = pending(owner, relay, "second")
    worker_mail = pending(owner, owner, "worker")
    draft = email_create(actor=owner, sender=relay, subject="draft", to=["a@example.com"])

    response = client_for(owner).post(CLAIM, {"max": 50, "lease_seconds": 120})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == [first.pk, second.pk]
    claimed = results[0]
    assert claimed["status"] == "sending" and claimed["attempts"] == 1
    assert claimed["subject"] == first.subject and claimed["message_id"] == first.message_id
    assert claimed["from_address"] == "relay@example.com"
    assert [p["address"] for p in claimed["to"]] == ["ann@example.com"]
    assert isinstance(claimed["lease_token"], str) and claimed["lease_token"] == "1"
    assert claimed["attachments"] == [
        {
            "id": attachment.pk,
            "filename": "terms.pdf",
            "mime_type": "application/pdf",
            "size": 5,
            "attachment_id": attachment.blob.sha256,
            "subject": "",
            "content_url": f"http://testserver/api/v1/attachments/{attachment.pk}/content/",
        }
    ]
    for email in (first, second):
        email.refresh_from_db()
        assert email.status == EmailStatus.SENDING
        assert email.lease_owner.startswith(f"api:{owner.pk}:")
        assert timedelta(seconds=100) < email.lease_expires_at - timezone.now()
        assert email.lease_expires_at - timezone.now() <= timedelta(seconds=120)
        assert email.events.last().to_status == EmailStatus.SENDING
    worker_mail.refresh_from_db()
    draft.refresh_from_db()
    assert worker_mail.status == EmailStatus.PENDING_SEND and worker_mail.lease_token == 0
    assert draft.status == EmailStatus.DRAFT
    assert client_for(owner).post(CLAIM, {}).json() == {"results": []}


def test_claim_takes_at_most_max_and_never_the_same_email_twice(org, owner, relay):
    emails = [pending(owner, relay, f"e{i}") for i in range(5)]
    client = client_for(owner)
    batches = [
        [r["id"] for r in client.post(CLAIM, {"max": 2}).json()["results"]] for _ in range(4)
    ]
    assert [len(b) for b in batches] == [2, 2, 1, 0]
    assert sorted(sum(batches, [])) == sorted(e.pk for e in emails)


def test_claim_leaves_email_that_the_caller_may_not_see(org, owner, outsider, staff, relay):
    email = pending(owner, relay)
    before = snapshot(email)
    assert client_for(outsider).post(CLAIM, {}).json() == {"results": []}
    assert snapshot(email) == before
    assert [r["id"] for r in client_for(staff).post(CLAIM, {}).json()["results"]] == [email.pk]


def test_claim_leaves_email_that_is_not_yet_due(org, owner, relay):
    email = email_create(
        actor=owner,
        sender=relay,
        subject="later",
        to=["a@example.com"],
        scheduled_at=timezone.now() + timedelta(hours=1),
    )
    email_send(email=email, actor=owner)
    assert client_for(owner).post(CLAIM, {}).json() == {"results": []}


@pytest.mark.parametrize(
    "body",
    [
        {"max": 0},
        {"max": 501},
        {"max": "many"},
        {"max": 10**30},
        {"lease_seconds": 0},
        {"lease_seconds": 24 * 3600 + 1},
        {"lease_seconds": "long"},
    ],
)
def test_claim_refuses_bad_limits_and_claims_nothing(org, owner, relay, body):
    email = pending(owner, relay)
    before = snapshot(email)
    response = client_for(owner).post(CLAIM, body)
    assert response.status_code == 400
    assert set(body) <= set(response.json())
    assert snapshot(email) == before


def test_claim_is_post_only(org, owner):
    assert client_for(owner).get(CLAIM).status_code == 405


# --- delivery results -----------------------------------------------------------------


def claim_one(client, email: Email) -> str:
    results = client.post(CLAIM, {"max": 1}).json()["results"]
    assert [r["id"] for r in results] == [email.pk]
    return results[0]["lease_token"]


def test_report_sent_records_the_email_as_sent(org, owner, relay):
    email = pending(owner, relay)
    client = client_for(owner)
    token = claim_one(client, email)
    response = client.post(
        report_url(email.pk),
        {"lease_token": token, "outcome": "sent", "message_id": "<provider-1@relay>"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "sent" and response.json()["sent_at"]
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.lease_owner == ""
    assert email.events.filter(kind="note").get().data == {
        "provider_message_id": "<provider-1@relay>"
    }


def test_report_failed_records_a_final_failure_with_the_error(org, owner, relay):
    email = pending(owner, relay)
    client = client_for(owner)
    token = claim_one(client, email)
    response = client.post(
        report_url(email.pk),
        {"lease_token": token, "outcome": "failed", "error": "550 no such user"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["last_error"] == "550 no such user"
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED and email.failed_at


def test_report_of_a_temporary_failure_returns_the_email_for_a_later_claim(org, owner, relay):
    email = pending(owner, relay)
    client = client_for(owner)
    token = claim_one(client, email)
    response = client.post(
        report_url(email.pk),
        {"lease_token": token, "outcome": "failed", "error": "421 try later", "permanent": False},
    )
    assert response.status_code == 200 and response.json()["status"] == "pending_send"
    email.refresh_from_db()
    assert email.next_attempt_at > timezone.now()
    assert client.post(CLAIM, {}).json() == {"results": []}  # not due yet
    Email.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    assert claim_one(client, email) == "2"


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "sent"},
        {"lease_token": None, "outcome": "sent"},
        {"lease_token": "", "outcome": "sent"},
        {"lease_token": "abc", "outcome": "sent"},
        {"lease_token": "0", "outcome": "sent"},
        {"lease_token": "2", "outcome": "failed"},
    ],
)
def test_report_with_a_missing_or_wrong_token_is_409_and_changes_nothing(org, owner, relay, body):
    email = pending(owner, relay)
    client = client_for(owner)
    claim_one(client, email)
    before = snapshot(email)
    response = client.post(report_url(email.pk), body)
    assert response.status_code == 409
    assert response.json()["code"] == "stale_lease" and response.json()["status"] == "sending"
    assert snapshot(email) == before


@pytest.mark.parametrize(
    "body",
    [
        {"lease_token": "1", "outcome": "delivered"},
        {"lease_token": "1"},
        {"lease_token": "1", "outcome": "sent", "permanent": "maybe"},
        {"lease_token": "1", "outcome": "failed", "error": "x" * 10001},
    ],
)
def test_report_with_bad_input_is_400_and_changes_nothing(org, owner, relay, body):
    email = pending(owner, relay)
    client = client_for(owner)
    claim_one(client, email)
    before = snapshot(email)
    assert client.post(report_url(email.pk), body).status_code == 400
    assert snapshot(email) == before


def test_report_twice_is_409_the_second_time(org, owner, relay):
    email = pending(owner, relay)
    client = client_for(owner)
    token = claim_one(client, email)
    first = client.post(report_url(email.pk), {"lease_token": token, "outcome": "sent"})
    assert first.status_code == 200
    before = snapshot(email)
    response = client.post(report_url(email.pk), {"lease_token": token, "outcome": "failed"})
    assert response.status_code == 409 and response.json()["status"] == "sent"
    assert snapshot(email) == before


def test_report_with_a_stale_token_after_the_lease_expired_and_was_reclaimed_is_409(
    org, owner, relay
):
    email = pending(owner, relay)
    client = client_for(owner)
    old_token = claim_one(client, email)
    Email.objects.filter(pk=email.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert delivery_sweep().requeued_expired == [email.pk]
    new_token = claim_one(client, email)
    assert int(new_token) > int(old_token)
    before = snapshot(email)

    response = client.post(report_url(email.pk), {"lease_token": old_token, "outcome": "sent"})

    assert response.status_code == 409 and response.json()["code"] == "stale_lease"
    assert snapshot(email) == before
    email.refresh_from_db()
    assert email.status == EmailStatus.SENDING and email.possible_duplicate
    response = client.post(report_url(email.pk), {"lease_token": new_token, "outcome": "sent"})
    assert response.status_code == 200 and response.json()["possible_duplicate"] is True


def test_report_with_a_stale_token_after_the_sweep_requeued_it_is_409(org, owner, relay):
    email = pending(owner, relay)
    client = client_for(owner)
    token = claim_one(client, email)
    Email.objects.filter(pk=email.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    delivery_sweep()
    before = snapshot(email)
    response = client.post(report_url(email.pk), {"lease_token": token, "outcome": "sent"})
    assert response.status_code == 409 and response.json()["status"] == "pending_send"
    assert snapshot(email) == before


def test_report_by_a_caller_that_does_not_hold_the_lease_is_409(org, owner, teammate, relay):
    email = pending(owner, relay)
    token = claim_one(client_for(owner), email)
    before = snapshot(email)
    response = client_for(teammate).post(
        report_url(email.pk), {"lease_token": token, "outcome": "sent"}
    )
    assert response.status_code == 409 and response.json()["code"] == "stale_lease"
    assert "another claimer" in response.json()["detail"]
    assert snapshot(email) == before


def test_report_by_a_caller_that_cannot_see_the_email_is_404(org, owner, outsider, relay):
    email = pending(owner, relay)
    token = claim_one(client_for(owner), email)
    before = snapshot(email)
    response = client_for(outsider).post(
        report_url(email.pk), {"lease_token": token, "outcome": "sent"}
    )
    assert response.status_code == 404
    assert snapshot(email) == before


# --- concurrency, on PostgreSQL --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_over_http_never_share_an_email_and_together_take_all():
    need_postgresql()
    callers = [UserFactory(username=f"sender{i}") for i in range(6)]
    relay = QueueFactory(members=callers, outgoing_delivery=OutgoingDelivery.EXTERNAL)
    Email.objects.bulk_create(
        Email(
            subject=f"bulk {i}",
            sender_queue=relay,
            status=EmailStatus.PENDING_SEND,
            state="completed",
            message_id=f"<bulk-{i}@test>",
        )
        for i in range(300)
    )
    all_ids = set(Email.objects.values_list("pk", flat=True))
    start = threading.Barrier(len(callers))
    claimed: dict[str, list[int]] = {}
    failures: list[str] = []

    def claimer(user) -> None:
        mine: list[int] = []
        try:
            client = client_for(user)
            start.wait(timeout=30)
            while True:
                response = client.post(CLAIM, {"max": 7, "lease_seconds": 600})
                if response.status_code != 200:
                    failures.append(f"{user}: {response.status_code} {response.content!r}")
                    return
                ids = [r["id"] for r in response.json()["results"]]
                if not ids:
                    return
                mine.extend(ids)
        except Exception as exc:  # reported below, not lost in the thread
            failures.append(f"{user}: {exc!r}")
        finally:
            claimed[user.username] = mine
            connection.close()

    threads = [threading.Thread(target=claimer, args=(u,)) for u in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    every_claim = [pk for ids in claimed.values() for pk in ids]
    assert len(every_claim) == len(set(every_claim)), "an email was handed to two callers"
    assert set(every_claim) == all_ids
    assert sum(1 for ids in claimed.values() if ids) > 1, "the claims did not interleave"
    assert Email.objects.exclude(status=EmailStatus.SENDING).count() == 0
    assert Email.objects.exclude(lease_token=1).count() == 0
    for username, ids in claimed.items():
        user_id = next(u.pk for u in callers if u.username == username)
        owners = set(Email.objects.filter(pk__in=ids).values_list("lease_owner", flat=True))
        assert all(owner.startswith(f"api:{user_id}:") for owner in owners)
    assert EmailEvent.objects.filter(to_status=EmailStatus.SENDING).count() == 300


# --- many results in one call -------------------------------------------------------

RESULTS = f"{EMAILS}delivery-results/"


def test_a_batch_of_results_records_each_on_its_own(org, owner, teammate, outsider, relay):
    emails = [pending(owner, relay, subject=f"m{i}") for i in range(4)]
    hidden = pending(
        outsider, QueueFactory(outgoing_delivery=OutgoingDelivery.EXTERNAL, members=[outsider])
    )
    client = client_for(owner)
    claimed = {e["id"]: e["lease_token"] for e in client.post(CLAIM, {"max": 10}).json()["results"]}
    assert set(claimed) == {e.pk for e in emails}
    sent, failed, retry, stale = emails
    before_stale = snapshot(stale)

    answer = client.post(
        RESULTS,
        {
            "results": [
                {"id": sent.pk, "lease_token": claimed[sent.pk], "outcome": "sent"},
                {
                    "id": failed.pk,
                    "lease_token": claimed[failed.pk],
                    "outcome": "failed",
                    "error": "550 no such user",
                },
                {
                    "id": retry.pk,
                    "lease_token": claimed[retry.pk],
                    "outcome": "failed",
                    "error": "421 busy",
                    "permanent": False,
                },
                {"id": stale.pk, "lease_token": str(int(claimed[stale.pk]) + 7), "outcome": "sent"},
                {"id": hidden.pk, "lease_token": "1", "outcome": "sent"},
            ]
        },
        format="json",
    )

    assert answer.status_code == 200, answer.content
    by_id = {r["id"]: r for r in answer.json()["results"]}
    assert [r["id"] for r in answer.json()["results"]] == [e.pk for e in emails] + [hidden.pk]
    assert (by_id[sent.pk]["recorded"], by_id[sent.pk]["status"]) == (True, "sent")
    assert (by_id[failed.pk]["recorded"], by_id[failed.pk]["status"]) == (True, "failed")
    assert (by_id[retry.pk]["recorded"], by_id[retry.pk]["status"]) == (True, "pending_send")
    assert by_id[stale.pk] | {"detail": ""} == {
        "id": stale.pk,
        "recorded": False,
        "status": "sending",
        "code": "stale_lease",
        "detail": "",
    }
    assert (by_id[hidden.pk]["recorded"], by_id[hidden.pk]["code"]) == (False, "not_found")
    assert snapshot(stale) == before_stale
    assert Email.objects.get(pk=hidden.pk).status == EmailStatus.PENDING_SEND
    # The teammate sees the relay's mail but holds none of the owner's leases.
    refused = (
        client_for(teammate)
        .post(
            RESULTS,
            {"results": [{"id": stale.pk, "lease_token": claimed[stale.pk], "outcome": "sent"}]},
            format="json",
        )
        .json()["results"][0]
    )
    assert (refused["recorded"], refused["code"]) == (False, "stale_lease")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"results": []},
        {"results": [{"id": 1, "outcome": "maybe"}]},
        {"results": [{"id": 1, "outcome": "sent"}, {"id": 1, "outcome": "sent"}]},
        {"results": [{"id": i + 1, "outcome": "sent"} for i in range(501)]},
    ],
    ids=["no-results", "empty", "bad-outcome", "same-email-twice", "too-many"],
)
def test_a_bad_batch_is_400_and_records_nothing(org, owner, relay, body):
    email = pending(owner, relay)
    client = client_for(owner)
    claim_one(client, email)
    before = snapshot(email)
    answer = client.post(RESULTS, body, format="json")
    assert answer.status_code == 400, answer.content
    assert snapshot(email) == before


def test_an_id_beyond_any_row_is_a_400_not_an_overflow(org, owner):
    """Found by schemathesis: an id over 64 bits reached the database (a 500)."""
    response = client_for(owner).post(
        f"{EMAILS}delivery-results/",
        {"results": [{"id": 852005496928476063596544, "outcome": "failed"}]},
    )
    assert response.status_code == 400, response.content
    assert "id" in str(response.json())
