"""The admin of bulk jobs: progress, their emails, cancel."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from common.admin_actions import run_action

from ..models import (
    BulkSend,
    BulkSendStatus,
)
from ..selectors import bulk_sends_with_progress
from ..services.bulk import bulk_send_cancel
from .base import ReadOnlyAdmin, coloured_status

BULK_STATUS_COLOURS: dict[str, str] = {
    BulkSendStatus.QUEUED: "#8a5a00",
    BulkSendStatus.RUNNING: "#8a5a00",
    BulkSendStatus.COMPLETED: "#1b5e20",
    BulkSendStatus.CANCELED: "#555",
    BulkSendStatus.FAILED: "#b00020",
}


BULK_PROGRESS_FIELDS = (
    "total",
    "created",
    "sent",
    "failed",
    "canceled_emails",
    "skipped",
    "skipped_by_reason_display",
    "emails_link",
)


BULK_JOB_FIELDS = (
    "status_badge",
    "template",
    "sender_display",
    "query",
    "regarding_display",
    "error",
    "created_by",
)


BULK_TIME_FIELDS = ("created_at", "started_at", "finished_at", "canceled_at", "heartbeat_at")


@admin.register(BulkSend)
class BulkSendAdmin(ReadOnlyAdmin):
    """Bulk jobs, read-only: they are started from the API; here they are watched and
    canceled. ``sent`` and ``failed`` are counted from the job's emails, as in
    ``selectors.bulk_send_progress``, for a whole page in the list's one query."""

    list_display = (
        "id",
        "template",
        "sender_display",
        "status_badge",
        "total",
        "created",
        "sent",
        "failed",
        "skipped",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_display_links = ("id", "template")
    list_filter = ("status",)
    search_fields = ("template__title",)
    date_hierarchy = "created_at"
    actions = ["cancel"]
    readonly_fields = (*BULK_JOB_FIELDS, *BULK_PROGRESS_FIELDS, *BULK_TIME_FIELDS)
    fieldsets = (
        (None, {"fields": BULK_JOB_FIELDS}),
        ("Progress", {"fields": BULK_PROGRESS_FIELDS}),
        ("Times", {"fields": BULK_TIME_FIELDS}),
    )

    def get_queryset(self, request):
        # Subqueries rather than a join: the page's rows are counted, not every job's
        # emails for the changelist's total and date hierarchy.
        return bulk_sends_with_progress(
            super()
            .get_queryset(request)
            .select_related(
                "template", "sender_user", "sender_queue", "created_by", "regarding_type"
            )
        )

    def has_delete_permission(self, request, obj=None):
        # Deleting a job would delete its emails, sent ones included: cancel instead.
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return coloured_status(obj, BULK_STATUS_COLOURS)

    @admin.display(description="sender")
    def sender_display(self, obj):
        return obj.sender_queue or obj.sender_user

    @admin.display(description="regarding")
    def regarding_display(self, obj):
        if obj.regarding_type_id is None:
            return "each email's own contact"
        return f"{obj.regarding_type.name} #{obj.regarding_id}"

    @admin.display(description="sent", ordering="sent_count")
    def sent(self, obj):
        return obj.sent_count

    @admin.display(description="failed", ordering="failed_count")
    def failed(self, obj):
        return obj.failed_count

    @admin.display(description="canceled emails")
    def canceled_emails(self, obj):
        return obj.canceled_count

    @admin.display(description="skipped by reason")
    def skipped_by_reason_display(self, obj):
        reasons = obj.skipped_by_reason or {}
        return ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items())) or "-"

    @admin.display(description="emails")
    def emails_link(self, obj):
        url = reverse("admin:activities_email_changelist") + f"?bulk_send__id__exact={obj.pk}"
        return format_html('<a href="{}">the {} emails of this job</a>', url, obj.created)

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda job: bulk_send_cancel(job=job, actor=request.user),
            done="bulk job(s) canceled",
        )
