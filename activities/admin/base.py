"""Pieces the admin pages of the email activity share: service refusals as messages,
read-only pages, attachment inlines saved through the attachment service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.utils.html import format_html

from common.errors import ApplicationError
from crm.models import Organization

from ..models import (
    ActivityMimeAttachment,
)
from ..policies import EDITABLE_STATUSES
from ..services.attachments import attachment_delete, attachment_store

if TYPE_CHECKING:
    # What the mixins below are mixed into, so that their super() calls are checked.
    _InlineBase = admin.options.InlineModelAdmin[Any, Any]
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _InlineBase = _ModelAdminBase = object


def coloured_status(obj, colours: dict[str, str]) -> str:
    """An object's status label in its colour (emails and bulk jobs)."""
    return format_html(
        '<strong style="color:{}">{}</strong>',
        colours.get(obj.status, "#555"),
        obj.get_status_display(),
    )


def as_form_error(exc: ApplicationError) -> forms.ValidationError:
    return forms.ValidationError(exc.message, code=exc.code)


class EditableOnlyInDraftMixin(_InlineBase):
    def _editable(self, obj) -> bool:
        return obj is None or obj.status in EDITABLE_STATUSES

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class AttachmentForm(forms.ModelForm):
    upload = forms.FileField(required=False, label="file")

    class Meta:
        model = ActivityMimeAttachment
        fields = ("upload",)

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is not None:
            limit = Organization.get().max_attachment_bytes
            if upload.size > limit:
                raise forms.ValidationError(
                    f"the file is {upload.size} bytes, over the limit of {limit} bytes"
                )
        elif self.instance.pk is None and self.has_changed():
            raise forms.ValidationError("choose a file")
        return upload


class AttachmentInline(admin.TabularInline):
    model = ActivityMimeAttachment
    form = AttachmentForm
    extra = 1
    fields = ("upload", "filename", "mime_type", "size", "attachment_id")
    readonly_fields = ("filename", "mime_type", "size", "attachment_id")


def mark_saved_by_service(formset) -> None:
    """What ``formset.save()`` would set; the admin's change message reads it."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


def save_attachment_formset(request, formset, owner) -> None:
    """Uploads go to the blob store through the service; removals through the service."""
    mark_saved_by_service(formset)
    for form in formset.forms:
        if not form.has_changed() and not formset._should_delete_form(form):
            continue
        if formset._should_delete_form(form):
            if form.instance.pk:
                attachment_delete(attachment=form.instance)
            continue
        upload = form.cleaned_data.get("upload")
        if upload is not None and form.instance.pk is None:
            attachment_store(
                owner=owner,
                source=upload,
                filename=upload.name,
                mime_type=getattr(upload, "content_type", None),
                actor=request.user,
            )


class ServiceErrorsAsMessagesMixin(_ModelAdminBase):
    """A refusal from a service that got past form validation becomes a message, not a 500.

    The admin wraps the change form in a transaction, so nothing is half-written.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
