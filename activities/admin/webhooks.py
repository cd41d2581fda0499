"""The admin of integrators' webhook endpoints, their outbox and their delivery log.

Endpoints are created and changed through ``services.webhooks`` (the SSRF guard runs
on every save; a refusal is a form error). The secret is shown once, in the message
after the create; the change page never shows it. Disabled endpoints come first in the
list, with the reason, as the notice to staff that something needs them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from common.errors import ApplicationError

from ..models import (
    ENDPOINT_STATE_FIELDS,
    SUBSCRIBABLE_EVENT_TYPES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from ..services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_endpoints_reenable,
    webhook_events_retry,
    webhook_test_send,
    webhook_url_check,
)
from .base import ReadOnlyAdmin, ServiceErrorsAsMessagesMixin, as_form_error


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, WebhookEventType(t).label) for t in SUBSCRIBABLE_EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "format", "active")

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            return webhook_url_check(url)
        except ApplicationError as exc:
            raise as_form_error(exc) from exc


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = (
        "url",
        "active",
        "format",
        "event_types",
        "disabled_reason",
        "failed_events_in_a_row",
        "last_failure_at",
        "last_failure",
        "last_success_at",
    )
    list_filter = ("active", "format")
    search_fields = ("url", "description")
    # Disabled endpoints first: they are the notice that one needs attention.
    ordering = ("active", "pk")
    readonly_fields = ENDPOINT_STATE_FIELDS
    actions = ("send_test_event", "reenable", "retry_failed", "rotate_secret")

    def changelist_view(self, request, extra_context=None):
        disabled = WebhookEndpoint.objects.filter(active=False).exclude(disabled_at=None).count()
        if disabled:
            self.message_user(
                request,
                f"{disabled} endpoint(s) disabled after repeated failure: see the reason, "
                "then Re-enable and Retry failed events.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in WebhookEndpointForm.Meta.fields}
        if change:
            webhook_endpoint_update(endpoint=obj, actor=request.user, **values)
            return
        created = webhook_endpoint_create(actor=request.user, **values)
        obj.pk = created.pk
        self.message_user(
            request,
            f"The endpoint's secret, shown this once (Standard Webhooks): {created.secret}",
            messages.WARNING,
        )

    def delete_model(self, request, obj):
        webhook_endpoint_delete(endpoint=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint, actor=request.user)

    @admin.action(description="Send test event")
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            delivery = webhook_test_send(endpoint=endpoint, actor=request.user)  # type: ignore[arg-type]
            if delivery.ok:
                self.message_user(
                    request,
                    f"{endpoint.url}: delivered (HTTP {delivery.status_code}, "
                    f"{delivery.latency_ms} ms)",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request, f"{endpoint.url}: not delivered: {delivery.error}", messages.ERROR
                )

    @admin.action(description="Re-enable")
    def reenable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = webhook_endpoints_reenable(
            endpoint_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user,  # type: ignore[arg-type]
        )
        self.message_user(request, f"{count} endpoint(s) re-enabled", messages.SUCCESS)

    @admin.action(description="Retry failed events")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = webhook_events_retry(
            endpoint_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user,  # type: ignore[arg-type]
        )
        self.message_user(request, f"{count} abandoned event(s) queued again", messages.SUCCESS)

    @admin.action(description="Rotate secret (the new one shown once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=request.user)  # type: ignore[arg-type]
            self.message_user(
                request,
                f"{endpoint.url}: the new secret, shown this once: {secret}",
                messages.WARNING,
            )


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """The outbox: what each endpoint was or will be sent."""

    list_display = (
        "message_id",
        "endpoint",
        "event_type",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status",
        "created_at",
    )
    list_filter = ("state", "event_type")
    search_fields = ("message_id", "endpoint__url")
    list_select_related = ("endpoint",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Every try, the failures first."""

    list_display = (
        "at",
        "endpoint",
        "event",
        "attempt",
        "ok",
        "status_code",
        "latency_ms",
        "error",
    )
    list_filter = ("ok", "endpoint")
    search_fields = ("endpoint__url", "event__message_id", "error")
    list_select_related = ("endpoint", "event")
    ordering = ("ok", "-at", "-pk")
