"""Serializers of the attachment endpoints (``attachments/``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from common.api.filters import MAX_ID
from common.api.serializers import StrictModelSerializer, StrictSerializer

from ..models import ActivityMimeAttachment

OBJECT_TYPES = ("email", "template")


class AttachmentSerializer(StrictModelSerializer):
    object_type = serializers.SerializerMethodField()
    object_id = serializers.SerializerMethodField()
    size = serializers.IntegerField(source="blob.size", read_only=True)
    attachment_id = serializers.CharField(
        source="blob.sha256", read_only=True, help_text="SHA-256 of the bytes (hex)"
    )
    content_url = serializers.SerializerMethodField(help_text="where to GET the bytes")

    class Meta:
        model = ActivityMimeAttachment
        fields = [
            "id",
            "object_type",
            "object_id",
            "filename",
            "mime_type",
            "size",
            "attachment_id",
            "subject",
            "position",
            "created_at",
            "content_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=OBJECT_TYPES))
    def get_object_type(self, attachment: ActivityMimeAttachment) -> str:
        return "email" if attachment.email_id else "template"

    def get_object_id(self, attachment: ActivityMimeAttachment) -> int:
        owner_id = attachment.email_id or attachment.template_id
        assert owner_id is not None  # exactly one owner (attachment_exactly_one_owner)
        return owner_id

    def get_content_url(self, attachment: ActivityMimeAttachment) -> str:
        return reverse(
            "attachment-content", args=[attachment.pk], request=self.context.get("request")
        )


class AttachmentCreatedSerializer(AttachmentSerializer):
    reused = serializers.SerializerMethodField(
        help_text="true when the bytes were already stored and no new copy was made"
    )

    class Meta(AttachmentSerializer.Meta):
        fields = [*AttachmentSerializer.Meta.fields, "reused"]
        read_only_fields = fields

    def get_reused(self, attachment: ActivityMimeAttachment) -> bool:
        return bool(self.context.get("reused"))


class Base64TextField(serializers.CharField):
    """A JSON string of base64 text, kept as given (decoded later, in slices)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data


class _AttachmentTarget(StrictSerializer):
    object_type = serializers.ChoiceField(choices=OBJECT_TYPES)
    object_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    subject = serializers.CharField(required=False, allow_blank=True, default="")


class AttachmentUploadSerializer(_AttachmentTarget):
    """``multipart/form-data``: the file streams in; its name and type come with it."""

    file = serializers.FileField(allow_empty_file=True, use_url=False)
    filename = serializers.CharField(
        required=False, help_text="instead of the uploaded file's own name"
    )
    mime_type = serializers.CharField(
        required=False, help_text="instead of the uploaded file's type (else guessed)"
    )


class AttachmentBase64Serializer(_AttachmentTarget):
    """JSON with the bytes as base64 text."""

    filename = serializers.CharField()
    mime_type = serializers.CharField(
        required=False, help_text="guessed from the filename when omitted"
    )
    body = Base64TextField(help_text="the bytes, base64-encoded (line breaks allowed)")


class AttachmentReuseSerializer(_AttachmentTarget):
    """JSON naming bytes already stored, by their SHA-256: nothing is uploaded again."""

    attachment_id = serializers.CharField(help_text="SHA-256 (hex) of an attachment you can see")
    filename = serializers.CharField(
        required=False, help_text="defaults to the name of an attachment of these bytes"
    )
    mime_type = serializers.CharField(required=False)


class AttachmentCreateSerializer(_AttachmentTarget):
    """What ``POST attachments/`` reads, in any of its three forms."""

    file = serializers.FileField(required=False, allow_empty_file=True, use_url=False)
    body = Base64TextField(required=False)
    attachment_id = serializers.CharField(required=False)
    filename = serializers.CharField(required=False)
    mime_type = serializers.CharField(required=False)

    SOURCES = ("file", "body", "attachment_id")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in self.SOURCES if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                "give exactly one of file (multipart upload), body (base64) "
                "or attachment_id (bytes already stored)"
            )
        if "body" in attrs and "filename" not in attrs:
            raise serializers.ValidationError({"filename": ["a filename is required with body"]})
        return attrs
