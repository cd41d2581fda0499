"""A sender's send rate and slow-downs, held in the database so every worker obeys them.

The rate (``send_rate_per_minute`` on the user or queue; 0 for none) is a generic
cell rate: each message moves the sender's ``next_send_at`` on by 60 / rate seconds,
with a compare-and-swap, so two workers never take the same slot. A temporary
failure from the mail server (a 4xx answer, a lost connection) pauses the sender for
the retry backoff, doubled for each pause in a row, instead of letting the rest of a
bulk job burn its attempts against a server that asked us to wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import conf
from ..models import SendRateState

_CAS_TRIES = 20


def sender_key(*, queue_id: int | None, user_id: int | None) -> str | None:
    if queue_id:
        return f"queue:{queue_id}"
    if user_id:
        return f"user:{user_id}"
    return None


@dataclass(frozen=True)
class Slot:
    wait: float  # 0: the caller may send now (and has taken the slot); else seconds to wait
    slowed: bool  # the sender is recovering from a slow-down (see ``recovered``)


def _state(key: str) -> SendRateState:
    state = SendRateState.objects.filter(sender_key=key).first()
    if state is None:
        state, _ = SendRateState.objects.get_or_create(sender_key=key)
    return state


def take_slot(key: str, per_minute: int, *, at: datetime | None = None) -> Slot:
    """Take the sender's next send slot if it is due (``wait == 0``); otherwise take
    nothing and say how long until it is. ``at`` fixes the clock (tests)."""
    interval = timedelta(seconds=60.0 / per_minute) if per_minute > 0 else None
    for _ in range(_CAS_TRIES):
        now = at or timezone.now()
        state = _state(key)
        slowed = state.slowdowns > 0
        if state.slow_until and state.slow_until > now:
            return Slot((state.slow_until - now).total_seconds(), slowed)
        if interval is None:
            return Slot(0.0, slowed)
        due = state.next_send_at
        if due and due > now:
            return Slot((due - now).total_seconds(), slowed)
        if SendRateState.objects.filter(pk=state.pk, next_send_at=due).update(
            next_send_at=now + interval
        ):
            return Slot(0.0, slowed)
    # Lost every race: others are sending as this sender right now; try again shortly.
    return Slot(interval.total_seconds() if interval is not None else 0.0, False)


def slow_down(key: str, reason: str) -> float:
    """Pause the sender after a temporary failure; answers the seconds it is paused for.

    A failure while a pause is in force (another worker saw the same answer) does not
    lengthen it; the next pause after it doubles.
    """
    now = timezone.now()
    with transaction.atomic():
        _state(key)
        state = SendRateState.objects.select_for_update().get(sender_key=key)
        if state.slow_until and state.slow_until > now:
            return (state.slow_until - now).total_seconds()
        state.slowdowns += 1
        pause = conf.retry_backoff(state.slowdowns)
        state.slow_until = now + timedelta(seconds=pause)
        state.last_slowdown_reason = reason[:2000]
        state.save(update_fields=["slowdowns", "slow_until", "last_slowdown_reason"])
    return float(pause)


def recovered(key: str) -> None:
    """A message went out after a slow-down: the next pause starts short again."""
    SendRateState.objects.filter(sender_key=key, slowdowns__gt=0).update(slowdowns=0)
