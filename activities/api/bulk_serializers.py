"""Serializers of the bulk endpoints (``bulk-sends/``): the job and the request to start one.

The input serializer checks shape and types (a 400 naming the field); what a query may
hold and who may send is decided by ``bulk_send_start``. The output reads the counters
``sent``, ``failed`` and ``canceled`` from ``progress`` in the context (one grouped
query for a whole page), or from ``bulk_send_progress`` for a single job.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api.filters import MAX_ID
from common.api.serializers import StrictSerializer

from ..models import BulkSend, BulkSendStatus, SkipReason, Template
from ..selectors import bulk_send_progress, templates_visible_to
from .email_serializers import BlankAsNullCharField, SenderRefSerializer
from .fields import RecordRefField, RecordRefSerializer


class DateOrDateTimeField(serializers.CharField):
    """A date (``2026-01-01``) or an ISO 8601 date and time; kept as given."""

    default_error_messages = {
        "invalid": "expected a date (2026-01-01) or a date and time (2026-01-01T08:00:00Z)",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        text = super().to_internal_value(data)
        try:
            parsed = parse_datetime(text) or parse_date(text)
        except ValueError:  # well-formed but impossible, such as 2026-13-45
            parsed = None
        if parsed is None:
            self.fail("invalid")
        return text


class BulkSendQuerySerializer(StrictSerializer):
    """The contacts to write to: all filters must match; none selects every contact."""

    account = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID, help_text="an account id"
    )
    city = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="exact, any case"
    )
    tag = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="a tag's name, any case"
    )
    created_after = DateOrDateTimeField(
        required=False,
        allow_blank=True,
        help_text="contacts created at or after: a date (its start) or a date and time",
    )
    created_before = DateOrDateTimeField(
        required=False,
        allow_blank=True,
        help_text="contacts created before: a date (its start) or a date and time",
    )


@extend_schema_field(BulkSendQuerySerializer)
class BulkQueryField(serializers.DictField):
    """The query as given, for ``bulk_send_start`` to check and to store.

    Only shape and types are checked here (a 400 naming the key); which keys exist and
    whether the account does is the service's rule.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                'expected an object such as {"city": "Oslo", "tag": "vip"}'
            )
        types = BulkSendQuerySerializer(data=data)
        if not types.is_valid():
            raise serializers.ValidationError(types.errors)
        return dict(data)

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return dict(value or {})


class BulkSendStartSerializer(StrictSerializer):
    template = serializers.PrimaryKeyRelatedField(
        queryset=Template.objects.all(), help_text="the template's id"
    )
    sender = RecordRefField(
        types=("user", "queue"),
        required=False,
        help_text="a user or a queue; the acting user if left out",
    )
    query = BulkQueryField(required=False, default=dict)
    regarding = RecordRefField(
        required=False,
        allow_null=True,
        default=None,
        help_text="a record every email is about; null for each email's own contact",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            template = self.fields["template"]
            assert isinstance(template, serializers.RelatedField)
            template.queryset = templates_visible_to(request.user)


class SkippedByReasonSerializer(StrictSerializer):
    """How many contacts were skipped, by reason (only reasons that occurred)."""

    def get_fields(self):
        return {
            reason.value: serializers.IntegerField(required=False, help_text=str(reason.label))
            for reason in SkipReason
        }


class BulkSendSerializer(StrictSerializer):
    """A bulk job and its progress (API.md), with what it was started with."""

    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=BulkSendStatus.choices, read_only=True)
    total = serializers.SerializerMethodField(help_text="contacts the query selected")
    created = serializers.SerializerMethodField(help_text="emails written so far")
    sent = serializers.SerializerMethodField(help_text="emails of the job that were sent")
    failed = serializers.SerializerMethodField(help_text="emails of the job whose delivery failed")
    canceled = serializers.SerializerMethodField(help_text="emails of the job that were canceled")
    skipped = serializers.SerializerMethodField(
        help_text="contacts skipped (no address, do_not_bulk_email, suppressed, duplicate)"
    )
    skipped_by_reason = serializers.SerializerMethodField()
    template = serializers.IntegerField(source="template_id", read_only=True)
    sender = serializers.SerializerMethodField()
    query = BulkQueryField(read_only=True)
    regarding = serializers.SerializerMethodField()
    error = BlankAsNullCharField(help_text="why the job failed, if it did")
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    canceled_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def _progress(self, job: BulkSend) -> dict[str, Any]:
        cache = self.context.setdefault("_progress_cache", {})
        if job.pk not in cache:
            cache[job.pk] = bulk_send_progress(job)
        return cache[job.pk]

    def get_total(self, job: BulkSend) -> int:
        return self._progress(job)["total"]

    def get_created(self, job: BulkSend) -> int:
        return self._progress(job)["created"]

    def get_sent(self, job: BulkSend) -> int:
        return self._progress(job)["sent"]

    def get_failed(self, job: BulkSend) -> int:
        return self._progress(job)["failed"]

    def get_canceled(self, job: BulkSend) -> int:
        return self._progress(job).get("canceled", 0)

    def get_skipped(self, job: BulkSend) -> int:
        return self._progress(job)["skipped"]

    @extend_schema_field(SkippedByReasonSerializer)
    def get_skipped_by_reason(self, job: BulkSend) -> dict[str, int]:
        return dict(self._progress(job)["skipped_by_reason"] or {})

    @extend_schema_field(SenderRefSerializer(allow_null=True))
    def get_sender(self, job: BulkSend) -> dict[str, Any] | None:
        if job.sender_queue_id:
            return {"type": "queue", "id": job.sender_queue_id}
        if job.sender_user_id:
            return {"type": "user", "id": job.sender_user_id}
        return None

    @extend_schema_field(RecordRefSerializer(allow_null=True))
    def get_regarding(self, job: BulkSend) -> dict[str, Any] | None:
        if job.regarding_id is None or job.regarding_type is None:
            return None
        return {"type": job.regarding_type.model, "id": job.regarding_id}
