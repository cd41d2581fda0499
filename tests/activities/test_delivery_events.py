"""Delivery events per recipient: providers' tracking webhooks (Mailgun, Postmark,
SparkPost) posted over HTTP to the live server in each provider's documented payload
shape, through anymail's views and its ``tracking`` signal into
``delivery_event_record``: the secret required, each event stored once, the state of a
recipient never moving backwards, hard bounces and complaints suppressing the address
(and the next send refused in words), soft bounces not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from activities.models import (
    DeliveryEvent,
    EmailEvent,
    SuppressedAddress,
)
from activities.services.delivery_events import delivery_event_record
from tests.factories import ContactFactory, sent_email
from tests.services import need_postgresql

SECRET = "hooks:s3cret-for-tests"
SIGNING_KEY = "mailgun-signing-key-for-tests"
ANN = "ann@customers.example.org"
BO = "bo@customers.example.org"
WHEN = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture
def configured(settings, org):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    return settings


def post(url: str, body: bytes, auth: str | None = SECRET) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- each provider's tracking payload, as its documentation shows it ----------------
# kind: delivered, hard, soft, complained, opened, clicked, unsubscribed.


def mailgun(kind: str, message_id: str, recipient: str, at: datetime = WHEN) -> bytes:
    """Mailgun's JSON webhook (``event-data``), signed with the webhook signing key."""
    event, extra = {
        "delivered": ("delivered", {"delivery-status": {"code": 250, "message": "OK"}}),
        "hard": (
            "failed",
            {
                "severity": "permanent",
                "reason": "bounce",
                "delivery-status": {
                    "code": 550,
                    "message": "5.1.1 The email account that you tried to reach does not exist",
                    "description": "No such mailbox",
                },
            },
        ),
        "soft": (
            "failed",
            {
                "severity": "temporary",
                "reason": "generic",
                "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"},
            },
        ),
        "complained": ("complained", {}),
        "opened": ("opened", {"client-info": {"user-agent": "Mozilla/5.0"}}),
        "clicked": ("clicked", {"url": "https://example.com/offer"}),
        "unsubscribed": ("unsubscribed", {}),
    }[kind]
    timestamp, token = str(int(at.timestamp())), f"token-{next(_ids):046d}"
    signature = hmac.new(
        SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    payload = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "id": f"G9Bn5sl1TC6{next(_ids)}",
            "timestamp": at.timestamp(),
            "recipient": recipient,
            "message": {"headers": {"message-id": message_id.strip("<>"), "to": recipient}},
            **extra,
        },
    }
    return json.dumps(payload).encode()


def postmark(kind: str, message_id: str, recipient: str, at: datetime = WHEN) -> bytes:
    """Postmark's webhooks: one record per post, by RecordType."""
    stamp = at.isoformat().replace("+00:00", "Z")
    bounce = {"ID": next(_ids), "Email": recipient, "BouncedAt": stamp, "MessageID": message_id}
    payload = {
        "delivered": {
            "RecordType": "Delivery",
            "MessageID": message_id,
            "Recipient": recipient,
            "DeliveredAt": stamp,
            "Details": "Test delivery webhook details",
        },
        "hard": {
            **bounce,
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "TypeCode": 1,
            "Description": "The server was unable to deliver your message (ex: unknown user).",
            "Details": "smtp;550 5.1.1 unknown user",
        },
        "soft": {
            **bounce,
            "RecordType": "Bounce",
            "Type": "SoftBounce",
            "TypeCode": 4096,
            "Description": "Mailbox full",
        },
        "complained": {
            **bounce,
            "RecordType": "SpamComplaint",
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Description": "The subscriber explicitly marked this message as spam.",
        },
        "opened": {
            "RecordType": "Open",
            "MessageID": message_id,
            "Recipient": recipient,
            "ReceivedAt": stamp,
            "FirstOpen": True,
        },
        "clicked": {
            "RecordType": "Click",
            "MessageID": message_id,
            "Recipient": recipient,
            "ReceivedAt": stamp,
            "OriginalLink": "https://example.com/offer",
        },
        "unsubscribed": {
            "RecordType": "SubscriptionChange",
            "MessageID": message_id,
            "Recipient": recipient,
            "ChangedAt": stamp,
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        },
    }[kind]
    return json.dumps(payload).encode()


def sparkpost(kind: str, message_id: str, recipient: str, at: datetime = WHEN) -> bytes:
    """A SparkPost webhook batch of one ``message_event`` / ``track_event``."""
    common = {
        "event_id": f"9299{next(_ids):014d}",
        "transmission_id": message_id,
        "raw_rcpt_to": recipient,
        "rcpt_to": recipient.lower(),
        "timestamp": str(int(at.timestamp())),
    }
    group, event = {
        "delivered": ("message_event", {"type": "delivery", "raw_reason": "250 2.0.0 OK"}),
        "hard": (
            "message_event",
            {
                "type": "bounce",
                "bounce_class": "10",
                "raw_reason": "550 5.1.1 <ann@customers.example.org>: Recipient unknown",
            },
        ),
        "soft": (
            "message_event",
            {"type": "bounce", "bounce_class": "22", "raw_reason": "452 4.2.2 Mailbox full"},
        ),
        "complained": ("message_event", {"type": "spam_complaint", "fbtype": "abuse"}),
        "opened": ("track_event", {"type": "open", "user_agent": "Mozilla/5.0"}),
        "clicked": (
            "track_event",
            {"type": "click", "target_link_url": "https://example.com/offer"},
        ),
        "unsubscribed": ("unsubscribe_event", {"type": "link_unsubscribe"}),
    }[kind]
    return json.dumps([{"msys": {group: {**common, **event}}}]).encode()


