"""A real Celery worker on Redis with scaled time: an email scheduled two (scaled)
hours ahead is executed once, at its time, although the visibility timeout (the scaled
hour) would have handed an ETA task held that long to a worker again and again.

Scale: the visibility timeout is 10 s instead of 3600 s, the ETA horizon 2 s instead of
900 s, the time limits 3 s and 3.5 s, the sweep every half second. kombu looks for
messages to hand back every second (``unacked_restore_interval``), as it would have to
for a timeout this short.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from activities.models import Email, EmailStatus
from activities.services.emails import email_create, email_send
from tests.celery_worker import private_broker, queued_tasks, running_worker, wait_for, worker_env
from tests.factories import UserFactory
from tests.services import broker_url, unavailable
from tests.smtp import RecordingHandler, SMTPServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 10  # the scaled hour
HORIZON = 2.0
AHEAD = 2 * VISIBILITY_TIMEOUT  # the scaled "two hours ahead"
SCALED = {
    "CELERY_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
    "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(
        {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    ),
    "CRM_ETA_HORIZON_SECONDS": HORIZON,
    "CRM_SWEEP_INTERVAL": 0.5,
    # Due emails a task holds are not the stale rule's business for this long.
    "CRM_SWEEP_PENDING_AFTER_SECONDS": 5,
    "CELERY_TASK_SOFT_TIME_LIMIT": 3,
    "CELERY_TASK_TIME_LIMIT": 3.5,
}
RECEIVED = re.compile(
    r"Task (activities\.tasks\.deliver_email(?:_chunk)?)\[([0-9a-f-]+)\] received"
)


@dataclass
class TimedHandler(RecordingHandler):
    """Records when each accepted message arrived (the clock of this machine)."""

    arrivals: list[float] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            self.arrivals.append(arrived)
        return answer


@pytest.fixture
def redis_broker(tmp_path):
    if not broker_url().startswith(("redis://", "rediss://")):
        unavailable("needs Redis: set CELERY_BROKER_URL=redis://127.0.0.1:6379/<db> to run it")
    with private_broker(tmp_path / "data") as env:
        yield env


@pytest.fixture
def timed_smtp():
    server = SMTPServer()
    server.handler = TimedHandler()
    server.start()
    yield server
    server.stop()


def test_an_email_scheduled_two_scaled_hours_ahead_is_executed_once_at_its_time(
    org, redis_broker, timed_smtp, settings, tmp_path
):
    settings.CRM_ETA_HORIZON_SECONDS = HORIZON  # this process publishes too (email_send)
    tim = UserFactory(username="tim", first_name="Tim", email="tim@staff.example.com")
    due = timezone.now() + timedelta(seconds=AHEAD)
    draft = email_create(
        actor=tim,
        to=["Ann Lee <ann@example.com>"],
        subject="Later",
        body_text="Hi",
        scheduled_at=due,
    )
    email = email_send(email=draft, actor=tim)  # committed: its publish has run

    assert queued_tasks() == 0  # beyond the horizon: nothing for a worker to hold for long

    env = worker_env(broker=redis_broker, smtp_port=timed_smtp.port, **SCALED)
    with running_worker("timings", tmp_path, env) as worker:
        wait_for(
            lambda: Email.objects.filter(
                pk=email.pk, status__in=[EmailStatus.SENT, EmailStatus.FAILED]
            ).exists(),
            what="delivery at its time",
            timeout=AHEAD + 45,
            workers=(worker,),
        )
        time.sleep(3)  # a copy the broker had handed back would run now
        log = worker.log()

    email.refresh_from_db()
    assert (email.status, email.attempts, email.possible_duplicate) == (EmailStatus.SENT, 1, False)
    [received] = timed_smtp.messages
    assert received.message["Message-ID"] == email.message_id
    assert timed_smtp.handler.arrivals[0] >= due.timestamp()  # not before its time
    [claim] = email.events.filter(to_status=EmailStatus.SENDING)
    assert claim.created_at >= due
    # One delivery task, taken by the worker once: the sweep published it within the
    # horizon, so it was never held long enough for Redis to hand it out again.
    deliveries = RECEIVED.findall(log)
    assert len(deliveries) == 1, log
    assert deliveries[0][0] == "activities.tasks.deliver_email_chunk"
