"""The plumbing's one table: stored answers to requests sent with an Idempotency-Key."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key`` (per user and key).

    Inserted before the work starts (the unique key decides between concurrent
    repeats); ``status_code`` stays empty until the answer is known.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The answer as JSON text, not a JSON column: PostgreSQL's jsonb refuses a NUL
    # character, which an error message may quote from the request.
    response_body = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Created by the crm app before the plumbing had an app of its own.
        db_table = "crm_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