PROVIDERS: dict[str, Callable[..., bytes]] = {
    "mailgun": mailgun,
    "postmark": postmark,
    "sparkpost": sparkpost,
}
PROVIDER_IDS = {
    "mailgun": "<20261203100000.1.ABC@mg.example.com>",
    "postmark": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "sparkpost": "84320004920657898",
}

# kind -> (recipient state, suppression reason or None)
OUTCOMES = {
    "delivered": ("delivered", None),
    "hard": ("bounced", "bounce"),
    "soft": ("deferred", None),
    "complained": ("complained", "complaint"),
    "opened": ("opened", None),
    "clicked": ("clicked", None),
}


def provider_email(provider: str, to: tuple[str, ...] = (ANN, BO)):
    return sent_email(to=list(to), provider_ids={address: PROVIDER_IDS[provider] for address in to})


def tracking_url(live_server, provider: str) -> str:
    return f"{live_server.url}/anymail/{provider}/tracking/"


# --- over HTTP, every provider ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("kind", list(OUTCOMES))
def test_a_tracking_event_posted_by_the_provider_is_recorded_for_its_recipient(
    configured, live_server, provider, kind
):
    email = provider_email(provider)
    body = PROVIDERS[provider](kind, PROVIDER_IDS[provider], ANN)
    assert post(tracking_url(live_server, provider), body) == (200, b"")
    state, suppressed = OUTCOMES[kind]
    ann, bo = email.parties.order_by("position")
    ann.refresh_from_db()
    assert ann.delivery_state == state and ann.delivery_updated_at == WHEN
    assert bo.delivery_state == "sent"  # the other recipient is untouched
    event = DeliveryEvent.objects.get()
    assert (event.email, event.party, event.occurred_at) == (email, ann, WHEN)
    assert event.provider.lower() == provider and event.raw
    timeline = email.events.get(kind="delivery")
    assert ANN in timeline.reason and timeline.data["state"] == state
    listed = dict(SuppressedAddress.objects.values_list("address", "reason"))
    assert listed == ({ANN: suppressed} if suppressed else {})
    if suppressed:
        entry = SuppressedAddress.objects.get()
        assert f"email #{email.pk}" in entry.note and provider in entry.note.lower()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_same_event_posted_twice_is_stored_once(configured, live_server, provider):
    email = provider_email(provider)
    body = PROVIDERS[provider]("hard", PROVIDER_IDS[provider], ANN)
    for _ in range(2):
        assert post(tracking_url(live_server, provider), body)[0] == 200
    assert DeliveryEvent.objects.count() == 1
    assert email.events.filter(kind="delivery").count() == 1
    assert SuppressedAddress.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("auth", [None, "hooks:wrong"])
def test_without_the_secret_a_tracking_post_is_a_401_and_writes_nothing(
    configured, live_server, provider, auth
):
    provider_email(provider)
    body = PROVIDERS[provider]("hard", PROVIDER_IDS[provider], ANN)
    status, answer = post(tracking_url(live_server, provider), body, auth=auth)
    assert status == 401 and json.loads(answer)["code"] == "webhook_unauthorized"
    assert not DeliveryEvent.objects.exists() and not SuppressedAddress.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_until_the_secret_is_configured_tracking_webhooks_are_off_in_words(
    settings, org, live_server
):
    settings.ANYMAIL = {}
    provider_email("postmark")
    body = postmark("hard", PROVIDER_IDS["postmark"], ANN)
    status, answer = post(tracking_url(live_server, "postmark"), body)
    assert status == 503
    assert json.loads(answer)["detail"] == (
        "tracking Postmark webhooks are off until ANYMAIL_WEBHOOK_SECRET is set"
    )
    assert not DeliveryEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_event_for_a_message_not_ours_is_a_200_and_writes_nothing(
    configured, live_server, provider
):
    email = provider_email(provider)
    body = PROVIDERS[provider]("hard", "<not-ours@elsewhere.example>", ANN)
    assert post(tracking_url(live_server, provider), body)[0] == 200
    assert not DeliveryEvent.objects.exists() and not SuppressedAddress.objects.exists()
    assert not email.events.filter(kind="delivery").exists()


