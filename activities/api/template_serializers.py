"""Serializers of the template endpoints (``templates/``)."""

from __future__ import annotations

from rest_framework import serializers

from common.api.serializers import StrictModelSerializer, StrictSerializer

from ..models import ActivityMimeAttachment, Template
from .fields import RecordRefField


class TemplateAttachmentSerializer(StrictModelSerializer):
    size = serializers.IntegerField(source="blob.size", read_only=True)
    attachment_id = serializers.CharField(
        source="blob.sha256", read_only=True, help_text="SHA-256 of the bytes (hex)"
    )

    class Meta:
        model = ActivityMimeAttachment
        fields = ["id", "filename", "mime_type", "size", "attachment_id", "subject"]
        read_only_fields = fields


class TemplateSerializer(StrictModelSerializer):
    """Reads and writes; writes go through ``template_save``, which checks the syntax."""

    attachments = TemplateAttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = Template
        fields = [
            "id",
            "title",
            "description",
            "record_type",
            "language",
            "subject",
            "body_html",
            "body_text",
            "attachments",
            "created_at",
            "modified_at",
        ]
        read_only_fields = ["id", "attachments", "created_at", "modified_at"]


class InstantiateSerializer(StrictSerializer):
    regarding = RecordRefField(
        types=("contact", "account", "user"),
        required=False,
        allow_null=True,
        help_text="the record to fill the merge fields from; may be omitted for a global template",
    )
    sender = RecordRefField(
        types=("user", "queue"),
        required=False,
        allow_null=True,
        help_text="whose {{ sender.* }} fields to use; defaults to the acting user",
    )


class RenderedTemplateSerializer(StrictSerializer):
    subject = serializers.CharField()
    body_html = serializers.CharField(allow_blank=True)
    body_text = serializers.CharField(allow_blank=True)
    attachments = TemplateAttachmentSerializer(many=True)
