"""Notifications to integrators: the outbox, signed delivery to a real receiver on
loopback, retries, the SSRF guard, and the formats (services.webhooks)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from activities.errors import WebhookTargetRefused
from activities.models import (
    BulkSend,
    Email,
    EmailStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventState,
    WebhookEventType,
    WebhookFormat,
)
from activities.services.bulk import bulk_send_run, bulk_send_start
from activities.services.delivery_events import delivery_event_record
from activities.services.emails import email_create, email_send
from activities.services.inbound import email_record_received
from activities.services.webhooks import (
    webhook_delivery_attempt,
    webhook_event_emit,
    webhook_sweep,
    webhook_target_resolve,
    webhook_url_check,
)
from config.celery import app as celery_app
from tests.api import client_for
from tests.celery_worker import broker_at
from tests.factories import ContactFactory, TemplateFactory, WebhookEndpointFactory, sent_email
from tests.smtp import free_port
from tests.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.django_db

STATUS = WebhookEventType.EMAIL_STATUS_CHANGED


@pytest.fixture(scope="module")
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def no_retry_wait(settings):
    """Each try due at once (the schedule's waits are 0 s), so a test drives the tries
    itself without waiting for a backoff; the schedule's length stays."""
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = [0] * 7


def endpoint_for(receiver: Receiver, path: str, **kwargs) -> WebhookEndpoint:
    return WebhookEndpointFactory(url=receiver.url(path), **kwargs)


def due_now(event: WebhookEvent) -> None:
    """Move the event's next try to now (the clock advanced past its backoff)."""
    WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())


def draft(owner, subject="Quarterly figures") -> Email:
    return email_create(
        actor=owner, to=["Ann Lee <ann@example.com>"], subject=subject, body_text="Hello Ann"
    )


# --- the "Done when": a signed notification for each status change --------------------


