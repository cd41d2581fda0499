from __future__ import annotations

from django.db import models


class SendRateState(models.Model):
    """A sender's place in its send schedule, shared by every worker.

    ``next_send_at`` is the earliest moment the sender's next message may go out (a
    generic cell rate: each message moves it on by 60 / rate seconds);
    ``slow_until`` holds the sender back after the mail server answered with a
    temporary failure, ``slowdowns`` counts those in a row (the pause doubles with
    each). See ``services.ratelimit``.
    """

    sender_key = models.CharField(max_length=40, unique=True)  # "queue:3", "user:7"
    next_send_at = models.DateTimeField(null=True, blank=True)
    slow_until = models.DateTimeField(null=True, blank=True)
    slowdowns = models.PositiveIntegerField(default=0)
    last_slowdown_reason = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.sender_key
