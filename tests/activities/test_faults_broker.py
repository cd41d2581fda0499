"""Faults of the broker, with a private ``redis-server`` (tests/redis_server.py): down or
hung when mail is sent, restarted with tasks queued, restarted under a running worker
(idle, and while it holds a retry).

The Redis is the test's own on both lanes (the suite's broker is left alone): this
process publishes to it (``broker_at``) and so do the workers started here. As in a
deployment without ``CACHE_URL``, the API's cache (throttle counters) is on the same
Redis server, so a Redis that is down or hung is down or hung for the cache too.
"""

from __future__ import annotations

import logging
import threading

import environ
import pytest
import redis
from django.conf import settings as django_settings

from activities.models import Email, EmailStatus
from activities.services.emails import email_create, email_send
from tests.api import client_for
from tests.celery_worker import broker_at, queued_tasks, running_worker, wait_for, worker_env
from tests.redis_server import RedisServer, running_redis
from tests.smtp import SMTPServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAILS = "/api/v1/emails/"
# How long a frozen broker may hold a request before the test gives up on it and thaws
# the broker (so that a hang fails the test instead of blocking the run). Not a timing
# assertion: a fixed request returns within the publish timeouts, far below this.
HANG_GUARD_SECONDS = 90.0


@pytest.fixture
def redis_server(tmp_path):
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_broker(redis_server, tmp_path, settings):
    """This process publishes to the private Redis, and its cache lives there too."""
    cache = environ.Env.cache_url_config(redis_server.url(1))
    cache["OPTIONS"] = dict(django_settings.CRM_REDIS_CACHE_OPTIONS)
    settings.CACHES = {"default": {**cache, "KEY_PREFIX": "crm"}}
    with broker_at(redis_server.url(0), tmp_path / "data") as env:
        yield env


def draft(owner, n: int = 0) -> Email:
    return email_create(
        actor=owner, to=[f"Ann Lee <ann{n}@example.com>"], subject=f"Hello {n}", body_text="Hi"
    )


def status_of(email: Email) -> str:
    return Email.objects.values_list("status", flat=True).get(pk=email.pk)


def copies(server: SMTPServer) -> dict[str, int]:
    """How many messages the server received, per Message-ID."""
    counts: dict[str, int] = {}
    for received in server.messages:
        message_id = received.message["Message-ID"]
        counts[message_id] = counts.get(message_id, 0) + 1
    return counts


def send_over_api(owner, email: Email, redis: RedisServer):
    """POST .../send/ and return the response; a request that hangs on the broker is cut
    loose after HANG_GUARD_SECONDS by thawing it, and fails."""
    hung = threading.Event()

    def cut_loose() -> None:
        hung.set()
        redis.thaw()

    guard = threading.Timer(HANG_GUARD_SECONDS, cut_loose)
    guard.start()
    try:
        response = client_for(owner).post(f"{EMAILS}{email.pk}/send/", {}, format="json")
    finally:
        guard.cancel()
    assert not hung.is_set(), "the request hung on the broker until it was thawed"
    return response


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def dispatch_log():
    """The warnings of ``activities.dispatch``, on a handler of that logger itself (the
    first publish imports the tasks, and Celery's set-up then reconfigures logging,
    which takes pytest's ``caplog`` handler off the root logger)."""
    handler = Records()
    logger = logging.getLogger("activities.dispatch")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def assert_publish_failure_logged(log: Records, email: Email, cause: str) -> None:
    """The warning names the task, the email and the broker's error."""
    lines = [r.getMessage() for r in log.records]
    assert any(
        line.startswith("broker unavailable (")
        and cause in line
        and f"deliver_email({email.pk},) is left to the sweep" in line
        for line in lines
    ), lines


