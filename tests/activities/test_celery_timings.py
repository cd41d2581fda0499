"""Celery timings that cannot multiply work (issue 10, section 3), in process.

A task published with an ETA is held unacknowledged by a worker until then, and a broker
hands a message held too long to another worker (Redis: the visibility timeout; RabbitMQ:
the consumer timeout), again and again. So only ETAs within the horizon are published,
the sweep publishes later ones once they come within it, every task has time limits,
and long work goes in slices. Publishing is captured here by a fake broker; the real
one is in test_celery_timings_worker.py.
"""

from __future__ import annotations

import runpy
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from celery import current_app
from celery.canvas import Signature
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from kombu.exceptions import OperationalError

from activities import dispatch, tasks
from activities.mail import SMTPBackend
from activities.models import BulkSend, BulkSendStatus, Email, EmailStatus
from activities.services import ratelimit
from activities.services.bulk import bulk_send_run, bulk_send_start, bulk_sends_to_resume
from activities.services.bulk import run as bulk_run
from activities.services.delivery import deliver_chunk, delivery_sweep_and_enqueue
from activities.services.emails import email_cancel, email_create, email_send
from crm.models import OutgoingDelivery
from tests.factories import ContactFactory, QueueFactory, TemplateFactory, UserFactory

HORIZON = 900.0
TWO_HOURS = 2 * 3600.0

# --- helpers ----------------------------------------------------------------------


@dataclass
class Published:
    name: str
    args: tuple
    eta: datetime | None
    countdown: float | None

    @property
    def email_ids(self) -> list[int]:
        return list(self.args[0]) if isinstance(self.args[0], list) else [self.args[0]]


@dataclass
class FakeBroker:
    """Takes what is published (by dispatch and by a task's own retry) and runs it on
    request, as a worker would, each message once."""

    published: list[Published] = field(default_factory=list)
    down: bool = False

    def take(self) -> list[Published]:
        taken, self.published[:] = list(self.published), []
        return taken

    def run_all(self, *, limit: int = 100) -> list[Published]:
        """Run what was published, and what that publishes, until nothing is left."""
        ran = []
        while self.published:
            message = self.published.pop(0)
            current_app.tasks[message.name].apply(args=message.args)
            ran.append(message)
            assert len(ran) <= limit, "the tasks keep publishing each other"
        return ran


@pytest.fixture
def broker(monkeypatch) -> FakeBroker:
    fake = FakeBroker()

    def apply_async(self, args=None, kwargs=None, **options):
        if fake.down:
            raise OperationalError("broker down")
        options = {**self.options, **options}
        fake.published.append(
            Published(self.task, tuple(self.args), options.get("eta"), options.get("countdown"))
        )

    monkeypatch.setattr(Signature, "apply_async", apply_async)
    return fake


@dataclass
class Clock:
    """``timezone.now`` moved on by ``offset``: time passing without waiting for it."""

    offset: timedelta = timedelta(0)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + fake.offset)
    return fake


@pytest.fixture
def timings(settings):
    settings.CRM_ETA_HORIZON_SECONDS = HORIZON
    settings.CRM_RETRY_BACKOFF_SECONDS = 30
    settings.CRM_SWEEP_PENDING_AFTER_SECONDS = 120
    return settings


@pytest.fixture
def tim(db):
    """A sender of our own (the shared personas are being reorganised)."""
    return UserFactory(username="tim", first_name="Tim", email="tim@staff.example.com")


def scheduled(actor, seconds: float, **kwargs) -> Email:
    draft = email_create(
        actor=actor,
        to=["Ann Lee <ann@example.com>"],
        subject="Later",
        body_text="Hi Ann",
        scheduled_at=timezone.now() + timedelta(seconds=seconds),
        **kwargs,
    )
    return draft


def sent(django_capture_on_commit_callbacks, email: Email, sender) -> Email:
    with django_capture_on_commit_callbacks(execute=True):
        email = email_send(email=email, actor=sender)
    return Email.objects.get(pk=email.pk)


def row(email: Email) -> Email:
    return Email.objects.get(pk=email.pk)


# --- settings: the horizon and limits below the broker's redelivery limit ---------

