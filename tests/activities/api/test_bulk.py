"""bulk-sends/ over the REST API, with real token authentication.

The job's run is called in the test (``bulk_send_run``) where a worker would run it,
and its emails are delivered with the real chunk task to the in-test SMTP server.
"""

from __future__ import annotations

import pytest

from activities.models import BulkSend, BulkSendStatus, Email, EmailStatus
from activities.services.bulk import bulk_send_run, bulk_send_start
from activities.tasks import deliver_email_chunk
from common.models import IdempotencyRecord
from crm.models import EmailApproval
from tests.api import client_for, count_queries
from tests.factories import (
    AccountFactory,
    ContactFactory,
    TagFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LIST = "/api/v1/bulk-sends/"


def detail(job) -> str:
    return f"/api/v1/bulk-sends/{job.pk}/"


def cancel(job) -> str:
    return f"/api/v1/bulk-sends/{job.pk}/cancel/"


@pytest.fixture
def template():
    return TemplateFactory(title="News", subject="News for {{ contact.first_name }}")


@pytest.fixture
def acme():
    return AccountFactory(name="Acme AS")


def body(template, sender, query=None, **extra) -> dict:
    kind = "queue" if hasattr(sender, "members") else "user"
    return {
        "template": template.pk,
        "sender": {"type": kind, "id": sender.pk},
        "query": query if query is not None else {},
        "regarding": None,
        **extra,
    }


def start_job(template, sender, actor, query=None) -> BulkSend:
    return bulk_send_start(template=template, sender=sender, query=query or {}, actor=actor)


# --- The whole way: start, run, deliver, watch ---------------------------------------


def test_a_bulk_send_started_over_the_api_shows_its_progress_as_it_runs(
    org, owner, team_queue, template, acme, smtp_settings, django_capture_on_commit_callbacks
):
    vip = TagFactory(name="vip")
    reached = [
        ContactFactory(account=acme, email=f"reader{i}@customers.example.org") for i in range(4)
    ]
    bouncing = ContactFactory(account=acme, email="gone@customers.example.org")
    no_address = ContactFactory(account=acme, email="")
    unwanted = ContactFactory(account=acme, do_not_bulk_email=True)
    for contact in [*reached, bouncing, no_address, unwanted]:
        contact.tags.add(vip)
    ContactFactory(account=acme)  # not tagged
    ContactFactory(account=AccountFactory()).tags.add(vip)  # another account
    smtp_settings.handler.reject_recipients.add("gone@customers.example.org")
    client = client_for(owner)

    with django_capture_on_commit_callbacks() as on_commit:
        answer = client.post(
            LIST, body(template, team_queue, {"account": acme.pk, "tag": "VIP"}), format="json"
        )

    assert answer.status_code == 202, answer.json()
    started = answer.json()
    job = BulkSend.objects.get()
    assert started["id"] == job.pk and started["status"] == "queued"
    assert started["total"] == 7
    assert started["sender"] == {"type": "queue", "id": team_queue.pk}
    assert started["template"] == template.pk
    assert started["query"] == {"account": acme.pk, "tag": "VIP"}
    assert started["created_by"] == owner.pk
    assert len(on_commit) == 1  # the run is queued once the request commits
    assert not Email.objects.exists()

    bulk_send_run(job_id=job.pk)  # what the worker does
    running = client.get(detail(job)).json()
    assert running["status"] == "completed"
    assert (running["created"], running["sent"], running["failed"]) == (5, 0, 0)

    ids = list(Email.objects.filter(bulk_send=job).values_list("pk", flat=True))
    deliver_email_chunk.apply(args=(ids,))
    answer = client.get(detail(job))

    assert answer.status_code == 200
    progress = answer.json()
    assert {
        k: progress[k] for k in ("status", "total", "created", "sent", "failed", "skipped")
    } == {
        "status": "completed",
        "total": 7,
        "created": 5,
        "sent": 4,
        "failed": 1,
        "skipped": 2,
    }
    assert progress["skipped_by_reason"] == {"no_address": 1, "do_not_bulk_email": 1}
    assert progress["started_at"] and progress["finished_at"]
    assert progress["canceled_at"] is None and progress["error"] is None
    received = sorted(r for m in smtp_settings.messages for r in m.rcpt_tos)
    assert received == sorted(c.email for c in reached)
    job.refresh_from_db()
    assert job.status == BulkSendStatus.COMPLETED
    assert Email.objects.filter(bulk_send=job, status=EmailStatus.FAILED).get().bulk_contact == (
        bouncing
    )


def test_start_answers_202_with_the_queued_job_and_defaults_the_sender_to_the_caller(
    org, owner, template
):
    ContactFactory.create_batch(3, city="Bergen")
    ContactFactory(city="Oslo")

    answer = client_for(owner).post(
        LIST, {"template": template.pk, "query": {"city": "bergen"}}, format="json"
    )

    assert answer.status_code == 202
    assert answer.json()["status"] == "queued"
    job = BulkSend.objects.get()
    assert (job.sender_user, job.sender_queue, job.total) == (owner, None, 3)
    assert job.query == {"city": "bergen"} and job.regarding is None
    assert answer.json()["sender"] == {"type": "user", "id": owner.pk}


def test_start_keeps_the_record_every_email_is_regarding(org, owner, template, acme):
    answer = client_for(owner).post(
        LIST,
        body(template, owner, {"account": acme.pk}, regarding={"type": "account", "id": acme.pk}),
        format="json",
    )

    assert answer.status_code == 202
    assert answer.json()["regarding"] == {"type": "account", "id": acme.pk}
    assert BulkSend.objects.get().regarding == acme


def test_the_same_idempotency_key_starts_one_job(org, owner, team_queue, template):
    ContactFactory.create_batch(2)
    client = client_for(owner)
    headers = {"HTTP_IDEMPOTENCY_KEY": "bulk-2026-11-news"}

    first = client.post(LIST, body(template, team_queue), format="json", **headers)
    again = client.post(LIST, body(template, team_queue), format="json", **headers)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert BulkSend.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


# --- Who may do what -------------------------------------------------------------------


def test_anonymous_requests_are_refused_with_401(org, owner, team_queue, template):
    job = start_job(template, team_queue, owner)
    anonymous = client_for(None)

    answers = [
        anonymous.get(LIST),
        anonymous.post(LIST, body(template, team_queue), format="json"),
        anonymous.get(detail(job)),
        anonymous.post(cancel(job), {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [401] * 4
    job.refresh_from_db()
    assert job.status == BulkSendStatus.QUEUED
    assert BulkSend.objects.count() == 1


def test_sending_as_a_queue_one_is_not_a_member_of_is_403_sender_not_allowed(
    org, outsider, team_queue, template
):
    answer = client_for(outsider).post(LIST, body(template, team_queue), format="json")

    assert answer.status_code == 403
    assert answer.json()["code"] == "sender_not_allowed"
    assert "Support" in answer.json()["detail"]
    assert not BulkSend.objects.exists()


def test_sending_as_another_user_is_403_sender_not_allowed(org, owner, teammate, template):
    answer = client_for(teammate).post(LIST, body(template, owner), format="json")

    assert answer.status_code == 403
    assert answer.json()["code"] == "sender_not_allowed"
    assert not BulkSend.objects.exists()


def test_an_unapproved_sender_is_400_sender_not_approved(org, owner, team_queue, template):
    team_queue.email_router_access_approval = EmailApproval.PENDING
    team_queue.save()

    answer = client_for(owner).post(LIST, body(template, team_queue), format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "sender_not_approved"
    assert "support@example.com" in answer.json()["detail"]
    assert not BulkSend.objects.exists()


def test_a_sender_without_an_address_is_400_invalid_address(org, template):
    nobody = UserFactory(username="noaddress", email="")

    answer = client_for(nobody).post(LIST, body(template, nobody), format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_address"
    assert not BulkSend.objects.exists()


def test_a_job_is_seen_by_its_owner_teammates_and_staff_and_not_by_outsiders(
    org, owner, teammate, outsider, staff, team_queue, template
):
    job = start_job(template, team_queue, owner)
    own = start_job(template, outsider, outsider)

    def seen(user) -> tuple[list[int], int]:
        client = client_for(user)
        listed = [j["id"] for j in client.get(LIST).json()["results"]]
        return listed, client.get(detail(job)).status_code

    assert seen(owner) == ([job.pk], 200)
    assert seen(teammate) == ([job.pk], 200)
    assert seen(staff) == ([own.pk, job.pk], 200)
    outsiders_view = seen(outsider)
    assert outsiders_view == ([own.pk], 404)
    answer = client_for(outsider).post(cancel(job), {}, format="json")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    job.refresh_from_db()
    assert job.status == BulkSendStatus.QUEUED


def test_a_teammate_may_cancel_a_job_of_their_queue(org, owner, teammate, team_queue, template):
    job = start_job(template, team_queue, owner)

    answer = client_for(teammate).post(cancel(job), {}, format="json")

    assert answer.status_code == 200
    job.refresh_from_db()
    assert job.status == BulkSendStatus.CANCELED


def test_a_job_seen_through_a_queue_one_left_is_no_longer_visible(
    org, owner, teammate, team_queue, template
):
    job = start_job(template, team_queue, owner)
    team_queue.members.remove(teammate)

    assert client_for(teammate).get(detail(job)).status_code == 404
    assert client_for(teammate).post(cancel(job), {}, format="json").status_code == 404
    job.refresh_from_db()
    assert job.status == BulkSendStatus.QUEUED


# --- Bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"colour": "red"}, "colour"),
        ({"account": "one"}, "account"),
        ({"account": 999999}, "999999"),
        ({"account": True}, "account"),
        ({"account": 2**70}, "account"),
        ({"account": -3}, "account"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-45"}, "created_before"),
        ({"created_after": 20260101}, "created_after"),
        ({"city": ["Oslo"]}, "city"),
        ({"tag": "x" * 101}, "tag"),
        ({"city": "Os\x00lo"}, "city"),
    ],
)
def test_a_bad_query_key_or_value_is_400_naming_it_and_starts_nothing(
    org, owner, template, query, named
):
    answer = client_for(owner).post(LIST, body(template, owner, query), format="json")

    assert answer.status_code == 400, answer.content
    assert named in answer.content.decode()
    assert not BulkSend.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"query": "city=Oslo"}, "query"),
        ({"query": ["city", "Oslo"]}, "query"),
        ({"query": None}, "query"),
        ({"template": 999999}, "template"),
        ({"template": "news"}, "template"),
        ({"template": 2**70}, "template"),
        ({"template": None}, "template"),
        ({"sender": {"type": "contact", "id": 1}}, "sender"),
        ({"sender": {"type": "queue", "id": 999999}}, "sender"),
        ({"sender": "alice"}, "sender"),
        ({"regarding": {"type": "account", "id": 999999}}, "regarding"),
        ({"regarding": {"type": "planet", "id": 1}}, "regarding"),
    ],
)
def test_a_malformed_request_is_400_naming_the_field(org, owner, template, change, field):
    answer = client_for(owner).post(LIST, {**body(template, owner), **change}, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not BulkSend.objects.exists()


def test_a_missing_template_is_400(org, owner):
    answer = client_for(owner).post(LIST, {"query": {}}, format="json")

    assert answer.status_code == 400
    assert "template" in answer.json()


def test_a_template_for_accounts_is_refused_for_contacts(org, owner):
    accounts_template = TemplateFactory(record_type="account")

    answer = client_for(owner).post(LIST, body(accounts_template, owner), format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"
    assert "contacts" in answer.json()["detail"]
    assert not BulkSend.objects.exists()


def test_a_form_encoded_start_is_415(org, owner, template):
    answer = client_for(owner).post(LIST, {"template": template.pk}, format="multipart")

    assert answer.status_code == 415
    assert not BulkSend.objects.exists()


@pytest.mark.parametrize("job_id", ["abc", "1.5", "null,null", str(2**70), "-1", "0"])
def test_a_job_id_that_does_not_name_a_job_is_a_json_404(org, owner, job_id):
    client = client_for(owner)

    answers = [
        client.get(f"{LIST}{job_id}/"),
        client.post(f"{LIST}{job_id}/cancel/", {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [404, 404]
    assert all(a.json()["code"] == "not_found" for a in answers)


@pytest.mark.parametrize(
    "params", ["status=started", "template=abc", "sender_queue=1.5", "ordering=nonsense"]
)
def test_bad_list_parameters_are_400_or_ignored_never_500(org, owner, params):
    answer = client_for(owner).get(f"{LIST}?{params}")

    assert answer.status_code in (200, 400)


# --- Cancel ----------------------------------------------------------------------------


def test_cancel_answers_the_canceled_job_and_a_second_cancel_is_409(
    org, owner, team_queue, template
):
    ContactFactory.create_batch(3)
    job = start_job(template, team_queue, owner)
    client = client_for(owner)

    first = client.post(cancel(job), {}, format="json")
    again = client.post(cancel(job), {}, format="json")

    assert first.status_code == 200
    assert first.json()["id"] == job.pk and first.json()["status"] == "canceled"
    assert first.json()["canceled_at"] is not None
    assert again.status_code == 409
    assert again.json()["status"] == "canceled"
    assert again.json()["code"] == "invalid_status"
    job.refresh_from_db()
    assert job.status == BulkSendStatus.CANCELED
    assert bulk_send_run(job_id=job.pk).status == BulkSendStatus.CANCELED
    assert not Email.objects.exists()


def test_cancel_of_a_delivered_job_is_409_and_of_one_still_delivering_withdraws(
    org, owner, team_queue, template
):
    ContactFactory.create_batch(4)
    job = bulk_send_run(job_id=start_job(template, team_queue, owner).pk)
    assert job.created == 4
    Email.objects.filter(bulk_send=job).update(status=EmailStatus.SENT)

    answer = client_for(owner).post(cancel(job), {}, format="json")

    assert answer.status_code == 409
    assert answer.json()["status"] == "completed"
    assert Email.objects.filter(bulk_send=job, status=EmailStatus.SENT).count() == 4

    Email.objects.filter(pk__in=Email.objects.filter(bulk_send=job).values("pk")[:2]).update(
        status=EmailStatus.PENDING_SEND
    )
    answer = client_for(owner).post(cancel(job), {}, format="json")
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"
    assert sorted(Email.objects.filter(bulk_send=job).values_list("status", flat=True)) == [
        "canceled",
        "canceled",
        "sent",
        "sent",
    ]


def test_cancel_of_a_running_job_withdraws_its_pending_emails(org, owner, team_queue, template):
    ContactFactory.create_batch(4)
    job = start_job(template, team_queue, owner)
    BulkSend.objects.filter(pk=job.pk).update(status=BulkSendStatus.RUNNING)

    answer = client_for(owner).post(cancel(job), {}, format="json")

    assert answer.status_code == 200
    assert answer.json()["status"] == "canceled"
    assert bulk_send_run(job_id=job.pk).status == BulkSendStatus.CANCELED
    assert not Email.objects.filter(bulk_send=job).exists()


# --- The list --------------------------------------------------------------------------


def test_the_list_filters_by_status_and_is_newest_first(org, owner, team_queue, template):
    first = start_job(template, team_queue, owner)
    second = start_job(template, owner, owner)
    done = bulk_send_run(job_id=start_job(template, team_queue, owner).pk)
    client = client_for(owner)

    def ids(params: str = "") -> list[int]:
        answer = client.get(f"{LIST}?{params}")
        assert answer.status_code == 200
        return [j["id"] for j in answer.json()["results"]]

    assert ids() == [done.pk, second.pk, first.pk]
    assert ids("status=queued") == [second.pk, first.pk]
    assert ids("status=completed&status=canceled") == [done.pk]
    assert ids(f"sender_queue={team_queue.pk}") == [done.pk, first.pk]
    assert ids("ordering=created_at") == [first.pk, second.pk, done.pk]


def test_the_list_costs_the_same_queries_whatever_the_page_size(
    org, owner, team_queue, template, acme
):
    ContactFactory.create_batch(2, account=acme)
    for i in range(12):
        sender = team_queue if i % 2 else owner
        job = start_job(template, sender, owner, {"account": acme.pk})
        if i % 3 == 0:
            bulk_send_run(job_id=job.pk)
    client = client_for(owner)

    small, small_count = count_queries(lambda: client.get(f"{LIST}?page_size=5"))
    large, large_count = count_queries(lambda: client.get(f"{LIST}?page_size=50"))

    assert small.status_code == large.status_code == 200
    assert len(small.json()["results"]) == 5 and len(large.json()["results"]) == 12
    assert small_count == large_count
    by_id = {j["id"]: j for j in large.json()["results"]}
    for job in BulkSend.objects.all():
        assert by_id[job.pk]["created"] == job.created
        assert by_id[job.pk]["sent"] == 0