@pytest.mark.django_db(transaction=True)
def test_an_inbound_payload_at_the_tracking_url_is_a_400_naming_it(configured, live_server):
    body = json.dumps({"FromFull": {"Email": ANN}, "To": "support@example.com"}).encode()
    status, answer = post(tracking_url(live_server, "postmark"), body)
    assert status == 400 and json.loads(answer)["code"] == "invalid_webhook_payload"
    assert not DeliveryEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_provider_unsubscribe_is_our_unsubscribe_link(configured, live_server):
    contact = ContactFactory(email=ANN)
    email = provider_email("postmark", to=(ANN,))
    body = postmark("unsubscribed", PROVIDER_IDS["postmark"], ANN)
    assert post(tracking_url(live_server, "postmark"), body)[0] == 200
    contact.refresh_from_db()
    email.refresh_from_db()
    assert contact.do_not_bulk_email and email.unsubscribed_at is not None
    assert email.parties.get().delivery_state == "unsubscribed"
    assert email.events.filter(kind="note", data__unsubscribed=ANN).count() == 1


# --- the rules, through the service -------------------------------------------------


def record(email, event_type: str, at: datetime, **fields):
    return delivery_event_record(
        provider="Postmark",
        event_type=event_type,
        message_id=email.message_id,
        recipient=ANN,
        occurred_at=at,
        event_id=f"{event_type}-{at.isoformat()}",
        **fields,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arrivals", "final"),
    [
        (["opened", "delivered"], "opened"),  # delivered late: opened implies it
        (["clicked", "opened", "delivered"], "clicked"),
        (["delivered", "deferred"], "delivered"),  # a deferral older than delivery
        (["deferred", "delivered", "opened"], "opened"),
        (["delivered", "bounced"], "bounced"),  # an asynchronous bounce
        (["bounced", "opened"], "bounced"),
        (["opened", "complained", "clicked"], "complained"),
        (["queued", "sent"], "sent"),
    ],
)
def test_a_recipient_state_only_moves_up_its_rank_whatever_the_order(org, arrivals, final):
    email = sent_email(to=[ANN])
    for minutes, event_type in enumerate(arrivals):
        record(email, event_type, WHEN + timedelta(minutes=minutes), reject_reason="bounced")
    party = email.parties.get()
    assert party.delivery_state == final
    assert DeliveryEvent.objects.count() == len(arrivals)
    assert email.events.filter(kind="delivery").count() == len(arrivals)


@pytest.mark.django_db
def test_events_that_are_not_states_are_recorded_and_change_nothing(org):
    email = sent_email(to=[ANN])
    record(email, "autoresponded", WHEN)
    record(email, "unknown", WHEN)
    assert email.parties.get().delivery_state == "sent"
    assert DeliveryEvent.objects.count() == 2


@pytest.mark.django_db
def test_an_event_finds_its_email_by_our_message_id_without_angle_brackets(org):
    email = sent_email(to=[ANN], provider_ids={ANN: "prov-1"})
    recorded = delivery_event_record(
        provider="Mailgun",
        event_type="delivered",
        message_id=email.message_id.strip("<>"),
        recipient=ANN.upper(),
        occurred_at=WHEN,
        event_id="e-1",
    )
    assert recorded is not None and recorded.event.email == email
    assert email.parties.get().delivery_state == "delivered"


@pytest.mark.django_db
def test_a_raw_provider_event_is_kept_bounded(org):
    email = sent_email(to=[ANN])
    recorded = record(email, "delivered", WHEN, raw={"Details": "x" * 100_000})
    assert recorded is not None
    assert recorded.event.raw["truncated"] is True
    assert len(recorded.event.raw["excerpt"]) <= 16_000


@pytest.mark.django_db
def test_a_hard_bounce_upgrades_a_manual_entry_so_that_sends_are_refused(org, staff):
    SuppressedAddress.objects.create(address=ANN, reason="manual", note="asked by phone")
    email = sent_email(to=[ANN])
    record(email, "bounced", WHEN, reject_reason="bounced", description="unknown user")
    entry = SuppressedAddress.objects.get()
    assert entry.reason == "bounce"
    assert entry.note.startswith("asked by phone\n") and "unknown user" in entry.note


@pytest.mark.django_db(transaction=True)
def test_the_same_event_recorded_concurrently_is_stored_once_on_postgresql(org):
    need_postgresql()
    email = sent_email(to=[ANN])
    barrier = threading.Barrier(4)
    results: list[object] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(record(email, "bounced", WHEN, reject_reason="bounced"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.created for r in results) == [False, False, False, True]  # type: ignore[attr-defined]
    assert DeliveryEvent.objects.count() == 1
    assert EmailEvent.objects.filter(email=email, kind="delivery").count() == 1
    assert SuppressedAddress.objects.count() == 1


@pytest.mark.django_db
def test_nul_characters_in_a_provider_event_are_dropped_not_a_server_error(org):
    email = sent_email(to=[ANN])
    recorded = record(email, "delivered", WHEN, description="ok\x00", raw={"Details": "a\x00b"})
    assert recorded is not None
    recorded.event.refresh_from_db()
    assert recorded.event.description == "ok" and recorded.event.raw == {"Details": "ab"}