SETTINGS = Path(django_settings.BASE_DIR) / "config" / "settings.py"
TIMING_VARIABLES = (
    "CELERY_BROKER_URL",
    "CELERY_BROKER_VISIBILITY_TIMEOUT",
    "CELERY_BROKER_CONSUMER_TIMEOUT",
    "CELERY_BROKER_TRANSPORT_OPTIONS",
    "CELERY_TASK_SOFT_TIME_LIMIT",
    "CELERY_TASK_TIME_LIMIT",
    "CRM_ETA_HORIZON_SECONDS",
    "CRM_SWEEP_INTERVAL",
    "CRM_TASK_SLICE_SECONDS",
)


@pytest.fixture
def load_settings(monkeypatch, tmp_path):
    """Evaluate config/settings.py afresh with the given environment."""

    def load(**env: str) -> dict:
        for name in TIMING_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path / "data"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS))

    return load


def test_the_defaults_keep_every_hold_below_the_redis_visibility_timeout(load_settings):
    loaded = load_settings(CELERY_BROKER_URL="redis://127.0.0.1:6379/11")

    assert loaded["CELERY_BROKER_TRANSPORT_OPTIONS"] == {
        "visibility_timeout": 3600,
        "socket_connect_timeout": 3.0,  # CRM_REDIS_SOCKET_TIMEOUT
        "socket_timeout": 3.0,
    }
    assert loaded["CRM_ETA_HORIZON_SECONDS"] == HORIZON
    soft, hard = loaded["CELERY_TASK_SOFT_TIME_LIMIT"], loaded["CELERY_TASK_TIME_LIMIT"]
    assert 0 < loaded["CRM_TASK_SLICE_SECONDS"] < soft < hard
    assert HORIZON + 2 * hard < 3600


def test_rabbitmq_gets_no_visibility_timeout_and_defaults_below_its_consumer_timeout(
    load_settings,
):
    loaded = load_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")

    assert "visibility_timeout" not in loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert loaded["CRM_ETA_HORIZON_SECONDS"] + 2 * loaded["CELERY_TASK_TIME_LIMIT"] < 1800


def test_extra_transport_options_are_merged_and_a_scaled_setup_is_accepted(load_settings):
    loaded = load_settings(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/11",
        CELERY_BROKER_VISIBILITY_TIMEOUT="8",
        CELERY_BROKER_TRANSPORT_OPTIONS='{"unacked_restore_interval": 1}',
        CRM_ETA_HORIZON_SECONDS="2",
        CRM_SWEEP_INTERVAL="0.5",
        CELERY_TASK_SOFT_TIME_LIMIT="2",
        CELERY_TASK_TIME_LIMIT="2.5",
    )

    assert loaded["CELERY_BROKER_TRANSPORT_OPTIONS"] == {
        "visibility_timeout": 8,
        "socket_connect_timeout": 3.0,
        "socket_timeout": 3.0,
        "unacked_restore_interval": 1,
    }
    assert loaded["CRM_TASK_SLICE_SECONDS"] == pytest.approx(0.4)  # a fifth of the soft limit


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CELERY_BROKER_URL": "redis://h/1", "CRM_ETA_HORIZON_SECONDS": "3000"},
            "the visibility timeout (CELERY_BROKER_VISIBILITY_TIMEOUT) is 3600 s",
        ),
        (
            {"CELERY_BROKER_URL": "redis://h/1", "CELERY_BROKER_VISIBILITY_TIMEOUT": "1200"},
            "= 1620 s and would be delivered again",
        ),
        (
            {
                "CELERY_BROKER_URL": "redis://h/1",
                "CELERY_BROKER_TRANSPORT_OPTIONS": '{"visibility_timeout": 600}',
            },
            "is 600 s",
        ),
        (
            {"CELERY_BROKER_URL": "amqp://h//", "CRM_ETA_HORIZON_SECONDS": "1200"},
            "CELERY_BROKER_CONSUMER_TIMEOUT (the RabbitMQ consumer timeout) is 1800 s",
        ),
        (
            {"CELERY_BROKER_URL": "amqp://h//", "CELERY_BROKER_CONSUMER_TIMEOUT": "900"},
            "is 900 s",
        ),
        (
            {"CELERY_TASK_SOFT_TIME_LIMIT": "400"},
            "CELERY_TASK_SOFT_TIME_LIMIT (400) must be above 0 and below CELERY_TASK_TIME_LIMIT",
        ),
        ({"CRM_TASK_SLICE_SECONDS": "300"}, "CRM_TASK_SLICE_SECONDS (300) must be above 0"),
        ({"CRM_ETA_HORIZON_SECONDS": "0"}, "CRM_ETA_HORIZON_SECONDS (0) must be above 0"),
        ({"CELERY_BROKER_TRANSPORT_OPTIONS": "{nope"}, "is not valid JSON"),
        ({"CELERY_BROKER_TRANSPORT_OPTIONS": "[1]"}, "must be a JSON object"),
    ],
)
def test_settings_refuse_timings_that_would_let_the_broker_deliver_twice(
    load_settings, env, message
):
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings(**env)

    assert message in str(refused.value)


