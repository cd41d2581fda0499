"""The per-sender send rate and the slow-down after temporary failures."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activities.models import Email, SendRateState
from activities.services import ratelimit
from activities.services.delivery import deliver_chunk
from activities.services.emails import email_create, email_send
from tests.api import client_for

pytestmark = pytest.mark.django_db

OWNER = "test-worker"


def pending(owner, team_queue, n: int) -> list[int]:
    ids = []
    for i in range(n):
        email = email_create(
            actor=owner, sender=team_queue, to=[f"r{i}@example.org"], subject=f"n{i}", body_text="x"
        )
        ids.append(email_send(email=email, actor=owner).pk)
    return ids


def statuses(ids: list[int]) -> list[tuple[str, int]]:
    rows = dict(Email.objects.filter(pk__in=ids).values_list("pk", "status"))
    attempts = dict(Email.objects.filter(pk__in=ids).values_list("pk", "attempts"))
    return [(rows[i], attempts[i]) for i in ids]


def state(key: str) -> SendRateState:
    return SendRateState.objects.get(sender_key=key)


# --- the schedule ---------------------------------------------------------------------


def test_a_sender_without_a_rate_may_always_send():
    assert [ratelimit.take_slot("queue:1", 0).wait for _ in range(5)] == [0.0] * 5
    assert state("queue:1").next_send_at is None


def test_each_message_moves_the_next_slot_on_by_the_interval():
    t = timezone.now()
    assert ratelimit.take_slot("queue:1", 60, at=t).wait == 0
    # The next slot is a second later; asking early takes nothing.
    assert ratelimit.take_slot("queue:1", 60, at=t).wait == pytest.approx(1.0)
    assert ratelimit.take_slot("queue:1", 60, at=t + timedelta(seconds=0.25)).wait == (
        pytest.approx(0.75)
    )
    assert state("queue:1").next_send_at == t + timedelta(seconds=1)
    assert ratelimit.take_slot("queue:1", 60, at=t + timedelta(seconds=1)).wait == 0
    assert state("queue:1").next_send_at == t + timedelta(seconds=2)
    # Other senders have their own schedule.
    assert ratelimit.take_slot("user:1", 60, at=t).wait == 0


@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_one_slot_never_share_it():
    """Eight connections (as eight workers) ask for the same slot at the same moment."""
    t = timezone.now()
    ratelimit.take_slot("queue:9", 60, at=t - timedelta(seconds=5))  # the row exists
    start = threading.Barrier(8)
    waits: list[float] = []

    def worker() -> None:
        try:
            start.wait()
            waits.append(ratelimit.take_slot("queue:9", 60, at=t).wait)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits)[0] == 0 and all(w > 0 for w in sorted(waits)[1:]), waits
    assert state("queue:9").next_send_at == t + timedelta(seconds=1)


# --- delivery in chunks -------------------------------------------------------------


def test_a_chunk_keeps_to_the_sender_rate(org, owner, team_queue, smtp_settings):
    team_queue.send_rate_per_minute = 600  # one message every 0.1 s
    team_queue.save()
    ids = pending(owner, team_queue, 3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    started, before = time.monotonic(), timezone.now()
    result = deliver_chunk(email_ids=ids, owner=OWNER, sleep=sleep)
    elapsed = time.monotonic() - started

    assert result.outcomes == {"sent": 3} and not result.rest
    assert len(smtp_settings.messages) == 3
    # Lower bounds only, which a slow machine cannot break: three slots 0.1 s apart
    # take at least 0.2 s, each wait is at most one interval, and the schedule moved
    # on by three slots.
    assert elapsed >= 0.2
    assert all(0 < s <= 0.1 for s in slept)
    assert state(f"queue:{team_queue.pk}").next_send_at >= before + timedelta(seconds=0.3)


def test_a_long_wait_hands_the_rest_of_the_chunk_back_untried(
    org, owner, team_queue, smtp_settings
):
    team_queue.send_rate_per_minute = 1
    team_queue.save()
    ids = pending(owner, team_queue, 3)

    result = deliver_chunk(email_ids=ids, owner=OWNER, sleep=pytest.fail)

    assert result.outcomes == {"sent": 1}
    assert result.rest == ids[1:] and 59 < result.rest_in <= 60
    assert statuses(ids) == [("sent", 1), ("pending_send", 0), ("pending_send", 0)]
    assert len(smtp_settings.messages) == 1
    # Due when the later task runs, so the sweep does not hand them out meanwhile.
    for due in Email.objects.filter(pk__in=ids[1:]).values_list("next_attempt_at", flat=True):
        assert (
            timezone.now() + timedelta(seconds=57) < due <= timezone.now() + timedelta(seconds=60)
        )


def test_a_temporary_failure_pauses_the_sender_instead_of_failing_the_rest(
    org, owner, team_queue, smtp_settings, settings
):
    settings.CRM_RETRY_BACKOFF_SECONDS = 30
    ids = pending(owner, team_queue, 4)
    key = f"queue:{team_queue.pk}"
    smtp_settings.handler.fail_data_times = 1  # "451 Try again later", once

    first = deliver_chunk(email_ids=ids, owner=OWNER)

    assert first.outcomes == {"retry": 1}
    assert [i for i, _ in first.retries] == ids[:1]
    assert first.rest == ids[1:] and first.rest_in == 30
    assert statuses(ids) == [("pending_send", 1)] + [("pending_send", 0)] * 3
    assert state(key).slowdowns == 1 and "451" in state(key).last_slowdown_reason

    # Another worker with the same sender waits out the pause too, spending nothing.
    meanwhile = deliver_chunk(email_ids=ids[1:], owner=OWNER, sleep=pytest.fail)
    assert meanwhile.outcomes == {} and meanwhile.rest == ids[1:]
    assert 29 < meanwhile.rest_in <= 30
    assert statuses(ids[1:]) == [("pending_send", 0)] * 3

    # The emails claimed with the failed one were given back, due after the pause (less
    # a second, as the task that takes them may start a little early).
    released = Email.objects.get(pk=ids[1])
    assert released.next_attempt_at > timezone.now() + timedelta(seconds=28)
    assert released.events.filter(to_status="pending_send", reason__startswith="not tried")

    # The pause is over.
    SendRateState.objects.filter(sender_key=key).update(slow_until=timezone.now())
    Email.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now())
    after = deliver_chunk(email_ids=ids[1:], owner=OWNER)
    assert after.outcomes == {"sent": 3}
    assert state(key).slowdowns == 0  # recovered: the next pause starts short again
    assert len(smtp_settings.messages) == 3


def test_pauses_in_a_row_double_and_a_failure_during_a_pause_does_not_extend_it(org, settings):
    settings.CRM_RETRY_BACKOFF_SECONDS = 30
    assert ratelimit.slow_down("queue:1", "451 busy") == 30
    assert 29 < ratelimit.slow_down("queue:1", "451 busy") <= 30  # same pause
    SendRateState.objects.filter(sender_key="queue:1").update(slow_until=timezone.now())
    assert ratelimit.slow_down("queue:1", "451 busy") == 60
    ratelimit.recovered("queue:1")
    SendRateState.objects.filter(sender_key="queue:1").update(slow_until=timezone.now())
    assert ratelimit.slow_down("queue:1", "451 busy") == 30


def test_a_permanent_refusal_does_not_slow_the_sender(org, owner, team_queue, smtp_settings):
    ids = pending(owner, team_queue, 2)
    smtp_settings.handler.reject_recipients = {"r0@example.org"}

    result = deliver_chunk(email_ids=ids, owner=OWNER)

    assert result.outcomes == {"failed": 1, "sent": 1} and not result.rest
    assert not SendRateState.objects.filter(slowdowns__gt=0).exists()


def test_the_rate_is_set_on_the_queue_over_the_api(org, staff, team_queue):
    api = client_for(staff)
    answer = api.patch(
        f"/api/v1/queues/{team_queue.pk}/", {"send_rate_per_minute": 120}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["send_rate_per_minute"] == 120
    team_queue.refresh_from_db()
    assert team_queue.send_rate_per_minute == 120
    bad = api.patch(f"/api/v1/queues/{team_queue.pk}/", {"send_rate_per_minute": -1}, format="json")
    assert bad.status_code == 400 and "send_rate_per_minute" in bad.json()
