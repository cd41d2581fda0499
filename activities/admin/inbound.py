"""The admin of kept inbound messages: every message a route accepted, its status and
reason, the raw download, and Release for blocked mail (``services.inbound_release``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from common.admin_actions import run_action

from ..models import InboundMessage, InboundStatus
from ..services.inbound_release import inbound_release
from .base import ReadOnlyAdmin, coloured_status

STATUS_COLOURS: dict[str, str] = {
    InboundStatus.KEPT: "#6e7781",
    InboundStatus.STORED: "#1a7f37",
    InboundStatus.BLOCKED: "#9a6700",
    InboundStatus.REFUSED: "#cf222e",
    InboundStatus.UNPARSABLE: "#cf222e",
}


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    """Read-only: what became of a message is decided by the services; Release (for
    holders of crm.approve_email_address) reads a blocked one again."""

    list_display = (
        "received_at",
        "status_badge",
        "route",
        "from_address",
        "subject",
        "reason",
        "email",
        "raw",
    )
    list_filter = ("status", "route")
    search_fields = ("message_id", "from_address", "subject", "reason")
    date_hierarchy = "received_at"
    list_select_related = ("email", "blob")
    actions = ["release"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: InboundMessage) -> str:
        return coloured_status(obj, STATUS_COLOURS)

    @admin.display(description="raw message")
    def raw(self, obj: InboundMessage) -> str:
        return format_html(
            '<a href="{}" download>.eml ({} bytes)</a>',
            reverse("inbound-raw", args=[obj.pk]),
            obj.size,
        )

    @admin.action(description="Release (blocked mail whose address is approved now)")
    def release(self, request, queryset):
        run_action(
            self,
            request,
            queryset.order_by("received_at", "pk"),
            lambda message: inbound_release(message=message, actor=request.user),
            done="message(s) released",
        )
