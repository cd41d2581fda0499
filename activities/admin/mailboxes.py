"""The admin of polled mailboxes (IMAP, POP3): settings with a write-only password,
what the polls did, and the actions "Poll now" and "Test connection"."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.forms.models import construct_instance

from common.errors import ApplicationError

from ..models import PolledMailbox
from ..services.mailboxes import (
    mailbox_poll,
    mailbox_save,
    mailbox_test_connection,
    mailbox_validate,
)
from .base import ServiceErrorsAsMessagesMixin


class PolledMailboxForm(forms.ModelForm):
    # Write-only: never rendered back; left empty on a change, the stored one is kept.
    secret = forms.CharField(
        label="password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="stored encrypted; never shown. Leave empty to keep the stored one.",
    )

    class Meta:
        model = PolledMailbox
        fields = (
            "queue",
            "user",
            "protocol",
            "host",
            "port",
            "security",
            "username",
            "secret",
            "folder",
            "after_store",
            "move_to",
            "enabled",
        )

    def clean(self):
        cleaned = super().clean() or {}
        if not self.instance.secret_sealed and not cleaned.get("secret"):
            self.add_error("secret", "enter the mailbox's password")
        if not self.errors:
            # The settings as they would be saved, on a copy: the form's instance is only
            # filled in after clean().
            candidate = construct_instance(self, copy.copy(self.instance), self._meta.fields)
            try:
                mailbox_validate(mailbox=candidate)
            except ApplicationError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return cleaned


@admin.register(PolledMailbox)
class PolledMailboxAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    form = PolledMailboxForm
    list_display = (
        "__str__",
        "owner_name",
        "protocol",
        "host",
        "enabled",
        "last_polled_at",
        "last_error",
        "last_refusal",
    )
    list_filter = ("protocol", "enabled")
    search_fields = ("host", "username", "queue__name", "user__username")
    readonly_fields = (
        "last_polled_at",
        "last_error",
        "last_error_at",
        "last_refusal",
        "stored_count",
        "refused_count",
        "uidvalidity",
        "last_uid",
    )
    actions = ("poll_now", "test_connection")

    @admin.display(description="owner")
    def owner_name(self, obj: PolledMailbox) -> str:
        owner = obj.owner
        return f"{'queue' if obj.queue_id else 'user'} {owner.display_name}" if owner else "-"

    def save_model(self, request, obj, form, change):
        mailbox_save(mailbox=obj, secret=form.cleaned_data.get("secret") or None)

    @admin.action(description="Poll now")
    def poll_now(self, request, queryset):
        for mailbox in queryset:
            result = mailbox_poll(mailbox=mailbox)
            level = messages.ERROR if result.error else messages.SUCCESS
            self.message_user(request, f"{mailbox}: {result.summary()}", level)

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for mailbox in queryset:
            try:
                found = mailbox_test_connection(mailbox=mailbox)
            except ApplicationError as exc:
                self.message_user(request, f"{mailbox}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{mailbox}: {found}", messages.SUCCESS)