# --- the horizon rule in dispatch ---------------------------------------------------


def test_dispatch_publishes_within_the_horizon_and_leaves_later_work_to_the_sweep(timings, broker):
    assert dispatch.deliver_email_later(7, countdown=HORIZON) is True
    assert dispatch.deliver_chunk_later([8, 9], countdown=HORIZON + 1) is False
    assert dispatch.deliver_chunk_at([10], eta=timezone.now() + timedelta(hours=2)) is False
    assert dispatch.deliver_chunk_at([11], eta=timezone.now() - timedelta(seconds=5)) is True

    assert [(m.name, m.args) for m in broker.published] == [
        (dispatch.DELIVER_EMAIL, (7,)),
        (dispatch.DELIVER_EMAIL_CHUNK, ([11],)),
    ]
    assert broker.published[0].countdown == HORIZON
    assert dispatch.retry_countdown(30) == 30
    assert dispatch.retry_countdown(-2) == 0
    assert dispatch.retry_countdown(HORIZON + 1) is None


# --- scheduled emails ---------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_scheduled_within_the_horizon_is_published_with_its_eta_once(
    org, tim, timings, broker, clock, django_capture_on_commit_callbacks
):
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, 600), tim)

    [message] = broker.take()
    assert (message.name, message.args) == (dispatch.DELIVER_EMAIL, (email.pk,))
    assert message.eta == email.scheduled_at == email.next_attempt_at
    assert email.task_published_for == email.scheduled_at
    for _ in range(3):  # the sweep knows a task holds it
        clock.advance(60)
        assert delivery_sweep_and_enqueue().coming_due == []
    assert broker.published == []


@pytest.mark.django_db
def test_an_email_scheduled_two_hours_ahead_waits_for_the_sweep_and_is_published_once(
    org, tim, timings, broker, clock, django_capture_on_commit_callbacks, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, TWO_HOURS), tim)

    assert broker.published == []  # beyond the horizon: nothing held by a worker for 2 h
    assert (email.status, email.task_published_for) == (EmailStatus.PENDING_SEND, None)
    assert email.next_attempt_at == email.scheduled_at
    clock.advance(TWO_HOURS - HORIZON - 60)  # not yet within the horizon
    assert delivery_sweep_and_enqueue().coming_due == [] and broker.published == []

    clock.advance(120)  # within it now
    swept = delivery_sweep_and_enqueue()

    assert swept.coming_due == [(email.pk, email.scheduled_at)] and swept.due_pending == []
    [message] = broker.take()
    assert (message.name, message.args) == (dispatch.DELIVER_EMAIL_CHUNK, ([email.pk],))
    assert message.eta == email.scheduled_at
    assert row(email).task_published_for == email.scheduled_at
    for _ in range(5):  # every later sweep leaves it to that task
        clock.advance(30)
        assert delivery_sweep_and_enqueue().coming_due == []
    assert broker.published == []

    clock.advance(HORIZON)  # its time: the worker runs the task
    tasks.deliver_email_chunk.apply(args=message.args)
    assert row(email).status == EmailStatus.SENT and len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_sweep_tries_again_when_the_broker_was_down(
    org, tim, timings, broker, clock, django_capture_on_commit_callbacks
):
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, TWO_HOURS), tim)
    clock.advance(TWO_HOURS - 60)
    broker.down = True

    assert delivery_sweep_and_enqueue().coming_due == [(email.pk, email.scheduled_at)]
    assert broker.published == [] and row(email).task_published_for is None

    broker.down = False
    clock.advance(30)
    assert delivery_sweep_and_enqueue().coming_due == [(email.pk, email.scheduled_at)]
    [message] = broker.take()
    assert message.eta == email.scheduled_at


