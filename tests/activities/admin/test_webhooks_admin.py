"""The admin of webhook endpoints: created through the service (the SSRF guard a form
error, the secret shown once), disabled ones first, and the three actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from activities.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookEventState
from activities.services.webhooks import webhook_event_emit
from tests.factories import WebhookEndpointFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:activities_webhookendpoint_changelist"


@pytest.fixture(scope="module")
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def add_form(**values) -> dict:
    return {
        "url": "http://127.0.0.1:9/hook",
        "description": "ERP",
        "event_types": ["email.status_changed"],
        "format": "standard",
        "active": "on",
        **values,
    }


def test_adding_an_endpoint_shows_its_secret_once(superuser_client):
    response = superuser_client.post(
        reverse("admin:activities_webhookendpoint_add"), add_form(), follow=True
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert any(endpoint.secret in m for m in messages_of(response))
    page = superuser_client.get(
        reverse("admin:activities_webhookendpoint_change", args=[endpoint.pk])
    )
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()


def test_a_refused_target_is_a_form_error_and_nothing_is_saved(superuser_client, settings):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    response = superuser_client.post(
        reverse("admin:activities_webhookendpoint_add"),
        add_form(url="http://169.254.169.254/latest/"),
    )
    assert response.status_code == 200
    assert "link-local" in str(response.context["adminform"].form.errors["url"])
    assert WebhookEndpoint.objects.count() == 0


def test_disabled_endpoints_come_first_with_a_warning(superuser_client):
    WebhookEndpointFactory(url="https://a.example.com/ok")
    WebhookEndpointFactory(
        url="https://b.example.com/down",
        active=False,
        disabled_at="2026-01-01T00:00:00Z",
        disabled_reason="disabled after 5 events in a row could not be delivered",
    )
    response = superuser_client.get(reverse(CHANGELIST))
    rows = list(response.context["cl"].result_list)
    assert [e.url for e in rows] == ["https://b.example.com/down", "https://a.example.com/ok"]
    assert any("disabled after repeated failure" in m for m in messages_of(response))


def test_the_actions_test_reenable_and_retry(
    superuser_client, receiver, django_capture_on_commit_callbacks
):
    endpoint = WebhookEndpointFactory(
        url=receiver.url("/admin-hook"),
        active=False,
        disabled_reason="down",
        failed_events_in_a_row=5,
    )
    (event,) = webhook_event_emit("email.status_changed", {"id": 1}, endpoints=[endpoint])
    WebhookEvent.objects.filter(pk=event.pk).update(state=WebhookEventState.ABANDONED)

    def act(action):
        return superuser_client.post(
            reverse(CHANGELIST),
            {"action": action, "_selected_action": [endpoint.pk]},
            follow=True,
        )

    response = act("send_test_event")
    assert any("delivered (HTTP 200" in m for m in messages_of(response))
    assert receiver.received("/admin-hook")[0].verified(endpoint.secret)["type"] == "webhook.test"
    act("reenable")
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failed_events_in_a_row == 0
    with django_capture_on_commit_callbacks() as callbacks:
        response = act("retry_failed")
    assert any("1 abandoned event(s) queued again" in m for m in messages_of(response))
    event.refresh_from_db()
    assert event.state == WebhookEventState.PENDING and event.attempts == 0
    assert len(callbacks) == 1


def test_the_delivery_log_lists_failures_first(superuser_client, receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url("/admin-log"))
    receiver.answer("/admin-log", 200, 500)
    from activities.services.webhooks import webhook_delivery_attempt

    for n in range(2):
        (event,) = webhook_event_emit("email.status_changed", {"id": n}, endpoints=[endpoint])
        webhook_delivery_attempt(event_id=event.pk)
    response = superuser_client.get(reverse("admin:activities_webhookdelivery_changelist"))
    rows = list(response.context["cl"].result_list)
    assert [d.ok for d in rows] == [False, True]
    assert WebhookDelivery.objects.count() == 2


def test_rotate_secret_shows_the_new_secret_once(superuser_client):
    endpoint = WebhookEndpointFactory()
    before = endpoint.secret
    response = superuser_client.post(
        reverse(CHANGELIST),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != before
    assert any(endpoint.secret in m for m in messages_of(response))