def test_send_while_the_broker_is_down_or_hung_answers_and_delivers_once_it_is_back(
    org, owner, redis_server, redis_broker, smtp_server, tmp_path, dispatch_log
):
    """Redis shut down, then hung (SIGSTOP: connections are accepted, nothing answers):
    each send answers 202 with the email committed as pending and a log line saying the
    publish failed; once Redis is back the sweep publishes both, each delivered once."""
    down, hung = draft(owner, 1), draft(owner, 2)

    redis_server.stop()
    response = send_over_api(owner, down, redis_server)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == EmailStatus.PENDING_SEND
    assert status_of(down) == EmailStatus.PENDING_SEND
    assert_publish_failure_logged(dispatch_log, down, "Connection refused")

    redis_server.start()
    assert queued_tasks() == 0  # a new, empty Redis: nothing of the first send is queued
    redis_server.freeze()
    try:
        response = send_over_api(owner, hung, redis_server)
        assert response.status_code == 202, response.content
        assert status_of(hung) == EmailStatus.PENDING_SEND
        assert_publish_failure_logged(dispatch_log, hung, "Timeout")
    finally:
        redis_server.thaw()

    env = worker_env(broker=redis_broker, smtp_port=smtp_server.port)
    with running_worker("after-outage", tmp_path, env) as worker:
        wait_for(
            lambda: (
                Email.objects.filter(pk__in=[down.pk, hung.pk], status=EmailStatus.SENT).count()
                == 2
            ),
            what="both emails delivered once the broker is back",
            workers=(worker,),
        )

    for email in (down, hung):
        email.refresh_from_db()
        assert (email.status, email.attempts, email.possible_duplicate) == ("sent", 1, False)
    assert copies(smtp_server) == {down.message_id: 1, hung.message_id: 1}


def test_redis_restarted_with_tasks_queued_and_under_a_running_worker_loses_no_mail(
    org, owner, redis_server, redis_broker, smtp_server, tmp_path
):
    """Emails sent while no worker runs wait in Redis as tasks; Redis restarts (it keeps
    nothing, so the tasks are gone); a worker started then delivers every one of them
    once, found by beat's sweep. Then Redis restarts under that worker: it reconnects,
    and mail sent after the restart is delivered too, each message once."""
    before = [email_send(email=draft(owner, n), actor=owner) for n in range(3)]
    assert queued_tasks() == len(before)  # one delivery task per email, waiting

    redis_server.restart()
    assert queued_tasks() == 0  # the restart lost them: only beat's sweep can find them

    env = worker_env(broker=redis_broker, smtp_port=smtp_server.port)
    with running_worker("restarts", tmp_path, env) as worker:
        wait_for(
            lambda: (
                Email.objects.filter(pk__in=[e.pk for e in before], status=EmailStatus.SENT).count()
                == len(before)
            ),
            what="the emails whose tasks the restart lost, delivered after the sweep",
            workers=(worker,),
        )
        delivered_before = len(smtp_server.messages)

        redis_server.restart()
        after = [email_send(email=draft(owner, n), actor=owner) for n in range(3, 6)]
        wait_for(
            lambda: (
                Email.objects.filter(pk__in=[e.pk for e in after], status=EmailStatus.SENT).count()
                == len(after)
            ),
            what="the emails sent after Redis restarted under the worker",
            workers=(worker,),
        )
        assert worker.alive()

    assert delivered_before == len(before)
    everything = before + after
    for email in everything:
        email.refresh_from_db()
        assert (email.status, email.attempts, email.possible_duplicate) == ("sent", 1, False)
    assert copies(smtp_server) == {email.message_id: 1 for email in everything}
    assert Email.objects.filter(status=EmailStatus.SENT).count() == len(everything)
    assert not Email.objects.exclude(status=EmailStatus.SENT).exists()


def test_redis_restarted_while_the_worker_holds_a_retry_loses_no_mail(
    org, owner, redis_server, redis_broker, smtp_server, tmp_path
):
    """The first attempt meets a 451; the task's retry (a countdown) is held by the
    worker, unacknowledged, when Redis restarts and forgets it. The email is still
    delivered, once, with its second attempt."""
    smtp_server.handler.fail_data_times = 1
    env = worker_env(broker=redis_broker, smtp_port=smtp_server.port, CRM_RETRY_BACKOFF_SECONDS=4)
    broker = redis.Redis.from_url(redis_server.url(0))
    with running_worker("holding", tmp_path, env) as worker:
        email = email_send(email=draft(owner), actor=owner)
        wait_for(
            lambda: (
                Email.objects.filter(pk=email.pk, status=EmailStatus.PENDING_SEND, attempts=1)
                .exclude(last_error="")
                .exists()
                and broker.hlen("unacked") == 1  # kombu's hash of messages a worker holds
                and queued_tasks() == 0
            ),
            what="the first attempt failed and its retry held by the worker",
            workers=(worker,),
        )
        redis_server.restart()
        wait_for(
            lambda: status_of(email) == EmailStatus.SENT,
            what="the email delivered after the restart",
            workers=(worker,),
        )
        assert worker.alive()
    broker.close()

    email.refresh_from_db()
    assert (email.status, email.attempts, email.possible_duplicate) == ("sent", 2, False)
    assert (
        "451" in email.events.get(to_status=EmailStatus.PENDING_SEND, from_status="sending").reason
    )
    assert copies(smtp_server) == {email.message_id: 1}