@pytest.mark.django_db
def test_an_overdue_email_that_missed_its_window_is_still_found_by_the_stale_rule(
    org, tim, timings, broker, clock, django_capture_on_commit_callbacks
):
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, TWO_HOURS), tim)
    clock.advance(TWO_HOURS + 121)  # no sweep ran while it came within the horizon

    swept = delivery_sweep_and_enqueue()

    assert swept.due_pending == [email.pk] and swept.coming_due == []
    [message] = broker.take()
    assert (message.args, message.eta) == (([email.pk],), None)


@pytest.mark.django_db
def test_the_sweep_does_not_publish_canceled_or_externally_sent_emails(
    org, tim, timings, broker, clock, django_capture_on_commit_callbacks
):
    canceled = sent(django_capture_on_commit_callbacks, scheduled(tim, TWO_HOURS), tim)
    email_cancel(email=canceled, actor=tim)
    relay = QueueFactory(
        name="Relay",
        email="relay@example.com",
        members=[tim],
        outgoing_delivery=OutgoingDelivery.EXTERNAL,
    )
    external = sent(
        django_capture_on_commit_callbacks, scheduled(tim, TWO_HOURS, sender=relay), tim
    )
    assert external.sender_queue == relay and external.task_published_for is None
    clock.advance(TWO_HOURS - 60)

    assert delivery_sweep_and_enqueue().coming_due == []
    assert broker.published == []


# --- retries and rate-limit waits ------------------------------------------------------


@contextmanager
def as_worker(task, *args):
    """Run ``task`` as a worker does (not eagerly): its own retry is then published."""
    task.push_request(
        id="task-under-test", args=args, called_directly=False, retries=0, delivery_info={}
    )
    try:
        yield task
    finally:
        task.pop_request()


@pytest.mark.django_db
def test_a_retry_within_the_horizon_is_the_tasks_own_retry_and_the_sweep_keeps_out(
    org, tim, timings, broker, clock, smtp_settings, django_capture_on_commit_callbacks
):
    smtp_settings.handler.fail_data_times = 1
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim)
    broker.take()

    with as_worker(tasks.deliver_email, email.pk) as task, pytest.raises(Retry):
        task.run(email.pk)

    assert row(email).status == EmailStatus.PENDING_SEND
    [retry] = broker.take()  # the task's own retry, with its countdown
    assert (retry.name, retry.args) == (dispatch.DELIVER_EMAIL, (email.pk,))
    assert 28 <= retry.countdown <= 30
    assert row(email).task_published_for == row(email).next_attempt_at
    clock.advance(10)
    assert delivery_sweep_and_enqueue().coming_due == [] and broker.published == []


@pytest.mark.django_db
def test_a_retry_beyond_the_horizon_is_left_to_the_sweep_which_publishes_it_once(
    org,
    tim,
    timings,
    broker,
    clock,
    smtp_settings,
    django_capture_on_commit_callbacks,
):
    timings.CRM_RETRY_BACKOFF_SECONDS = 2000  # the first backoff lies beyond the horizon
    smtp_settings.handler.fail_data_times = 1
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim)
    broker.take()

    with as_worker(tasks.deliver_email, email.pk) as task:
        assert task.run(email.pk) == "left to the sweep"  # no Retry raised

    assert broker.published == []
    waiting = row(email)
    assert waiting.status == EmailStatus.PENDING_SEND and waiting.attempts == 1
    assert waiting.task_published_for != waiting.next_attempt_at  # no task for it
    assert 1990 <= (waiting.next_attempt_at - timezone.now()).total_seconds() <= 2000
    clock.advance(2000 - HORIZON + 30)
    assert delivery_sweep_and_enqueue().coming_due == [(email.pk, waiting.next_attempt_at)]
    [message] = broker.take()
    assert message.eta == waiting.next_attempt_at
    clock.advance(30)
    assert delivery_sweep_and_enqueue().coming_due == [] and broker.published == []

    clock.advance(HORIZON)
    tasks.deliver_email_chunk.apply(args=message.args)
    assert row(email).status == EmailStatus.SENT and len(smtp_settings.messages) == 1


