"""``webhooks/`` over the API: staff only, the secret write-only, refusals as 4xx naming
the cause, the test event and the attempt log."""

from __future__ import annotations

import pytest

from activities.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from activities.services.webhooks import webhook_delivery_attempt, webhook_event_emit
from tests.api import client_for
from tests.factories import WebhookEndpointFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

URL = "/api/v1/webhooks/"


@pytest.fixture(scope="module")
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def create(client, **body):
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["email.status_changed"], **body}
    return client.post(URL, body, format="json")


def test_staff_create_an_endpoint_and_see_its_secret_only_in_that_answer(staff):
    client = client_for(staff)
    answer = create(client, description="ERP", format="genesys")
    assert answer.status_code == 201, answer.content
    data = answer.json()
    secret = data["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret and endpoint.created_by == staff
    assert (endpoint.format, endpoint.description) == ("genesys", "ERP")
    assert data["event_types"] == ["email.status_changed"] and data["active"] is True
    shown = client.get(f"{URL}{endpoint.pk}/").json()
    assert "secret" not in shown and secret not in str(shown)
    assert "secret" not in client.get(URL).json()["results"][0]


def test_the_secret_cannot_be_written(staff):
    client = client_for(staff)
    answer = create(client, secret="whsec_bWluZQ==")
    assert answer.status_code == 400 and "secret" in answer.json()
    endpoint = WebhookEndpointFactory()
    before = endpoint.secret
    patched = client.patch(f"{URL}{endpoint.pk}/", {"secret": "whsec_bWluZQ=="}, format="json")
    assert patched.status_code == 400 and "secret" in patched.json()
    endpoint.refresh_from_db()
    assert endpoint.secret == before


def test_rotate_secret_answers_a_new_secret_once(staff):
    endpoint = WebhookEndpointFactory()
    before = endpoint.secret
    answer = client_for(staff).post(f"{URL}{endpoint.pk}/rotate-secret/")
    assert answer.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret == answer.json()["secret"] != before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", ""),
        ("get", "{id}/"),
        ("patch", "{id}/"),
        ("delete", "{id}/"),
        ("post", "{id}/test/"),
        ("post", "{id}/rotate-secret/"),
        ("get", "{id}/deliveries/"),
    ],
)
def test_non_staff_are_refused_and_anonymous_callers_are_asked_to_sign_in(owner, method, path):
    endpoint = WebhookEndpointFactory()
    before = endpoint.secret
    url = URL + path.format(id=endpoint.pk)
    refused = getattr(client_for(owner), method)(url, {}, format="json")
    assert refused.status_code == 403
    assert "staff" in refused.json()["detail"]
    assert getattr(client_for(None), method)(url, {}, format="json").status_code == 401
    endpoint.refresh_from_db()
    assert endpoint.secret == before and WebhookEndpoint.objects.count() == 1
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": []}, "event_types"),
        ({"event_types": ["email.opened"]}, "event_types"),
        ({"event_types": ["webhook.test"]}, "event_types"),
        ({"event_types": "email.status_changed"}, "event_types"),
        ({"format": "xml"}, "format"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "http://" + "a" * 2000 + ".com/"}, "url"),
        ({"active": "yes"}, "active"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(staff, body, field):
    answer = create(client_for(staff), **body)
    assert answer.status_code == 400, answer.content
    data = answer.json()
    assert field in data or field in data.get("detail", "").lower()
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
    ],
)
def test_a_target_on_a_private_network_is_a_400_naming_the_cause(staff, settings, url, kind):
    settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    client = client_for(staff)
    answer = create(client, url=url)
    assert answer.status_code == 400
    assert answer.json()["code"] == "webhook_target_refused"
    assert kind in answer.json()["detail"]
    assert WebhookEndpoint.objects.count() == 0
    endpoint = WebhookEndpointFactory(url="https://hooks.example.com/x")
    patched = client.patch(f"{URL}{endpoint.pk}/", {"url": url}, format="json")
    assert patched.status_code == 400 and patched.json()["code"] == "webhook_target_refused"
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/x"


def test_patch_changes_an_endpoint_and_active_re_enables_a_disabled_one(staff):
    endpoint = WebhookEndpointFactory(
        active=False, disabled_reason="5 events in a row", failed_events_in_a_row=5
    )
    answer = client_for(staff).patch(
        f"{URL}{endpoint.pk}/",
        {"active": True, "event_types": ["email.received", "bulk_send.progress"]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.disabled_reason == ""
    assert endpoint.failed_events_in_a_row == 0
    assert endpoint.event_types == ["email.received", "bulk_send.progress"]


def test_delete_removes_the_endpoint_with_its_outbox(staff):
    endpoint = WebhookEndpointFactory()
    webhook_event_emit("email.status_changed", {"id": 1}, endpoints=[endpoint])
    assert client_for(staff).delete(f"{URL}{endpoint.pk}/").status_code == 204
    assert WebhookEndpoint.objects.count() == 0 and WebhookEvent.objects.count() == 0


def test_the_test_action_sends_a_signed_test_event_and_answers_the_try(staff, receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url("/api-test"))
    receiver.answer("/api-test", 204)
    answer = client_for(staff).post(f"{URL}{endpoint.pk}/test/")
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["ok"] is True and data["status_code"] == 204
    assert data["event_type"] == "webhook.test" and data["attempt"] == 1
    (request,) = receiver.received("/api-test")
    body = request.verified(endpoint.secret)
    assert body["type"] == "webhook.test" and body["data"]["endpoint"] == endpoint.pk
    assert request.headers["webhook-id"] == data["message_id"]


def test_a_failed_test_event_answers_the_error_and_does_not_count(staff, receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url("/api-test-fails"))
    receiver.answer("/api-test-fails", 500)
    data = client_for(staff).post(f"{URL}{endpoint.pk}/test/").json()
    assert data["ok"] is False and data["status_code"] == 500 and data["error"] == "HTTP 500"
    event = WebhookEvent.objects.get()
    assert event.state == "abandoned" and event.attempts == 1
    endpoint.refresh_from_db()
    assert endpoint.failed_events_in_a_row == 0 and endpoint.last_failure == ""


def test_deliveries_lists_the_tries_newest_first(staff, receiver, settings):
    settings.CRM_WEBHOOK_RETRY_SCHEDULE = [0]
    endpoint = WebhookEndpointFactory(url=receiver.url("/api-log"))
    receiver.answer("/api-log", 500, 200)
    (event,) = webhook_event_emit("email.status_changed", {"id": 1}, endpoints=[endpoint])
    webhook_delivery_attempt(event_id=event.pk)
    webhook_delivery_attempt(event_id=event.pk)
    other = WebhookEndpointFactory()
    webhook_event_emit("email.status_changed", {"id": 2}, endpoints=[other])
    answer = client_for(staff).get(f"{URL}{endpoint.pk}/deliveries/")
    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert [(r["attempt"], r["status_code"], r["ok"]) for r in rows] == [
        (2, 200, True),
        (1, 500, False),
    ]
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.parametrize("path", ["0/", "abc/", "0/test/", "x/deliveries/"])
def test_an_unknown_endpoint_is_a_404(staff, path):
    method = "post" if path.endswith("test/") else "get"
    assert getattr(client_for(staff), method)(URL + path).status_code == 404
