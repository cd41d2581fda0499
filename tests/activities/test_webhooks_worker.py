"""Webhook notifications delivered by a real Celery worker (a subprocess) to a real
receiver on loopback: the task's own retry (``self.retry``) until the receiver answers."""

from __future__ import annotations

import pytest
from django.db import transaction

from activities.models import WebhookDelivery, WebhookEvent, WebhookEventState
from activities.services.webhooks import webhook_event_emit
from tests.celery_worker import private_broker, running_worker, wait_for, worker_env
from tests.factories import WebhookEndpointFactory
from tests.smtp import free_port
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_a_worker_retries_a_notification_until_the_fourth_try_is_answered(org, receiver, tmp_path):
    endpoint = WebhookEndpointFactory(url=receiver.url("/worker"))
    receiver.answer("/worker", 500, 500, 500, 200)
    with private_broker(tmp_path / "data") as broker:
        with transaction.atomic():  # published on commit, to this test's broker
            (event,) = webhook_event_emit("email.status_changed", {"id": 1}, endpoints=[endpoint])
        env = worker_env(
            broker=broker,
            smtp_port=free_port(),
            CRM_WEBHOOK_RETRY_SCHEDULE="0,0,0",  # the backoff's length, not its waits
            CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        )
        with running_worker("webhooks", tmp_path, env) as worker:
            wait_for(
                lambda: WebhookEvent.objects.filter(
                    pk=event.pk,
                    state__in=[WebhookEventState.DELIVERED, WebhookEventState.ABANDONED],
                ).exists(),
                what="the notification delivered",
                workers=(worker,),
            )
    event.refresh_from_db()
    assert (event.state, event.attempts) == (WebhookEventState.DELIVERED, 4)
    requests = receiver.received("/worker")
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {event.message_id}
    assert requests[-1].verified(endpoint.secret) == event.payload
    assert list(
        WebhookDelivery.objects.filter(event=event)
        .order_by("attempt")
        .values_list("status_code", flat=True)
    ) == [500, 500, 500, 200]