@pytest.mark.django_db
def test_a_chunk_leaves_a_long_retry_and_a_long_pause_of_its_sender_to_the_sweep(
    org, tim, timings, broker, clock, smtp_settings, django_capture_on_commit_callbacks
):
    timings.CRM_RETRY_BACKOFF_SECONDS = 2000  # the retry and the sender's pause
    smtp_settings.handler.fail_data_times = 1
    emails = [sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim) for _ in range(3)]
    ids = [e.pk for e in emails]
    broker.take()

    outcomes = tasks.deliver_email_chunk.apply(args=(ids,)).get()

    assert outcomes == {"retry": 1}
    assert broker.published == []  # neither the retry nor the paused rest
    rows = [row(e) for e in emails]
    assert [r.status for r in rows] == [EmailStatus.PENDING_SEND] * 3
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert all(r.task_published_for != r.next_attempt_at for r in rows)
    clock.advance(2000 - HORIZON + 30)
    coming = delivery_sweep_and_enqueue().coming_due
    assert sorted(pk for pk, _ in coming) == ids
    published = broker.take()
    # The paused rest is due at one moment: one chunk for both; the retry its own.
    assert sorted(m.email_ids for m in published) == [ids[:1], ids[1:]]
    assert all(m.eta > timezone.now() for m in published)
    clock.advance(30)
    assert delivery_sweep_and_enqueue().coming_due == [] and broker.published == []

    clock.advance(HORIZON)
    for message in published:
        tasks.deliver_email_chunk.apply(args=message.args)
    assert [row(e).status for e in emails] == [EmailStatus.SENT] * 3
    assert sorted(m.message["Message-ID"] for m in smtp_settings.messages) == sorted(
        e.message_id for e in emails
    )


@pytest.mark.django_db
def test_a_rate_wait_within_the_horizon_is_published_as_a_countdown(
    org, tim, timings, broker, smtp_settings, django_capture_on_commit_callbacks
):
    tim.send_rate_per_minute = 1
    tim.save()
    emails = [sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim) for _ in range(2)]
    broker.take()

    assert tasks.deliver_email_chunk.apply(args=([e.pk for e in emails],)).get() == {"sent": 1}

    [later] = broker.take()
    assert (later.name, later.args) == (dispatch.DELIVER_EMAIL_CHUNK, ([emails[1].pk],))
    assert 58 <= later.countdown <= 60
    assert row(emails[1]).task_published_for == row(emails[1]).next_attempt_at
    assert ratelimit.take_slot(f"user:{tim.pk}", 1).wait > 0


@pytest.mark.django_db
def test_a_chunk_whose_time_slice_is_spent_hands_the_rest_to_a_new_task(
    org, tim, timings, broker, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CRM_TASK_SLICE_SECONDS = 0  # every batch spends the slice
    emails = [sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim) for _ in range(25)]
    ids = [e.pk for e in emails]
    broker.take()

    result = deliver_chunk(email_ids=ids, owner="test")

    assert result.outcomes == {"sent": 20}  # one claim batch, then the slice ended
    assert (result.rest, result.rest_in) == (ids[20:], 0.0)
    assert all(row(e).task_published_for is not None for e in emails[20:])
    dispatch.deliver_chunk_later(result.rest, countdown=result.rest_in)
    ran = broker.run_all()
    assert [m.email_ids for m in ran] == [ids[20:]]
    assert len(mail.outbox) == 25
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(
        e.message_id for e in emails
    )


# --- time limits --------------------------------------------------------------------


def registered_tasks():
    current_app.loader.import_default_modules()
    return {
        name: task for name, task in current_app.tasks.items() if name.startswith("activities.")
    }


