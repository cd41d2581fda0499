"""The admin of templates and of the attachment store (blobs and their links)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count

from common.admin_actions import run_action
from common.errors import ApplicationError

from ..models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    Template,
)
from ..services.attachments import attachment_delete
from ..services.templates import template_check, template_save
from .base import (
    AttachmentInline,
    ReadOnlyAdmin,
    ServiceErrorsAsMessagesMixin,
    as_form_error,
    save_attachment_formset,
)


class TemplateAttachmentInline(AttachmentInline):
    fk_name = "template"


class TemplateAdminForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = (
            "title",
            "description",
            "record_type",
            "language",
            "subject",
            "body_html",
            "body_text",
        )

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean answers cleaned_data
        try:
            template_check(
                subject=data.get("subject", ""),
                body_html=data.get("body_html", ""),
                body_text=data.get("body_text", ""),
            )
        except ApplicationError as exc:
            raise as_form_error(exc) from exc
        return data


@admin.register(Template)
class TemplateAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    form = TemplateAdminForm
    list_display = (
        "title",
        "record_type",
        "language",
        "subject",
        "attachment_count",
        "modified_at",
    )
    list_filter = ("record_type", "language")
    search_fields = ("title", "subject", "description")
    inlines = [TemplateAttachmentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_attachments=Count("attachments"))

    @admin.display(description="attachments", ordering="_attachments")
    def attachment_count(self, obj):
        return obj._attachments

    def save_model(self, request, obj, form, change):
        template_save(template=obj, actor=request.user)

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            save_attachment_formset(request, formset, form.instance)


@admin.register(AttachmentBlob)
class AttachmentBlobAdmin(ReadOnlyAdmin):
    list_display = ("sha256", "size", "used_by", "created_at", "touched_at")
    search_fields = ("sha256",)
    readonly_fields = ("sha256", "size", "file", "used_by", "created_at", "touched_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used_by=Count("attachments"))

    @admin.display(description="attachments using it", ordering="_used_by")
    def used_by(self, obj):
        return obj._used_by

    def has_delete_permission(self, request, obj=None):
        # Blobs in use are protected; unused ones go with the garbage collector.
        return obj is not None and obj._used_by == 0 and super().has_delete_permission(request, obj)


@admin.register(ActivityMimeAttachment)
class ActivityMimeAttachmentAdmin(ReadOnlyAdmin):
    list_display = ("filename", "mime_type", "size", "email", "template", "blob")
    list_select_related = ("blob", "email", "template")
    search_fields = ("filename", "blob__sha256")
    list_filter = ("mime_type",)

    def delete_model(self, request, obj):
        attachment_delete(attachment=obj)

    def delete_queryset(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda a: attachment_delete(attachment=a),
            done="attachment(s) removed",
        )
