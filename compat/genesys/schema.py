"""The OpenAPI schema of the Genesys operations (documentation only: ``inputs`` reads the
bodies; names are matched in any casing, which a schema cannot say)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from common.api.schema import ERROR_DESCRIPTIONS

_ADDRESS = {
    "type": "object",
    "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
    "required": ["email"],
}
_RECIPIENTS = {
    "oneOf": [
        {"type": "string", "description": "comma-separated addresses"},
        {"type": "array", "items": {"oneOf": [{"type": "string"}, _ADDRESS]}},
    ],
    "nullable": True,
}
_FROM = {"oneOf": [{"type": "string"}, _ADDRESS], "nullable": True}


@extend_schema_field(_RECIPIENTS)
class RecipientsField(serializers.JSONField):
    pass


@extend_schema_field(_FROM)
class FromField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class UserDataField(serializers.JSONField):
    pass


def _text(help_text: str) -> serializers.CharField:
    return serializers.CharField(required=False, allow_null=True, help_text=help_text)


class GenesysEmailSerializer(serializers.Serializer):
    subject = _text("the subject")
    body = _text("the HTML body")
    bodyAsPlainText = _text("the plain-text body")  # noqa: N815 (Genesys' name)
    mime = _text("the body's MIME type (text/html, text/plain), or a whole RFC 5322 message")
    to = RecipientsField(required=False)
    cc = RecipientsField(required=False)
    bcc = RecipientsField(required=False)
    from_ = FromField(required=False, help_text="the sending queue's address")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class GenesysOperationSerializer(serializers.Serializer):
    operationName = serializers.ChoiceField(  # noqa: N815
        choices=["Send", "Reply", "ReplyAll", "Cancel"]
    )
    queueName = _text("Send: the queue the email goes out from (required)")  # noqa: N815
    queueUri = _text("Reply: .../queues/{our queue's id or name}")  # noqa: N815
    email = GenesysEmailSerializer(required=False, allow_null=True, help_text="Send (required)")
    saveLAR = serializers.BooleanField(required=False, allow_null=True)  # noqa: N815
    userData = UserDataField(required=False)  # noqa: N815
    subjectPrefix = _text("Reply: before the original's subject (default 'Re: ')")  # noqa: N815
    replyToStartLine = _text("Reply: accepted, our own quote line is used")  # noqa: N815
    quoteOriginal = serializers.BooleanField(required=False, allow_null=True)  # noqa: N815
    indentCharacter = _text("Reply: accepted, '>' is used")  # noqa: N815
    bodyAsPlainText = _text("Reply: the plain-text body")  # noqa: N815
    body = _text("Reply: the HTML body")
    mime = _text("Reply: as email.mime")
    reason = _text("Cancel: why")


class GenesysCreateSerializer(serializers.Serializer):
    operationName = serializers.ChoiceField(choices=["Create"])  # noqa: N815
    queueName = _text("the queue the email goes out from")  # noqa: N815
    queueUri = _text(".../queues/{our queue's id or name}")  # noqa: N815
    parentId = _text("the email this one answers (its id)")  # noqa: N815
    userData = UserDataField(required=False)  # noqa: N815


class GenesysStatusSerializer(serializers.Serializer):
    statusCode = serializers.IntegerField(help_text="0: done")  # noqa: N815


class GenesysCreatedSerializer(GenesysStatusSerializer):
    id = serializers.CharField(help_text="the new email's id (16 hex digits)")
    uri = serializers.CharField()


class GenesysOperationResultSerializer(GenesysStatusSerializer):
    id = serializers.CharField(required=False, help_text="Reply, ReplyAll: the new email's id")
    uri = serializers.CharField(required=False)


class GenesysEmailResourceSerializer(GenesysStatusSerializer):
    email = serializers.JSONField(help_text="Genesys' Email resource")


class _EmailAddressSerializer(serializers.Serializer):
    email = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)


class GenesysEmailMessageSerializer(serializers.Serializer):
    """Genesys Cloud's EmailMessage."""

    id = serializers.CharField(required=False, help_text="ours, as a UUID (answer only)")
    to = _EmailAddressSerializer(many=True)
    cc = _EmailAddressSerializer(many=True, required=False)
    bcc = _EmailAddressSerializer(many=True, required=False)
    from_ = _EmailAddressSerializer(help_text="a queue's address, or yours")
    replyTo = _EmailAddressSerializer(required=False)  # noqa: N815
    subject = serializers.CharField(required=False, help_text="default: Re: and the original's")
    textBody = serializers.CharField()  # noqa: N815
    htmlBody = serializers.CharField(required=False)  # noqa: N815
    attachments = serializers.ListField(required=False, help_text="must be empty here")
    time = serializers.CharField(required=False)
    selfUri = serializers.CharField(required=False)  # noqa: N815

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class GenesysErrorSerializer(serializers.Serializer):
    """A refusal: Web Services' statusCode and statusMessage, and Genesys Cloud's body."""

    statusCode = serializers.IntegerField(  # noqa: N815
        help_text="1 missing parameter, 2 not valid in the current state, 3 forbidden, "
        "5 no permission, 6 not found, 10 invalid input, 20 not authenticated"
    )
    statusMessage = serializers.CharField()  # noqa: N815
    message = serializers.CharField(help_text="our refusal's reason")
    code = serializers.CharField(help_text="our stable code (e.g. sender_not_allowed)")
    status = serializers.IntegerField(help_text="the HTTP status")
    messageParams = serializers.DictField()  # noqa: N815
    contextId = serializers.CharField()  # noqa: N815
    details = serializers.ListField()
    # The metaclass takes declared fields out of the class: Serializer.errors stays.
    errors = serializers.ListField()  # type: ignore[assignment]


def genesys_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        status: OpenApiResponse(GenesysErrorSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in sorted({*statuses, 401, 429})
    }