def test_every_task_has_a_soft_and_a_hard_time_limit_below_the_visibility_timeout(settings):
    found = registered_tasks()
    defined = {
        f"activities.tasks.{name}"
        for name, value in vars(tasks).items()
        if getattr(value, "name", "") == f"activities.tasks.{name}"
    }
    assert (
        set(found) == defined
        and {
            "activities.tasks.deliver_email",
            "activities.tasks.deliver_email_chunk",
            "activities.tasks.run_bulk_send",
            "activities.tasks.sweep_email_delivery",
            "activities.tasks.collect_orphan_blobs",
        }
        <= defined
    )
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    for name, task in found.items():
        soft, hard = task.soft_time_limit, task.time_limit
        assert soft is not None and hard is not None, name
        assert 0 < soft < hard < visibility_timeout, name
        assert hard <= settings.CELERY_TASK_TIME_LIMIT, name  # per-task values stay below
    # A slice of work (a bulk run, a delivery chunk) ends before the soft limit strikes.
    assert settings.CRM_TASK_SLICE_SECONDS < settings.CELERY_TASK_SOFT_TIME_LIMIT
    sweep = found["activities.tasks.sweep_email_delivery"]
    assert sweep.time_limit < settings.CELERY_TASK_TIME_LIMIT  # its own, shorter


@pytest.fixture
def send_cut_short(monkeypatch):
    """The soft time limit strikes while the ``n``-th message is being handed over."""
    calls = {"n": 0, "at": 2}
    real = SMTPBackend._send

    def _send(self, message):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise SoftTimeLimitExceeded()
        return real(self, message)

    monkeypatch.setattr(SMTPBackend, "_send", _send)
    return calls


@pytest.mark.django_db
def test_a_soft_time_limit_mid_chunk_loses_nothing_and_sends_nothing_twice(
    org,
    tim,
    timings,
    broker,
    clock,
    smtp_settings,
    send_cut_short,
    django_capture_on_commit_callbacks,
):
    emails = [sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim) for _ in range(3)]
    ids = [e.pk for e in emails]
    broker.take()

    outcome = tasks.deliver_email_chunk.apply(args=(ids,))

    assert isinstance(outcome.result, SoftTimeLimitExceeded)  # nothing caught it
    first, cut, untried = (row(e) for e in emails)
    assert first.status == EmailStatus.SENT
    # The email in the server's hands stays claimed under its lease, as a crash would
    # leave it: no failure recorded, no attempt given back. The rest of the batch was
    # never tried: it is given back at once, its attempt returned, unflagged.
    assert (cut.status, cut.attempts, cut.last_error) == (EmailStatus.SENDING, 1, "")
    assert cut.lease_expires_at is not None
    assert (untried.status, untried.attempts, untried.lease_expires_at) == (
        EmailStatus.PENDING_SEND,
        0,
        None,
    )
    assert untried.events.latest("pk").reason.startswith(
        "not tried: the delivery task stopped (SoftTimeLimitExceeded"
    )
    assert broker.published == [] and len(smtp_settings.messages) == 1

    clock.advance(django_settings.CRM_LEASE_SECONDS + 1)
    swept = delivery_sweep_and_enqueue()
    assert swept.requeued_expired == [cut.pk]
    assert swept.due_pending == ids[1:]
    broker.run_all()

    assert [row(e).status for e in emails] == [EmailStatus.SENT] * 3
    assert [row(e).possible_duplicate for e in emails] == [False, True, False]
    received = [m.message["Message-ID"] for m in smtp_settings.messages]
    assert sorted(received) == sorted(e.message_id for e in emails)  # each once


@pytest.mark.django_db
def test_a_soft_time_limit_in_a_single_delivery_leaves_it_to_the_lease(
    org,
    tim,
    timings,
    broker,
    clock,
    smtp_settings,
    send_cut_short,
    django_capture_on_commit_callbacks,
):
    send_cut_short["at"] = 1
    email = sent(django_capture_on_commit_callbacks, scheduled(tim, 0), tim)
    broker.take()

    outcome = tasks.deliver_email.apply(args=(email.pk,))

    assert isinstance(outcome.result, SoftTimeLimitExceeded)
    assert (row(email).status, row(email).attempts) == (EmailStatus.SENDING, 1)
    assert broker.published == [] and smtp_settings.messages == []
    clock.advance(django_settings.CRM_LEASE_SECONDS + 1)
    delivery_sweep_and_enqueue()
    broker.run_all()
    assert row(email).status == EmailStatus.SENT and len(smtp_settings.messages) == 1