def test_an_email_sent_through_the_api_notifies_each_status_change_signed(
    org, owner, receiver, smtp_settings, eager_celery, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, "/done-when")
    client = client_for(owner)
    created = client.post(
        "/api/v1/emails/",
        {"subject": "Renewal", "body_text": "Hello", "to": ["Ann Lee <ann@example.com>"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    email_id = created.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(f"/api/v1/emails/{email_id}/send/", {"issue_send": True}, format="json")
    assert sent.status_code == 202, sent.content
    assert Email.objects.get(pk=email_id).status == EmailStatus.SENT
    assert len(smtp_settings.messages) == 1

    requests = receiver.received("/done-when")
    bodies = [request.verified(endpoint.secret) for request in requests]
    changes = sorted((b["data"]["from"], b["data"]["to"]) for b in bodies)
    assert changes == sorted(
        [("draft", "pending_send"), ("pending_send", "sending"), ("sending", "sent")]
    )
    for body in bodies:
        assert body["type"] == "email.status_changed"
        assert body["data"]["id"] == email_id
        assert body["data"]["subject"].startswith("Renewal")
        assert body["data"]["recipients"] == ["ann@example.com"]
    assert len({r.headers["webhook-id"] for r in requests}) == 3
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {"delivered"}
    assert WebhookDelivery.objects.filter(ok=True, status_code=200).count() == 3


def test_a_signature_made_with_another_secret_is_refused_by_the_receiver(
    org, owner, receiver, django_capture_on_commit_callbacks, eager_celery
):
    from standardwebhooks.webhooks import WebhookVerificationError

    from activities.services.webhooks import new_secret

    endpoint_for(receiver, "/other-secret")
    with django_capture_on_commit_callbacks(execute=True):
        email_send(email=draft(owner), actor=owner)
    request = receiver.received("/other-secret")[0]
    with pytest.raises(WebhookVerificationError):
        request.verified(new_secret())


# --- retries ---------------------------------------------------------------------------


def test_a_receiver_answering_500_three_times_gets_the_event_on_the_fourth_try(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, "/flaky")
    receiver.answer("/flaky", 500, 500, 500, 200)
    with django_capture_on_commit_callbacks(execute=False):
        email_send(email=draft(owner), actor=owner)
    event = WebhookEvent.objects.get()
    waits = []
    for _ in range(3):
        result = webhook_delivery_attempt(event_id=event.pk)
        assert result.outcome == "retry"
        waits.append(result.retry_in)
        event.refresh_from_db()
        assert event.state == WebhookEventState.FAILED
        # Not due yet: a second task holding the event does nothing.
        assert webhook_delivery_attempt(event_id=event.pk).outcome == "skipped"
        due_now(event)
    assert waits == [30.0, 120.0, 600.0]  # the default schedule
    assert webhook_delivery_attempt(event_id=event.pk).outcome == "delivered"
    event.refresh_from_db()
    assert event.state == WebhookEventState.DELIVERED and event.attempts == 4
    requests = receiver.received("/flaky")
    assert len(requests) == 4
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one message, four tries
    requests[-1].verified(endpoint.secret)
    log = list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))
    assert [(d.attempt, d.status_code, d.ok) for d in log] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert log[0].error == "HTTP 500" and log[0].response_excerpt == "ok"
    endpoint.refresh_from_db()
    assert endpoint.failed_events_in_a_row == 0 and endpoint.last_success_at is not None


def test_after_the_last_try_the_event_is_abandoned(
    org, owner, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = [0, 0]
    endpoint_for(receiver, "/down")
    receiver.answer("/down", 503)
    with django_capture_on_commit_callbacks(execute=False):
        email_send(email=draft(owner), actor=owner)
    event = WebhookEvent.objects.get()
    outcomes = [webhook_delivery_attempt(event_id=event.pk).outcome for _ in range(4)]
    assert outcomes == ["retry", "retry", "abandoned", "skipped"]
    event.refresh_from_db()
    assert event.state == WebhookEventState.ABANDONED and event.attempts == 3
    assert event.last_status == "HTTP 503"
    assert len(receiver.received("/down")) == 3


def test_the_task_retries_through_celery_at_the_events_due_time(
    org, owner, receiver, settings, eager_celery, django_capture_on_commit_callbacks
):
    """The task's own retry: run eagerly, the retry comes before the backoff ends and
    finds the event not due, so nothing is POSTed twice."""
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = [60]
    endpoint = endpoint_for(receiver, "/task-retry")
    receiver.answer("/task-retry", 500, 200)
    with django_capture_on_commit_callbacks(execute=True):
        (event,) = webhook_event_emit(STATUS, {"id": 1}, endpoints=[endpoint])
    event.refresh_from_db()
    assert event.state == WebhookEventState.FAILED
    assert 55 <= (event.next_attempt_at - timezone.now()).total_seconds() <= 60
    assert len(receiver.received("/task-retry")) == 1


def test_an_endpoint_is_disabled_after_n_abandoned_events_and_staff_are_told(
    org, owner, receiver, settings, caplog, django_capture_on_commit_callbacks
):
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = []
    settings.CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS = 2
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    endpoint = endpoint_for(receiver, "/gone")
    receiver.answer("/gone", 404)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            webhook_event_emit(STATUS, {"id": 1}, endpoints=[endpoint])
        for event in WebhookEvent.objects.all():
            assert webhook_delivery_attempt(event_id=event.pk).outcome == "abandoned"
    endpoint.refresh_from_db()
    assert not endpoint.active and endpoint.disabled_at is not None
    assert "2 events in a row" in endpoint.disabled_reason
    assert "HTTP 404" in endpoint.disabled_reason
    assert any(r.levelname == "ERROR" and "disabled" in r.getMessage() for r in caplog.records)
    (notice,) = mail.outbox
    assert notice.to == ["ops@example.com"] and str(endpoint.pk) in notice.subject
    # A disabled endpoint gets no new rows, and what it had left is not sent.
    with django_capture_on_commit_callbacks(execute=True):
        email_send(email=draft(owner), actor=owner)
    assert WebhookEvent.objects.count() == 2
    assert len(receiver.received("/gone")) == 2


def test_a_failure_between_deliveries_does_not_disable_the_endpoint(
    org, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = []
    settings.CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS = 2
    endpoint = endpoint_for(receiver, "/sometimes")
    receiver.answer("/sometimes", 500, 200, 500)
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(3):
            webhook_event_emit(STATUS, {"id": 1}, endpoints=[endpoint])
    outcomes = [
        webhook_delivery_attempt(event_id=pk).outcome
        for pk in WebhookEvent.objects.order_by("pk").values_list("pk", flat=True)
    ]
    assert outcomes == ["abandoned", "delivered", "abandoned"]
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failed_events_in_a_row == 1


# --- the outbox and the transaction ---------------------------------------------------


def test_a_rolled_back_change_writes_no_outbox_row_and_publishes_nothing(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    endpoint_for(receiver, "/rollback")
    email = draft(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            email_send(email=email, actor=owner)
            assert WebhookEvent.objects.count() == 1  # written with the change
            raise RuntimeError("the request failed after the send")
    assert WebhookEvent.objects.count() == 0
    assert callbacks == []
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


def test_no_endpoint_subscribed_writes_nothing(org, owner, receiver):
    endpoint_for(receiver, "/other-type", event_types=[WebhookEventType.EMAIL_RECEIVED])
    endpoint_for(receiver, "/inactive", active=False)
    email_send(email=draft(owner), actor=owner)
    assert WebhookEvent.objects.count() == 0


def test_with_the_broker_down_the_row_stays_pending_and_the_sweep_sends_it(
    org, owner, receiver, tmp_path, caplog, eager_celery, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, "/broker-down")
    celery_app.conf.task_always_eager = False
    # A Redis nothing listens on: the publish fails (after its quick retries).
    transport = celery_app.conf.broker_transport
    celery_app.conf.broker_transport = "redis"  # not the embedded file-system transport
    try:
        with broker_at(f"redis://127.0.0.1:{free_port()}/0", tmp_path):
            with django_capture_on_commit_callbacks(execute=True):
                email_send(email=draft(owner), actor=owner)
    finally:
        celery_app.conf.broker_transport = transport
    assert any("broker unavailable" in r.getMessage() for r in caplog.records)
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEventState.PENDING and event.attempts == 0
    assert receiver.received("/broker-down") == []
    # Not overdue yet: the sweep leaves it to the task that may still come.
    assert webhook_sweep() == []
    WebhookEvent.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    celery_app.conf.task_always_eager = True  # the broker is back: the task runs here
    assert webhook_sweep() == [event.pk]
    event.refresh_from_db()
    assert event.state == WebhookEventState.DELIVERED
    (request,) = receiver.received("/broker-down")
    request.verified(endpoint.secret)


# --- what is POSTed, and where --------------------------------------------------------


def test_a_redirect_is_not_followed_and_counts_as_a_failure(org, receiver):
    endpoint = endpoint_for(receiver, "/redirect")
    receiver.answer(
        "/redirect", Answer(302, {"Location": receiver.url("/redirect-target")}, b"moved")
    )
    (event,) = webhook_event_emit(STATUS, {"id": 7}, endpoints=[endpoint])
    result = webhook_delivery_attempt(event_id=event.pk)
    assert result.outcome == "retry"
    assert receiver.received("/redirect-target") == []
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status_code == 302 and not delivery.ok
    assert "not followed" in delivery.error and "/redirect-target" in delivery.error


def test_the_response_excerpt_is_bounded(org, receiver):
    endpoint = endpoint_for(receiver, "/big")
    receiver.answer("/big", Answer(200, body=b"x" * 100_000))
    (event,) = webhook_event_emit(STATUS, {"id": 7}, endpoints=[endpoint])
    webhook_delivery_attempt(event_id=event.pk)
    assert len(WebhookDelivery.objects.get(event=event).response_excerpt) == 1024


def test_a_receiver_that_does_not_listen_is_a_logged_failure(org, settings):
    endpoint = WebhookEndpointFactory(url=f"http://127.0.0.1:{free_port()}/nobody")
    (event,) = webhook_event_emit(STATUS, {"id": 7}, endpoints=[endpoint])
    assert webhook_delivery_attempt(event_id=event.pk).outcome == "retry"
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status_code is None and not delivery.ok
    assert "refused" in delivery.error.lower() or "connect" in delivery.error.lower()


def test_the_genesys_format_is_the_status_change_notification(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(receiver, "/genesys", format=WebhookFormat.GENESYS)
    email = draft(owner, subject="Genesys")
    with django_capture_on_commit_callbacks(execute=False):
        email_send(email=email, actor=owner)
    (event,) = WebhookEvent.objects.all()
    webhook_delivery_attempt(event_id=event.pk)
    (request,) = receiver.received("/genesys")
    body = request.verified(endpoint.secret)
    assert body["notificationType"] == "StatusChange"
    assert body["messageType"] == "EmailStateChangeMessage"
    assert body["email"]["id"] == f"{email.pk:016x}"
    assert body["email"]["uri"] == f"/api/v2/me/emails/{email.pk:016x}"
    assert body["email"]["state"] == "Completed"
    assert body["email"]["capabilities"] == ["Cancel"]
    assert (body["email"]["crmStatus"], body["email"]["previousCrmStatus"]) == (
        "pending_send",
        "draft",
    )
    assert body["email"]["subject"].startswith("Genesys")
    assert body["email"]["from"] == "alice@staff.example.com"
    assert body["email"]["to"] == ["ann@example.com"]
    assert body["email"]["cc"] == []
    assert body["email"]["direction"] == "outbound"
    assert body["email"]["messageId"] == Email.objects.get(pk=email.pk).message_id


def test_inbound_mail_notifies_email_received(org, team_queue, receiver):
    endpoint = endpoint_for(receiver, "/inbound", event_types=[WebhookEventType.EMAIL_RECEIVED])
    email = email_record_received(
        from_address="Ann Lee <ann@example.com>",
        to=[team_queue.email],
        subject="A question",
        body_text="Hi",
        message_id="<q1@example.com>",
    )
    (event,) = WebhookEvent.objects.filter(endpoint=endpoint)
    assert event.event_type == "email.received"
    assert event.payload["data"]["id"] == email.pk
    assert event.payload["data"]["direction"] == "incoming"
    assert event.payload["data"]["from_address"] == "ann@example.com"
    assert event.payload["data"]["recipients"] == [team_queue.email]


def test_a_bulk_job_notifies_its_progress_and_each_new_email(org, owner, receiver, settings):
    settings.CRM_BULK_CHUNK_SIZE = 2
    progress = endpoint_for(
        receiver, "/bulk", event_types=[WebhookEventType.BULK_SEND_PROGRESS, STATUS]
    )
    for n in range(3):
        ContactFactory(email=f"c{n}@example.com", city="Oslo")
    template = TemplateFactory()
    job = bulk_send_start(template=template, sender=owner, query={"city": "Oslo"}, actor=owner)
    bulk_send_run(job_id=job.pk)
    assert BulkSend.objects.get(pk=job.pk).status == "completed"
    events = WebhookEvent.objects.filter(endpoint=progress).order_by("pk")
    reports = [e.payload["data"] for e in events if e.event_type == "bulk_send.progress"]
    assert [r["created"] for r in reports] == [2, 3, 3]
    assert reports[-1]["status"] == "completed" and reports[-1]["id"] == job.pk
    new_emails = [e.payload["data"] for e in events if e.event_type == STATUS]
    assert len(new_emails) == 3
    assert {(d["from"], d["to"]) for d in new_emails} == {(None, "pending_send")}


def test_a_recorded_delivery_event_notifies_once_and_a_retried_one_not_again(org, owner, receiver):
    """``delivery_event_record`` (every provider's tracking webhook and every bounce)
    writes the notification in its transaction; the provider's retry adds none."""
    endpoint = endpoint_for(
        receiver, "/tracking", event_types=[WebhookEventType.EMAIL_DELIVERY_EVENT]
    )
    email = sent_email(to=["ann@example.com"])
    for _ in range(2):
        delivery_event_record(
            provider="mailgun",
            event_type="bounced",
            message_id=email.message_id,
            recipient="ann@example.com",
            event_id="evt-1",
            reject_reason="bounced",
            permanent=True,
            description="550 no such user",
        )
    (event,) = WebhookEvent.objects.filter(endpoint=endpoint)
    data = event.payload["data"]
    assert (data["id"], data["event"], data["recipient"]) == (
        email.pk,
        "bounced",
        "ann@example.com",
    )
    assert (data["provider"], data["provider_event_id"]) == ("mailgun", "evt-1")
    assert data["description"] == "550 no such user"
    assert webhook_delivery_attempt(event_id=event.pk).outcome == "delivered"
    (request,) = receiver.received("/tracking")
    assert request.verified(endpoint.secret)["data"]["event"] == "bounced"


# --- the SSRF guard -------------------------------------------------------------------

REFUSED_TARGETS = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://localhost:8080/hook", "loopback"),  # a name that resolves to loopback
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_TARGETS)
def test_targets_on_non_public_networks_are_refused_when_not_allowed(settings, url, kind):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(WebhookTargetRefused, match=kind):
        webhook_url_check(url)
    with pytest.raises(WebhookTargetRefused, match=kind):
        webhook_target_resolve(url)


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://does-not-exist.invalid/", "does not resolve"),
        ("http://example.com:99999/", "malformed"),
    ],
)
def test_urls_the_server_will_not_call_are_refused_with_the_cause(settings, url, cause):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(WebhookTargetRefused, match=cause):
        webhook_url_check(url)


def test_the_guard_runs_again_at_delivery_time(org, receiver, settings):
    """An endpoint that was allowed (or whose name resolved elsewhere) when it was saved
    is refused at the try, and nothing reaches the address."""
    endpoint = endpoint_for(receiver, "/rebound")
    (event,) = webhook_event_emit(STATUS, {"id": 7}, endpoints=[endpoint])
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    assert webhook_delivery_attempt(event_id=event.pk).outcome == "retry"
    delivery = WebhookDelivery.objects.get(event=event)
    assert "loopback" in delivery.error and delivery.status_code is None
    assert receiver.received("/rebound") == []


def test_the_try_connects_to_the_address_it_checked(receiver):
    target = webhook_target_resolve(f"http://localhost:{receiver.port}/pinned?x=1")
    assert target.address in ("127.0.0.1", "::1")
    assert target.host_header == f"localhost:{receiver.port}"
    assert target.path == "/pinned?x=1"


def test_a_name_is_tried_at_its_next_address_when_one_refuses(receiver):
    """A name with two checked addresses (as localhost with ::1 and 127.0.0.1): the
    receiver listens on 127.0.0.1 only, so 127.0.0.2 refuses and the next is tried."""
    from activities.services.webhooks.deliver import _post
    from activities.services.webhooks.targets import Target

    target = Target(
        scheme="http",
        host="receiver.test",
        port=receiver.port,
        host_header=f"receiver.test:{receiver.port}",
        path="/next-address",
        addresses=("127.0.0.2", "127.0.0.1"),
    )
    answer = _post(target, body="{}", headers={})
    assert (answer.status_code, answer.error) == (200, "")
    (request,) = receiver.received("/next-address")
    assert request.headers["host"] == f"receiver.test:{receiver.port}"
