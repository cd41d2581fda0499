"""The admin of the suppression list, of the delivery events that feed it, and of the
senders' rate state."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from common.errors import ApplicationError

from ..addresses import check_address
from ..models import (
    DeliveryEvent,
    SendRateState,
    SuppressedAddress,
)
from ..services.suppression import normalized_address, suppression_add, suppression_remove
from .base import ReadOnlyAdmin, ServiceErrorsAsMessagesMixin


class SuppressedAddressForm(forms.ModelForm):
    class Meta:
        model = SuppressedAddress
        fields = ("address", "reason", "note")

    def clean_address(self):
        address = self.cleaned_data["address"]
        try:
            address = normalized_address(check_address(address, label="the address"))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        if SuppressedAddress.objects.filter(address=address).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"{address} is already on the suppression list")
        return address


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    """The suppression list: addresses bulk jobs never write to. Entries are added and
    removed (through ``services.suppression``), not edited."""

    form = SuppressedAddressForm
    list_display = ("address", "reason", "note", "created_by", "created_at")
    list_filter = ("reason",)
    search_fields = ("address", "note")
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        created = suppression_add(
            address=obj.address, reason=obj.reason, note=obj.note, actor=request.user
        )
        obj.pk = created.pk

    def delete_model(self, request, obj):
        suppression_remove(entry=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for entry in queryset:
            suppression_remove(entry=entry, actor=request.user)


@admin.register(SendRateState)
class SendRateStateAdmin(ReadOnlyAdmin):
    """Each sender's schedule: when it may send next, and any pause after the mail
    server asked us to wait. The rate itself is set on the user or queue."""

    list_display = ("sender_key", "next_send_at", "slow_until", "slowdowns", "last_slowdown_reason")
    search_fields = ("sender_key",)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    """What providers' tracking webhooks and bounce messages reported, per recipient
    (written only by ``services.delivery_events``); bounces and complaints first."""

    list_display = ("occurred_at", "event_type", "permanent", "recipient", "provider", "email")
    list_filter = ("event_type", "provider", "permanent")
    search_fields = ("recipient", "message_id", "event_id")
    date_hierarchy = "occurred_at"
    list_select_related = ("email",)
    raw_id_fields = ("email", "party")
    ordering = ("-occurred_at", "-id")