# --- bulk runs in slices ------------------------------------------------------------


@pytest.fixture
def bulk_sender(db):
    tim = UserFactory(username="tim", first_name="Tim", email="tim@staff.example.com")
    return tim, QueueFactory(name="Support", email="support@example.com", members=[tim])


@pytest.mark.django_db(transaction=True)  # the run queues delivery on commit
def test_a_bulk_job_bigger_than_a_slice_completes_over_several_runs_each_contact_once(
    org, bulk_sender, broker, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CRM_BULK_CHUNK_SIZE = 5
    settings.CRM_TASK_SLICE_SECONDS = 0  # a slice is one chunk
    tim, queue = bulk_sender
    contacts = ContactFactory.create_batch(23)
    job = bulk_send_start(
        template=TemplateFactory(), sender=queue, query={}, actor=tim, require_recipients=True
    )
    assert [m.name for m in broker.published] == [dispatch.RUN_BULK_SEND]  # on commit

    ran = broker.run_all()

    runs = [m for m in ran if m.name == dispatch.RUN_BULK_SEND]
    assert len(runs) == 6  # five chunks of contacts, then the run that finds none left
    assert all(m.args == (job.pk,) and m.eta is None and m.countdown is None for m in runs)
    job = BulkSend.objects.get(pk=job.pk)
    assert job.status == BulkSendStatus.COMPLETED and job.created == 23
    written = list(Email.objects.filter(bulk_send=job).values_list("bulk_contact_id", flat=True))
    assert sorted(written) == sorted(c.pk for c in contacts)
    recipients = sorted(parseaddr(m.to[0])[1] for m in mail.outbox)
    assert recipients == sorted(c.email for c in contacts)  # each contact one message


@pytest.mark.django_db
def test_a_slice_whose_next_run_cannot_be_published_is_resumed_by_the_sweep(
    org, bulk_sender, broker, clock, settings
):
    settings.CRM_TASK_SLICE_SECONDS = 0
    tim, queue = bulk_sender
    ContactFactory.create_batch(7)
    job = bulk_send_start(template=TemplateFactory(), sender=queue, query={}, actor=tim)
    broker.down = True

    job = bulk_send_run(job_id=job.pk, chunk_size=5)

    assert (job.status, job.created) == (BulkSendStatus.RUNNING, 5)
    assert bulk_sends_to_resume() == []  # its heartbeat is fresh
    clock.advance(settings.CRM_LEASE_SECONDS + 1)
    assert bulk_sends_to_resume() == [job.pk]
    broker.down = False
    job = bulk_send_run(job_id=job.pk, chunk_size=5, slice_seconds=60)
    assert (job.status, job.created) == (BulkSendStatus.COMPLETED, 7)


@pytest.mark.django_db
def test_a_soft_time_limit_mid_chunk_of_a_bulk_run_writes_nothing_of_that_chunk(
    org, bulk_sender, broker, monkeypatch
):
    tim, queue = bulk_sender
    contacts = ContactFactory.create_batch(8)
    job = bulk_send_start(template=TemplateFactory(), sender=queue, query={}, actor=tim)
    real_write, calls = bulk_run._Run._write, []

    def write(self, recipients, now):
        calls.append(len(recipients))
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return real_write(self, recipients, now)

    monkeypatch.setattr(bulk_run._Run, "_write", write)

    with pytest.raises(SoftTimeLimitExceeded):
        bulk_send_run(job_id=job.pk, chunk_size=5, slice_seconds=60)

    job = BulkSend.objects.get(pk=job.pk)
    assert (job.status, job.created) == (BulkSendStatus.RUNNING, 5)  # the first chunk only
    assert Email.objects.filter(bulk_send=job).count() == 5
    monkeypatch.setattr(bulk_run._Run, "_write", real_write)
    job = bulk_send_run(job_id=job.pk, chunk_size=5, slice_seconds=60)  # resumed
    assert (job.status, job.created) == (BulkSendStatus.COMPLETED, 8)
    written = list(Email.objects.filter(bulk_send=job).values_list("bulk_contact_id", flat=True))
    assert sorted(written) == sorted(c.pk for c in contacts)
